#!/usr/bin/env bash
# Side-by-side proxy benchmark on 127.0.0.1, in one run:
#   upstream: nginx answering 200 "hello" (keep-alive)
#   nginx as reverse proxy (keep-alive pool to the upstream)
#   one weir process with four routes, each its own row:
#     /plain    no filters
#     /chain    3 filters (headers on both phases, block, api-key)
#     /headers  3 header filters (each sets one request header)
#     /one      one header filter
# Each row gets the same wrk load (HTTP/1.1 keep-alive, small body), rows in a rotated order
# each round. Reported: req/s and the proxy's CPU time per request (utime+stime of all its
# processes, from /proc), ratios to nginx, and what each route's filters add over /plain,
# median and range of the per-round differences. The routes share one process because a
# process per row measured each process's own luck (its code and heap layout, about +-1 us
# here) along with the filters. Absolute numbers on shared machines mean little; the ratios
# are the result. See lib.sh for pinning and rounds.
#
# Env: DURATION (default 10s), CONNECTIONS (default 32), ROUNDS (default 4); WEIR_BASELINE:
# another weir binary (e.g. a build of the previous commit) measured alongside, with the same
# routes, for before/after figures from the same run; WEIR_BASELINE_PLUGINS: the filters
# built for it (default target/plugins; needed when the WIT version changed since).
set -euo pipefail
ROUNDS=${ROUNDS:-4}
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl

up=127.0.0.1:19100; pa=127.0.0.1:19101; pb=127.0.0.1:19102; pe=127.0.0.1:19105
baseline=${WEIR_BASELINE:-}
baseline_plugins=${WEIR_BASELINE_PLUGINS:-$root/target/plugins}

taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $pa; $nginx_proxy_location }")" & pids+=($!)
nginx_pid=$!

weir_manifest() { # listen [plugins-dir]: the four routes
    weir_head "$1" "$up" "${2:-}"
    cat <<TOML
[[routes]]
path = "/plain"
upstream = "app"
[[routes]]
path = "/chain"
upstream = "app"
filters = ["tag", "deny", "key"]
[[routes]]
path = "/headers"
upstream = "app"
filters = ["h1", "h2", "h3"]
[[routes]]
path = "/one"
upstream = "app"
filters = ["h1"]
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
weir_manifest "$pb" > "$work/weir.toml"
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/weir.toml" > /dev/null & pids+=($!); weir_pid=$!
wait_up "http://$up/" "http://$pa/" "http://$pb/plain"
labels=("nginx" "weir" "weir+3 filters" "weir+3 header filters" "weir+1 header filter")
pids_of=("$nginx_pid" "$weir_pid" "$weir_pid" "$weir_pid" "$weir_pid")
urls=("http://$pa/" "http://$pb/plain" "http://$pb/chain" "http://$pb/headers" "http://$pb/one")
if [ -n "$baseline" ]; then
    weir_manifest "$pe" "$baseline_plugins" > "$work/base.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$baseline" run "$work/base.toml" > /dev/null & pids+=($!); base_pid=$!
    wait_up "http://$pe/plain"
    labels+=("baseline weir" "baseline weir+3 filters" "baseline weir+3 header filters")
    pids_of+=("$base_pid" "$base_pid" "$base_pid")
    urls+=("http://$pe/plain" "http://$pe/chain" "http://$pe/headers")
fi

echo "wrk: $conns connections, $duration per row x $rounds rounds, rows in a rotated order; HTTP/1.1 keep-alive, 6-byte body"
echo "proxies (1 worker each) on CPU $proxy_cpus; wrk and upstream on CPU $load_cpus"
results=$(for r in $(seq 0 $((rounds - 1))); do
    for i in $(rotated ${#labels[@]} "$r"); do
        run "${labels[$i]}" "${pids_of[$i]}" wrk -t1 -c"$conns" -H 'x-api-key: bench-key' "${urls[$i]}"
    done
done)
report "$results"
echo "added over plain weir (3-filter chain: 4 hook calls; 3 header filters: 3; 1 header filter: 1):"
cpu_added "$results" "weir" "weir+3 filters" "weir+3 header filters" "weir+1 header filter"
if [ -n "$baseline" ]; then
    cpu_added "$results" "baseline weir" "baseline weir+3 filters" "baseline weir+3 header filters"
    python3 - "$results" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
cpu = lambda label: median(float(r[2]) for r in runs if r[0] == label)
print(f"this build vs baseline: plain {cpu('weir') / cpu('baseline weir'):.2f}x, 3 filters {cpu('weir+3 filters') / cpu('baseline weir+3 filters'):.2f}x, 3 header filters {cpu('weir+3 header filters') / cpu('baseline weir+3 header filters'):.2f}x CPU per request")
PY
fi
