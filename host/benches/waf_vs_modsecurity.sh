#!/usr/bin/env bash
# The WAF against the reference engine, side by side in one run on 127.0.0.1, both running
# the same OWASP Core Rule Set (Debian's modsecurity-crs, paranoia level 1):
#   upstream: nginx answering 200 "hello" (keep-alive)
#   nginx as reverse proxy, nginx + ModSecurity v3 (libnginx-mod-http-modsecurity) + CRS,
#   weir with no filters, weir + the waf filter + CRS.
# Load: wrk, HTTP/1.1 keep-alive, benign GETs with four query arguments (two of them different
# in every request, so no cache sees only repeats) and browser headers. Before measuring, each
# WAF must pass such a request and block an SQL injection.
# Reported: req/s, the proxy's CPU time per request, ratios to nginx, then what each WAF
# adds over its proxy, and the WAF CPU ratio weir / ModSecurity.
#
# Part 2, instance start: two more weirs with the waf in a fresh instance per request
# (`isolation = "per-request"`), one whose instances run `init` (read and compile the CRS)
# and one whose instances start from a snapshot taken after one `init`; REQUESTS sequential
# benign requests to each. Reported: the last instance's start, the snapshot's cost at load,
# the mean hook call, the mean request time as curl sees it, and the proxies' RSS.
#
# Env: DURATION (default 10s), CONNECTIONS (default 32), ROUNDS (default 3), REQUESTS (200).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl
crs=/usr/share/modsecurity-crs; setup=/etc/modsecurity/crs/crs-setup.conf
modsec_module=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
[ -f "$modsec_module" ] && [ -d "$crs/rules" ] || {
    echo "needs the ModSecurity nginx module and the CRS:" >&2
    echo "  apt-get install libnginx-mod-http-modsecurity modsecurity-crs" >&2; exit 1; }
[ -f target/plugins/waf.wasm ] || { echo "target/plugins/waf.wasm missing: run make plugins" >&2; exit 1; }

up=127.0.0.1:19300; ngx=127.0.0.1:19301; msc=127.0.0.1:19302; plain=127.0.0.1:19303; waf=127.0.0.1:19304
taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $ngx; $nginx_proxy_location }")" & pids+=($!)
nginx_pid=$!
cat > "$work/modsec.conf" <<CONF
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecAuditEngine Off
Include $setup
Include $crs/rules/*.conf
CONF
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf modsec "upstream app { server $up; keepalive 64; }
    modsecurity on; modsecurity_rules_file $work/modsec.conf;
    server { listen $msc; $nginx_proxy_location }" "load_module $modsec_module;")" & pids+=($!)
modsec_pid=$!
weir_route_manifest "$plain" "$up" "" > "$work/plain.toml"
{ weir_route_manifest "$waf" "$up" '"waf"'; cat <<TOML
[filters.waf]
plugin = "waf.wasm"
files = { "/crs" = "$crs", "/crs-setup" = "$(dirname "$setup")" }
memory-limit = "256MiB"
cpu-deadline = "200ms"
config = { rules = ["/crs-setup/$(basename "$setup")", "/crs/rules/*.conf"] }
TOML
} > "$work/waf.toml"
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/plain.toml" > /dev/null & pids+=($!)
plain_pid=$!
RUST_LOG=error taskset -c "$proxy_cpus" "$weir" run "$work/waf.toml" > /dev/null & pids+=($!)
waf_pid=$!

path='/products?id=42&sort=price&page=2&q=blue+shoes'
headers=(-H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0'
    -H 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
    -H 'Accept-Language: en-GB,en;q=0.9' -H 'Accept-Encoding: gzip, deflate, br'
    -H 'Cookie: session=abc123; theme=dark')
attack="/search?q=1%27%20OR%20%271%27%3D%271"
# wrk: the same path with a changing id and search term per request.
cat > "$work/vary.lua" <<'LUA'
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", "/products?id=" .. n .. "&sort=price&page=2&q=blue+shoes+" .. (n * 7919 % 10007))
end
LUA
wait_up "http://$up/" "http://$ngx/" "http://$msc/" "http://$plain/" "http://$waf/"
for p in "$msc" "$waf"; do
    ok=$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "http://$p$path")
    bad=$(curl -s -o /dev/null -w '%{http_code}' "${headers[@]}" "http://$p$attack")
    [ "$ok/$bad" = "200/403" ] || { echo "$p: benign $ok, attack $bad (want 200/403)" >&2; exit 1; }
done

echo "wrk: $conns connections, $duration per proxy x $rounds rounds; GET /products?id=<n>&sort=price&page=2&q=blue+shoes+<m> with browser headers"
echo "proxies (1 worker each) on CPU $proxy_cpus; wrk and upstream on CPU $load_cpus; CRS PL1 in both WAFs"
results=$(for _ in $(seq 1 "$rounds"); do
    run "nginx" "$nginx_pid" wrk -t1 -c"$conns" -s "$work/vary.lua" "${headers[@]}" "http://$ngx/"
    run "nginx+modsecurity" "$modsec_pid" wrk -t1 -c"$conns" -s "$work/vary.lua" "${headers[@]}" "http://$msc/"
    run "weir" "$plain_pid" wrk -t1 -c"$conns" -s "$work/vary.lua" "${headers[@]}" "http://$plain/"
    run "weir+waf" "$waf_pid" wrk -t1 -c"$conns" -s "$work/vary.lua" "${headers[@]}" "http://$waf/"
done)
report "$results"
cpu_added "$results" nginx nginx+modsecurity
cpu_added "$results" weir weir+waf
python3 - "$results" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
cpu = lambda label: median(float(r[2]) for r in runs if r[0] == label)
print(f"CPU per request, weir+waf / nginx+modsecurity: {cpu('weir+waf') / cpu('nginx+modsecurity'):.3f}")
PY

echo
echo "instance start: the waf in a fresh instance per request, ${REQUESTS:-200} sequential requests each"
for start in init snapshot; do
    port=$([ "$start" = init ] && echo 19305 || echo 19306)
    { echo "admin = \"127.0.0.1:$((port + 100))\""; sed -e "s/$waf/127.0.0.1:$port/" \
        -e 's/^cpu-deadline = .*/&\nisolation = "per-request"\ninstance-start = "'"$start"'"/' "$work/waf.toml"; } > "$work/$start.toml"
    RUST_LOG=error taskset -c "$proxy_cpus" "$weir" run "$work/$start.toml" > /dev/null & pids+=($!)
    pid=$!
    wait_up "http://127.0.0.1:$port/"
    for i in $(seq 1 "${REQUESTS:-200}"); do
        curl -s -o /dev/null -w '%{time_total}\n' "${headers[@]}" "http://127.0.0.1:$port/products?id=$i&q=blue+shoes+$i"
    done > "$work/$start.times"
    total=$(awk '{ t += $1 } END { print t }' "$work/$start.times")
    curl -s "http://127.0.0.1:$((port + 100))/status" > "$work/$start.json"
    python3 - "$work/$start.json" "$start" "$total" "${REQUESTS:-200}" "$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")" <<'PY'
import json, sys
path, start, total, n, rss = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
f = json.load(open(path))["filters"][0]
calls = f["metrics"]["call_time_ns"]
snap = f.get("snapshot_ms")
snap = f"{snap:.0f} ms" if snap else "-"
print(f"instance-start = {start:8}  instance start {f['instance_start_ms']:7.2f} ms"
      f"  snapshot at load {snap:>8}  hook call {calls['sum'] / calls['count'] / 1e6:6.2f} ms"
      f"  request {total / n * 1000:6.2f} ms  instances {f['instances_created']}  RSS {rss / 1024:.0f} MiB")
PY
done
