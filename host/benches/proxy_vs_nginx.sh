#!/usr/bin/env bash
# Side-by-side proxy benchmark on 127.0.0.1, in one run:
#   upstream: nginx answering 200 "hello" (keep-alive)
#   A: nginx as reverse proxy (keep-alive pool to the upstream)
#   B: weir, no filters
#   C: weir, a chain of 3 filters (headers both phases, block, api-key)
#   D: weir, a chain of 3 header filters (each sets one request header)
#   E: weir, one header filter
# Each proxy gets the same wrk load (HTTP/1.1 keep-alive, small body). Reported: req/s and
# the proxy's CPU time per request (utime+stime of all its processes, from /proc), and ratios
# to nginx. Absolute numbers on shared machines mean little; the ratios are the result.
# See lib.sh for pinning and rounds.
#
# Env: DURATION (default 10s), CONNECTIONS (default 32), ROUNDS (default 3); WEIR_BASELINE:
# another weir binary (e.g. a build of the previous commit) measured alongside, plain, with
# the 3 filters and with the 3 header filters, for before/after figures from the same run; WEIR_BASELINE_PLUGINS: the filters
# built for it (default target/plugins; needed when the WIT version changed since).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl

up=127.0.0.1:19100; pa=127.0.0.1:19101; pb=127.0.0.1:19102; pc=127.0.0.1:19103; pd=127.0.0.1:19104
pe=127.0.0.1:19105; pf=127.0.0.1:19106; pg=127.0.0.1:19107; ph=127.0.0.1:19108
baseline=${WEIR_BASELINE:-}
baseline_plugins=${WEIR_BASELINE_PLUGINS:-$root/target/plugins}

taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $pa; $nginx_proxy_location }")" & pids+=($!)
nginx_pid=$!

weir_manifest() { # listen filters [plugins-dir]
    weir_route_manifest "$1" "$up" "$2" "${3:-}"
    cat <<TOML
[filters.tag]
plugin = "headers.wasm"
config = { request = { set = { "x-served-by" = "weir" } }, response = { set = { "x-proxy" = "weir" } } }
[filters.deny]
plugin = "block.wasm"
config = { paths = ["/admin"] }
[filters.key]
plugin = "api-key.wasm"
config = { keys = ["bench-key"] }
$(header_filters)
TOML
}
weir_manifest "$pb" "" > "$work/plain.toml"
weir_manifest "$pc" '"tag", "deny", "key"' > "$work/filters.toml"
weir_manifest "$pd" '"h1", "h2", "h3"' > "$work/headers.toml"
weir_manifest "$pg" '"h1"' > "$work/one.toml"
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/plain.toml" > /dev/null & pids+=($!); weir_plain=$!
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/filters.toml" > /dev/null & pids+=($!); weir_filters=$!
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/headers.toml" > /dev/null & pids+=($!); weir_headers=$!
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/one.toml" > /dev/null & pids+=($!); weir_one=$!
wait_up "http://$up/" "http://$pa/" "http://$pb/" "http://$pc/" "http://$pd/" "http://$pg/"
if [ -n "$baseline" ]; then
    weir_manifest "$pe" "" "$baseline_plugins" > "$work/base-plain.toml"
    weir_manifest "$pf" '"tag", "deny", "key"' "$baseline_plugins" > "$work/base-filters.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$baseline" run "$work/base-plain.toml" > /dev/null & pids+=($!); base_plain=$!
    weir_manifest "$ph" '"h1", "h2", "h3"' "$baseline_plugins" > "$work/base-headers.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$baseline" run "$work/base-filters.toml" > /dev/null & pids+=($!); base_filters=$!
    RUST_LOG=warn taskset -c "$proxy_cpus" "$baseline" run "$work/base-headers.toml" > /dev/null & pids+=($!); base_headers=$!
    wait_up "http://$pe/" "http://$pf/" "http://$ph/"
fi

echo "wrk: $conns connections, $duration per proxy x $rounds rounds; HTTP/1.1 keep-alive, 6-byte body"
echo "proxies (1 worker each) on CPU $proxy_cpus; wrk and upstream on CPU $load_cpus"
results=$(for _ in $(seq 1 "$rounds"); do
    run "nginx" "$nginx_pid" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pa/"
    run "weir" "$weir_plain" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pb/"
    run "weir+3 filters" "$weir_filters" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pc/"
    run "weir+1 header filter" "$weir_one" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pg/"
    run "weir+3 header filters" "$weir_headers" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pd/"
    if [ -n "$baseline" ]; then
        run "baseline weir" "$base_plain" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pe/"
        run "baseline weir+3 filters" "$base_filters" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$pf/"
        run "baseline weir+3 header filters" "$base_headers" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "http://$ph/"
    fi
done)
report "$results"
python3 - "$results" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
cpu = lambda label: median(float(r[2]) for r in runs if r[0] == label)
print(f"3-filter chain (4 hook calls) adds {cpu('weir+3 filters') - cpu('weir'):.1f} us CPU per request over plain weir")
print(f"1 header filter (1 hook call) adds {cpu('weir+1 header filter') - cpu('weir'):.1f} us CPU per request over plain weir")
print(f"3 header filters (3 hook calls) add {cpu('weir+3 header filters') - cpu('weir'):.1f} us CPU per request over plain weir")
if any(r[0] == "baseline weir" for r in runs):
    print(f"this build vs baseline: plain {cpu('weir') / cpu('baseline weir'):.2f}x, 3 filters {cpu('weir+3 filters') / cpu('baseline weir+3 filters'):.2f}x, 3 header filters {cpu('weir+3 header filters') / cpu('baseline weir+3 header filters'):.2f}x CPU per request")
    print(f"baseline: 3 filters add {cpu('baseline weir+3 filters') - cpu('baseline weir'):.1f} us, 3 header filters {cpu('baseline weir+3 header filters') - cpu('baseline weir'):.1f} us CPU per request")
PY
