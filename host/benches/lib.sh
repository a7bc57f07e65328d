# Shared by the side-by-side proxy benchmarks (sourced, not run): CPU pinning, tools, an
# nginx config writer, CPU accounting from /proc, load runs with wrk or h2load, and the
# median/ratio report. Proxies run one worker each pinned to the last CPU; load generators
# and the upstream run on the others; rounds are interleaved and medians reported.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
duration=${DURATION:-10s}
conns=${CONNECTIONS:-32}
rounds=${ROUNDS:-3}
last_cpu=$(($(nproc) - 1))
if [ "$last_cpu" -ge 1 ]; then
    proxy_cpus=$last_cpu; load_cpus=0-$((last_cpu - 1))
else
    proxy_cpus=0; load_cpus=0
fi
weir=target/release/weir
hz=$(getconf CLK_TCK)

need_tools() { # tool... (apt package names differ: h2load is nghttp2-client)
    local missing=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "installing ${missing[*]}" >&2
    local sudo=sudo; [ "$(id -u)" = 0 ] && sudo=""
    local pkgs=()
    for tool in "${missing[@]}"; do
        case $tool in nginx) pkgs+=(nginx-light) ;; h2load) pkgs+=(nghttp2-client) ;; *) pkgs+=("$tool") ;; esac
    done
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
}

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$weir" ] || { echo "$weir missing: run make build" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

nginx_conf() { # name http-block-body [main-context lines] -> path of the config
    mkdir -p "$work/$1"
    cat > "$work/$1/nginx.conf" <<CONF
${3:-}
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

# nginx's reverse-proxy location block, as weir forwards (keep-alive pool, X-Forwarded-*).
nginx_proxy_location='location / {
        proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
        proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme; }'

header_filters() { # manifest tables h1, h2, h3: headers filters setting one request header each
    for i in 1 2 3; do
        printf '[filters.h%s]\nplugin = "headers.wasm"\nconfig = { request = { set = { "x-h%s" = "%s" } } }\n' "$i" "$i" "$i"
    done
}

wait_up() { # url...
    local url
    for url in "$@"; do
        local up=""
        for _ in $(seq 1 100); do curl -sk -o /dev/null -H 'x-api-key: bench-key' "$url" && { up=1; break; }; sleep 0.1; done
        [ -n "$up" ] || { echo "no answer from $url after 10 s: did that proxy start? (its errors are above)" >&2; exit 1; }
    done
}

# CPU ticks (utime+stime) of a process and its children (nginx workers).
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        read -r -a f < "/proc/$p/stat"
        total=$((total + f[13] + f[14]))
    done
    echo $total
}

# One measured load run: prints "label<TAB>req/s<TAB>CPU us per request<TAB>notes".
# tool is wrk or h2load; its arguments follow (the duration is added here).
run() { # label pid tool args...
    local label=$1 pid=$2 tool=$3; shift 3
    local before after out reqs rps notes
    local warm=(-d2s) full=(-d"$duration")
    [ "$tool" = h2load ] && warm=(-D 2) full=(-D "${duration%s}")
    taskset -c "$load_cpus" "$tool" "$@" "${warm[@]}" > /dev/null   # warm-up
    before=$(cpu_ticks "$pid")
    out=$(taskset -c "$load_cpus" "$tool" "$@" "${full[@]}")
    after=$(cpu_ticks "$pid")
    if [ "$tool" = wrk ]; then
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        notes=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    else
        reqs=$(echo "$out" | awk '/^requests:/ {print $8}')
        rps=$(echo "$out" | awk '/^finished in/ {print $4}')
        notes=$(echo "$out" | awk '/^requests:/ && $10 != "0" {print $10 " failed"} /^status codes:/ && ($5 != "0" || $7 != "0" || $9 != "0") {print "non-2xx: " $0}' | tr '\n' ' ')
    fi
    python3 - "$label" "$reqs" "$rps" "$before" "$after" "$hz" "$notes" <<'PY'
import sys
label, reqs, rps, before, after, hz, notes = sys.argv[1:]
reqs = int(reqs or 0)
cpu_us = (int(after) - int(before)) / int(hz) * 1e6 / reqs if reqs else float("nan")
print(f"{label}\t{float(rps or 0):.0f}\t{cpu_us:.1f}\t{notes}")
PY
}

# The row indices 0..n-1 for round r, rotated by r: each row takes every slot in turn, so a
# slot's bias (the first row after a pause runs on a cooler machine, say) spreads evenly.
rotated() { # n round
    local i
    for i in $(seq 0 $(($1 - 1))); do echo $(((i + $2) % $1)); done
}

# Medians per label over the rounds, with ratios to the first label of each group. Groups
# are separated by labels that start with the group's name before ": ".
report() { # results
    python3 - "$1" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
labels = list(dict.fromkeys(r[0] for r in runs))
rows = {}
for label in labels:
    mine = [r for r in runs if r[0] == label]
    notes = " ".join(" ".join(r[3:]) for r in mine).strip()
    rows[label] = (median(float(r[1]) for r in mine), median(float(r[2]) for r in mine), notes)
print(f"{'proxy':<34}{'req/s':>10}{'CPU us/req':>12}{'rps/nginx':>11}{'CPU/nginx':>11}  notes")
base = None
for label in labels:
    group = label.split(": ")[0] if ": " in label else ""
    if base is None or base[0] != group:
        base = (group, rows[label])
    rps, cpu, notes = rows[label]
    print(f"{label:<34}{rps:>10.0f}{cpu:>12.1f}{rps/base[1][0]:>11.2f}{cpu/base[1][1]:>11.2f}  {notes}")
PY
}

weir_head() { # listen upstream [plugins-dir]: one worker, one listener, upstream "app"
    cat <<TOML
plugins-dir = "${3:-$root/target/plugins}"
access-log = false
workers = 1
[[listeners]]
address = "$1"
[upstreams.app]
targets = ["$2"]
TOML
}

weir_route_manifest() { # listen upstream filters [plugins-dir]: one worker, one route
    weir_head "$1" "$2" "${4:-}"
    cat <<TOML
[[routes]]
upstream = "app"
filters = [$3]
TOML
}

cpu_added() { # results base label...: the median CPU per request each label adds to base
    python3 - "$@" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
cpu = lambda label: median(float(r[2]) for r in runs if r[0] == label)
base = sys.argv[2]
# Results that hold every label once per round also give each round's own difference (rows
# measured minutes apart drift less within a round): their median and range show the noise.
labels = list(dict.fromkeys(r[0] for r in runs))
rounds = [runs[i:i + len(labels)] for i in range(0, len(runs), len(labels))]
paired = all(sorted(r[0] for r in rnd) == sorted(labels) for rnd in rounds)
for label in sys.argv[3:]:
    line = f"{label} adds {cpu(label) - cpu(base):.1f} us CPU per request over {base}"
    if paired and len(rounds) > 1:
        at = lambda rnd, l: next(float(r[2]) for r in rnd if r[0] == l)
        d = sorted(at(rnd, label) - at(rnd, base) for rnd in rounds)
        line += f" (per round: median {median(d):.1f}, from {d[0]:.1f} to {d[-1]:.1f})"
    print(line)
PY
}
