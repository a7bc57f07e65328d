#!/usr/bin/env bash
# Side-by-side proxy benchmark on 127.0.0.1, in one run:
#   upstream: nginx answering 200 "hello" (keep-alive)
#   A: nginx as reverse proxy (keep-alive pool to the upstream)
#   B: weir, no filters
#   C: weir, a chain of 3 filters (headers both phases, block, api-key)
#   D: weir, a chain of 3 header filters (each sets one request header)
# Each proxy gets the same wrk load (HTTP/1.1 keep-alive, small body). Reported: req/s and
# the proxy's CPU time per request (utime+stime of all its processes, from /proc), and ratios
# to nginx. Absolute numbers on shared machines mean little; the ratios are the result.
# To cut noise, proxies run one worker each pinned to the last CPU, wrk and the upstream on
# the others, and ROUNDS interleaved rounds are run; medians are reported.
#
# Env: DURATION (default 10s), CONNECTIONS (default 32), ROUNDS (default 3).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
duration=${DURATION:-10s}
conns=${CONNECTIONS:-32}
rounds=${ROUNDS:-3}
threads=1
last_cpu=$(($(nproc) - 1))
if [ "$last_cpu" -ge 1 ]; then
    proxy_cpus=$last_cpu; load_cpus=0-$((last_cpu - 1))
else
    proxy_cpus=0; load_cpus=0
fi
weir=target/release/weir

for tool in wrk nginx; do
    if ! command -v $tool >/dev/null && [ ! -x /usr/sbin/$tool ]; then
        echo "installing $tool" >&2
        if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk nginx-light >&2
    fi
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$weir" ] || { echo "$weir missing: run make build" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

up=127.0.0.1:19100; pa=127.0.0.1:19101; pb=127.0.0.1:19102; pc=127.0.0.1:19103; pd=127.0.0.1:19104

nginx_conf() { # name body
    mkdir -p "$work/$1"
    cat > "$work/$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/$1; proxy_temp_path $work/$1; fastcgi_temp_path $work/$1;
    uwsgi_temp_path $work/$1; scgi_temp_path $work/$1;
    keepalive_requests 1000000;
    $2
}
CONF
    echo "$work/$1/nginx.conf"
}

taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $pa; location / {
        proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
        proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme; } }")" & pids+=($!)
nginx_pid=$!

weir_manifest() { # listen filters
    cat <<TOML
plugins-dir = "$root/target/plugins"
access-log = false
workers = 1
[[listeners]]
address = "$1"
[upstreams.app]
targets = ["$up"]
[[routes]]
upstream = "app"
filters = [$2]
[filters.tag]
plugin = "headers.wasm"
config = { request = { set = { "x-served-by" = "weir" } }, response = { set = { "x-proxy" = "weir" } } }
[filters.deny]
plugin = "block.wasm"
config = { paths = ["/admin"] }
[filters.key]
plugin = "api-key.wasm"
config = { keys = ["bench-key"] }
[filters.h1]
plugin = "headers.wasm"
config = { request = { set = { "x-h1" = "1" } } }
[filters.h2]
plugin = "headers.wasm"
config = { request = { set = { "x-h2" = "2" } } }
[filters.h3]
plugin = "headers.wasm"
config = { request = { set = { "x-h3" = "3" } } }
TOML
}
weir_manifest "$pb" "" > "$work/plain.toml"
weir_manifest "$pc" '"tag", "deny", "key"' > "$work/filters.toml"
weir_manifest "$pd" '"h1", "h2", "h3"' > "$work/headers.toml"
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/plain.toml" > /dev/null & pids+=($!); weir_plain=$!
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/filters.toml" > /dev/null & pids+=($!); weir_filters=$!
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/headers.toml" > /dev/null & pids+=($!); weir_headers=$!

for addr in $up $pa $pb $pc $pd; do
    for _ in $(seq 1 100); do curl -s -o /dev/null -H 'x-api-key: bench-key' "http://$addr/" && break; sleep 0.1; done
done

# CPU ticks (utime+stime) of a process and its children processes (nginx workers).
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        read -r -a f < "/proc/$p/stat"
        total=$((total + f[13] + f[14]))
    done
    echo $total
}
hz=$(getconf CLK_TCK)

run() { # label addr pid
    local before after out reqs rps
    curl -s -o /dev/null -H 'x-api-key: bench-key' "http://$2/"
    taskset -c "$load_cpus" wrk -t"$threads" -c"$conns" -d2s -H 'x-api-key: bench-key' "http://$2/" > /dev/null   # warm-up
    before=$(cpu_ticks "$3")
    out=$(taskset -c "$load_cpus" wrk -t"$threads" -c"$conns" -d"$duration" -H 'x-api-key: bench-key' "http://$2/")
    after=$(cpu_ticks "$3")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    python3 - "$1" "$reqs" "$rps" "$before" "$after" "$hz" "$errors" <<'PY'
import sys
label, reqs, rps, before, after, hz, errors = sys.argv[1:]
cpu_us = (int(after) - int(before)) / int(hz) * 1e6 / int(reqs)
print(f"{label}\t{float(rps):.0f}\t{cpu_us:.1f}\t{errors}")
PY
}

echo "wrk: $conns connections, $duration per proxy x $rounds rounds; HTTP/1.1 keep-alive, 6-byte body"
echo "proxies (1 worker each) on CPU $proxy_cpus; wrk and upstream on CPU $load_cpus"
results=$(for _ in $(seq 1 "$rounds"); do
    run "nginx" $pa "$nginx_pid"
    run "weir" $pb "$weir_plain"
    run "weir+3 filters" $pc "$weir_filters"
    run "weir+3 header filters" $pd "$weir_headers"
done)
python3 - "$results" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
labels = list(dict.fromkeys(r[0] for r in runs))
rows = []
for label in labels:
    mine = [r for r in runs if r[0] == label]
    notes = " ".join(" ".join(r[3:]) for r in mine).strip()
    rows.append([label, str(median(float(r[1]) for r in mine)), str(median(float(r[2]) for r in mine)), notes])
base_rps, base_cpu = float(rows[0][1]), float(rows[0][2])
print(f"{'proxy':<24}{'req/s':>10}{'CPU us/req':>12}{'rps/nginx':>11}{'CPU/nginx':>11}  notes")
for label, rps, cpu, *rest in rows:
    rps, cpu = float(rps), float(cpu)
    print(f"{label:<24}{rps:>10.0f}{cpu:>12.1f}{rps/base_rps:>11.2f}{cpu/base_cpu:>11.2f}  {' '.join(rest)}")
plain, filt, headers = float(rows[1][2]), float(rows[2][2]), float(rows[3][2])
print(f"3-filter chain (4 hook calls) adds {filt - plain:.1f} us CPU per request over plain weir")
print(f"3 header filters (3 hook calls) add {headers - plain:.1f} us CPU per request over plain weir")
PY
