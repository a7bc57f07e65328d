#!/usr/bin/env bash
# Start two echo upstreams and weir with examples/weir.toml, then show the filters at work.
# Expects `make build` to have run (the Makefile's `demo` target does). Set DEMO_EXIT=1 to
# stop after the walkthrough instead of serving until Ctrl-C.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=target/release

if ! command -v curl >/dev/null; then
    echo "installing curl for the walkthrough" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends curl >&2
fi

# The shop's web application firewall runs the OWASP Core Rule Set from Debian's package.
if [ ! -d /usr/share/modsecurity-crs/rules ]; then
    echo "installing modsecurity-crs (the OWASP Core Rule Set) for the WAF" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends modsecurity-crs >&2
fi

# The API's rate limit is shared by two nodes through Redis (Debian's redis-server).
if ! command -v redis-server >/dev/null; then
    echo "installing redis-server for the two-node rate limit" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >&2
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

$bin/examples/echo_upstream 127.0.0.1:9001 one & pids+=($!)
$bin/examples/echo_upstream 127.0.0.1:9002 two & pids+=($!)
$bin/weir check examples/weir.toml
RUST_LOG=${RUST_LOG:-info} $bin/weir run examples/weir.toml & pids+=($!)
redis-server --port 6390 --bind 127.0.0.1 --save "" --appendonly no > /dev/null & redis_pid=$!
RUST_LOG=${RUST_LOG:-info} $bin/weir run examples/weir-node2.toml > /dev/null & node2_pid=$!
pids+=("$redis_pid" "$node2_pid")

for _ in $(seq 1 100); do
    curl -s -o /dev/null http://127.0.0.1:8080/ && curl -s -o /dev/null http://127.0.0.1:8081/ && break
    sleep 0.1
done
# Both nodes connected to Redis (they connect in the background and retry).
store_up() { curl -s "http://127.0.0.1:$1/status" | sed -n '/"stores"/,$p' | grep -q '"up": true'; }
for _ in $(seq 1 50); do
    store_up 9901 && store_up 9902 && break
    sleep 0.1
done

show() {
    echo
    echo "\$ $(printf '%q ' "$@")"
    "$@" || true
}
echo "================ Weir demo: filters at work ================"
echo "# A header is added on the way in (x-weir-demo) and out (x-served-by); 'server' is removed;"
echo "# security-headers adds x-frame-options, nosniff, referrer-policy and the cross-origin policies:"
show curl -s -i http://127.0.0.1:8080/hello
echo "# Moved pages redirect (rewrite), and /u/<id> reaches the upstream as /users/<id>:"
show curl -s -i http://127.0.0.1:8080/old/page?x=1
show sh -c "curl -s http://127.0.0.1:8080/u/42 | head -1"
echo "# /admin is blocked by the block filter:"
show curl -s -i http://127.0.0.1:8080/admin
echo "# The API without a key is refused by the api-key filter:"
show curl -s -i http://127.0.0.1:8080/api/items
echo "# ...and proxied with a valid key (which the upstream never sees):"
show curl -s -i -H 'x-api-key: demo-key-123' http://127.0.0.1:8080/api/items
echo "# /staff needs a staff login (auth-basic, bcrypt): refused without, proxied with, and the"
echo "# upstream sees x-remote-user (a client-sent one is dropped) but not the credentials:"
show curl -s -i http://127.0.0.1:8080/staff
show curl -s -u ada:s3cret -H 'x-remote-user: root' http://127.0.0.1:8080/staff
echo "# /me needs a JWT (auth-jwt): none gets 401 with the Bearer challenge; a token signed with"
echo "# the demo key (made here with openssl) passes, and the upstream learns the subject:"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
jwt_input="$(printf '{"alg":"HS256","typ":"JWT","kid":"demo"}' | b64url).$(printf '{"iss":"https://demo.weir","aud":"demo","sub":"ada","exp":%s}' "$(( $(date +%s) + 3600 ))" | b64url)"
jwt="$jwt_input.$(printf '%s' "$jwt_input" | openssl dgst -sha256 -hmac demo-secret-demo-secret-demo-secret -binary | b64url)"
show curl -s -i http://127.0.0.1:8080/me
show sh -c "curl -s -H 'authorization: Bearer $jwt' http://127.0.0.1:8080/me | grep -E '^GET|x-user'"
echo "# /internal admits only office addresses (ip-filter): curl itself, a client 10.1.2.3 named"
echo "# by the trusted proxy, but not 203.0.113.9 nor the denied 10.6.6.6:"
show curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/internal
show curl -s -o /dev/null -w '%{http_code}\n' -H 'x-forwarded-for: 10.1.2.3' http://127.0.0.1:8080/internal
show curl -s -i -H 'x-forwarded-for: 203.0.113.9' http://127.0.0.1:8080/internal
show curl -s -o /dev/null -w '%{http_code}\n' -H 'x-forwarded-for: 10.6.6.6' http://127.0.0.1:8080/internal
echo "# /eu serves European clients only (geo, from geo-databases): a client in GB named by the"
echo "# trusted proxy is let through with its location; one in JP, or an unplaced one, is refused:"
show sh -c "curl -s -H 'x-forwarded-for: 81.2.69.7' http://127.0.0.1:8080/eu/shop | grep -E '^GET|x-geo'"
show curl -s -i -H 'x-forwarded-for: 203.0.113.9' http://127.0.0.1:8080/eu/shop
show curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/eu/shop
echo "# /shop runs the OWASP Core Rule Set (waf): an ordinary search passes; an SQL injection and"
echo "# an XSS attempt get a bare 403, and the log line names the rules and the anomaly score:"
show sh -c "curl -s 'http://127.0.0.1:8080/shop/search?q=blue+shoes&page=2' | head -1"
show curl -s -i "http://127.0.0.1:8080/shop/search?q=1%27%20OR%20%271%27%3D%271"
show curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:8080/shop/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
echo "# The CRS was read and compiled once, at load; new waf instances start from that snapshot:"
show sh -c "curl -s http://127.0.0.1:9901/status | python3 -c 'import json,sys; f=[f for f in json.load(sys.stdin)[\"filters\"] if f[\"name\"]==\"waf\"][0]; print(f[\"instance_start\"], \"snapshot made in\", round(f[\"snapshot_ms\"]), \"ms at load; an instance starts in\", f[\"instance_start_ms\"], \"ms\")'"
echo "# One canonical request: path tricks are the same path to routing, filters and upstream:"
show curl -s -o /dev/null -w '%{http_code}\n' --path-as-is 'http://127.0.0.1:8080/%61pi/items'
show curl -s -o /dev/null -w '%{http_code}\n' --path-as-is 'http://127.0.0.1:8080//admin'
echo "# ...the upstream gets the canonical path, and a request id (a trusted proxy's sane id is kept, like"
echo "# the local client's here; a malformed one, or one from an untrusted client, is replaced):"
show curl -s --path-as-is -H 'x-api-key: demo-key-123' -H 'x-request-id: <forged>' 'http://127.0.0.1:8080/x/../api/items'
echo "# Browsers on https://app.example may call the API (cors): the preflight is answered by"
echo "# the proxy; another origin gets 403 and no CORS header:"
show curl -s -i -X OPTIONS -H 'origin: https://app.example' -H 'access-control-request-method: PUT' -H 'access-control-request-headers: x-api-key' http://127.0.0.1:8080/api/items
show curl -s -i -X OPTIONS -H 'origin: https://evil.example' -H 'access-control-request-method: PUT' http://127.0.0.1:8080/api/items
echo "# Each API key gets 10 requests a minute (rate-limit, GCRA, exact across workers); this"
echo "# key used 2 above, so 8 pass, then 429 with Retry-After and the RateLimit headers:"
show sh -c "for i in \$(seq 1 9); do curl -s -o /dev/null -w '%{http_code} ' -H 'x-api-key: demo-key-123' http://127.0.0.1:8080/api/items; done; echo"
show curl -s -i -H 'x-api-key: demo-key-123' http://127.0.0.1:8080/api/items
echo "# A second Weir node on :8081 keeps the same limit: its keys are on Redis, so the key"
echo "# is spent there too; another key still has its 10. /status shows the shared store:"
show curl -s -o /dev/null -w '%{http_code}\n' -H 'x-api-key: demo-key-123' http://127.0.0.1:8081/api/items
show curl -s -o /dev/null -w '%{http_code}\n' -H 'x-api-key: other-key' http://127.0.0.1:8081/api/items
show sh -c "curl -s http://127.0.0.1:9902/status | sed -n '/\"stores\"/,/^  ]/p'"
echo "# /docs is cached for a minute (cache-policy gives the TTL) and compressed: the first request"
echo "# fills the cache, the second is a hit with its Age (Cache-Status says which):"
show sh -c "curl -s -D- -o /dev/null http://127.0.0.1:8080/docs/guide | grep -iE '^(cache-status|age)'"
show sh -c "curl -s -D- -o /dev/null http://127.0.0.1:8080/docs/guide | grep -iE '^(cache-status|age)'"
echo "# ...compressed by what the client accepts (zstd preferred), from the same cached entry:"
show sh -c "curl -s -D- -o /dev/null -H 'accept-encoding: gzip, br, zstd' http://127.0.0.1:8080/docs/guide | grep -iE '^(content-encoding|vary|cache-status)'"
echo "# The second node caches /docs too (a miss there, then a hit):"
show sh -c "curl -s -D- -o /dev/null http://127.0.0.1:8081/docs/guide | grep -i '^cache-status'"
show sh -c "curl -s -D- -o /dev/null http://127.0.0.1:8081/docs/guide | grep -i '^cache-status'"
echo "# Purge everything tagged docs through the first node's admin API; the purge goes out on"
echo "# Redis, so the next request goes upstream again on both nodes:"
show curl -s -X POST 'http://127.0.0.1:9901/cache/purge?tag=docs'
sleep 0.2
show sh -c "curl -s -D- -o /dev/null http://127.0.0.1:8080/docs/guide | grep -i '^cache-status'"
show sh -c "curl -s -D- -o /dev/null http://127.0.0.1:8081/docs/guide | grep -i '^cache-status'"
show sh -c "curl -s http://127.0.0.1:9902/cache | sed -n '/shared_purges/,\$p'"
echo "# The admin endpoint shows each live filter's version (SHA-256), instances and metrics:"
show sh -c "curl -s http://127.0.0.1:9901/status | head -40"
echo "# Prometheus metrics on the admin address: requests by route, upstream, method and status class:"
show sh -c "curl -s http://127.0.0.1:9901/metrics | grep '^weir_requests_total'"
echo "# SIGHUP (or any change to the manifest or a plugin) reloads without failing a request:"
show kill -HUP "${pids[2]}"
sleep 1
show sh -c "curl -s http://127.0.0.1:9901/status | grep -E '\"(generation|succeeded|failed)\"'"
echo "# Each target's health, requests in flight and latency:"
show sh -c "curl -s http://127.0.0.1:9901/status | sed -n '/\"upstreams\"/,\$p'; echo"
echo "# Stop upstream 'two': requests keep succeeding (retried on 'one'), then the health check takes it out:"
show kill "${pids[1]}"
show sh -c 'for i in 1 2 3 4; do curl -s http://127.0.0.1:8080/hello | head -1; done'
sleep 2.5
show sh -c "curl -s http://127.0.0.1:9901/status | grep -E '\"(address|up)\"'"
echo
echo "============================================================="
echo "weir is serving on http://127.0.0.1:8080 (manifest: examples/weir.toml; admin on 127.0.0.1:9901)."
echo "Live dashboard: http://127.0.0.1:9901/dashboard   Metrics: http://127.0.0.1:9901/metrics"
echo "Edit examples/weir.toml or a file in target/plugins and watch it reload."
if [ "${DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "Try the commands above yourself; Ctrl-C stops everything."
wait
