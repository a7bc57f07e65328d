#!/usr/bin/env bash
# What the standard filters cost in the proxy, side by side in one run on 127.0.0.1:
#   upstream: nginx answering 200 "hello" (keep-alive)
#   nginx as reverse proxy (the reference), weir with no filters, and weir with:
#   security-headers (strict, response phase), rate-limit (per client IP, never spent),
#   auth-jwt with an HS256 token, auth-jwt with an ES256 token, and the stack an API would
#   run: auth-jwt (ES256) + rate-limit (per subject) + security-headers.
# Tokens are made here with openssl. Each proxy gets the same wrk load (HTTP/1.1
# keep-alive); reported: req/s, the proxy's CPU time per request and ratios to nginx, then
# what each filter adds over plain weir. See lib.sh for pinning and rounds.
#
# Env: DURATION (default 10s), CONNECTIONS (default 32), ROUNDS (default 3).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl openssl

up=127.0.0.1:19200; ngx=127.0.0.1:19201
taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $ngx; $nginx_proxy_location }")" & pids+=($!)
nginx_pid=$!

# Tokens: HS256 under a secret, ES256 under a fresh P-256 key (openssl signs DER; JWS
# wants r||s, 32 bytes each).
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
secret=bench-secret-bench-secret-bench-secret
claims=$(printf '{"iss":"https://bench","aud":"api","sub":"ada","exp":%s}' $(( $(date +%s) + 86400 )))
hs_input="$(printf '{"alg":"HS256","typ":"JWT"}' | b64url).$(printf '%s' "$claims" | b64url)"
hs_token="$hs_input.$(printf '%s' "$hs_input" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/es.key" 2>/dev/null
openssl ec -in "$work/es.key" -pubout -out "$work/es.pub" 2>/dev/null
es_input="$(printf '{"alg":"ES256","typ":"JWT"}' | b64url).$(printf '%s' "$claims" | b64url)"
es_sig=$(printf '%s' "$es_input" | openssl dgst -sha256 -sign "$work/es.key" -binary | python3 -c '
import sys
der = sys.stdin.buffer.read()
def int_at(i):  # an ASN.1 INTEGER at i: (value as 32 bytes, next index)
    assert der[i] == 2
    n = der[i + 1]
    return der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0"), i + 2 + n
r, i = int_at(2)
s, _ = int_at(i)
sys.stdout.buffer.write(r + s)' | b64url)
es_token="$es_input.$es_sig"
es_pem=$(awk '{printf "%s\\n", $0}' "$work/es.pub")

weir_manifest() { # listen filters
    weir_route_manifest "$1" "$up" "$2"
    cat <<TOML
[filters.secure]
plugin = "security-headers.wasm"
config = { preset = "strict" }
[filters.per-ip]
plugin = "rate-limit.wasm"
config.limits = [{ name = "per-ip", rate = 1000000000, per = "1s", key = ["client-ip"] }]
[filters.per-user]
plugin = "rate-limit.wasm"
config.limits = [{ name = "per-user", rate = 1000000000, per = "1s", key = ["context:jwt.sub"] }]
[filters.jwt-hs]
plugin = "auth-jwt.wasm"
config = { algorithms = ["HS256"], keys = [{ secret = "$secret" }], issuer = "https://bench", audience = "api", forward-claims = { sub = "x-user" } }
[filters.jwt-es]
plugin = "auth-jwt.wasm"
config = { algorithms = ["ES256"], keys = [{ pem = "$es_pem" }], issuer = "https://bench", audience = "api", forward-claims = { sub = "x-user" } }
TOML
}

labels=(); ports=(); weirs=(); tokens=()
add() { # label port filters token
    weir_manifest "$2" "$3" > "$work/$2.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/$2.toml" > /dev/null & pids+=($!)
    labels+=("$1"); ports+=("$2"); weirs+=($!); tokens+=("$4")
}
add "weir" 127.0.0.1:19202 "" ""
add "weir+security-headers" 127.0.0.1:19203 '"secure"' ""
add "weir+rate-limit" 127.0.0.1:19204 '"per-ip"' ""
add "weir+auth-jwt HS256" 127.0.0.1:19205 '"jwt-hs"' "$hs_token"
add "weir+auth-jwt ES256" 127.0.0.1:19206 '"jwt-es"' "$es_token"
add "weir+jwt ES256+limit+headers" 127.0.0.1:19207 '"jwt-es", "per-user", "secure"' "$es_token"
wait_up "http://$up/" "http://$ngx/"
for i in "${!labels[@]}"; do
    wait_up "http://${ports[$i]}/"
    # Each row measures what its label says: the token passes (a 401 would be cheaper).
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer ${tokens[$i]}" "http://${ports[$i]}/")
    [ "$status" = 200 ] || { echo "${labels[$i]}: answered $status, not 200" >&2; exit 1; }
done

echo "wrk: $conns connections, $duration per proxy x $rounds rounds; HTTP/1.1 keep-alive, 6-byte body"
echo "proxies (1 worker each) on CPU $proxy_cpus; wrk and upstream on CPU $load_cpus"
results=$(for _ in $(seq 1 "$rounds"); do
    run "nginx" "$nginx_pid" wrk -t1 -c"$conns" "http://$ngx/"
    for i in "${!labels[@]}"; do
        run "${labels[$i]}" "${weirs[$i]}" wrk -t1 -c"$conns" -H "authorization: Bearer ${tokens[$i]}" "http://${ports[$i]}/"
    done
done)
report "$results"
cpu_added "$results" weir "${labels[@]:1}"
