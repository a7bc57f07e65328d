#!/usr/bin/env bash
# Side-by-side TLS benchmark on 127.0.0.1, in one run: nginx and weir terminate TLS (same
# ECDSA P-256 certificate, TLS 1.3) and proxy to one nginx upstream answering 200 "hello".
#   TLS h1:     wrk, HTTP/1.1 keep-alive over TLS
#   TLS h2:     h2load, HTTP/2 over TLS (ALPN), 10 streams per connection
#   handshakes: wrk with "Connection: close": one full TLS handshake per request
# and, for h1 and h2, weir with a chain of 3 header filters (what the filters add under TLS).
# Reported per group: req/s (handshakes/s for the last) and the proxy's CPU time per request,
# with ratios to nginx. Absolute numbers on shared machines mean little; the ratios are the
# result. See lib.sh for pinning and rounds.
#
# Env: DURATION (default 10s), CONNECTIONS (default 32), ROUNDS (default 3).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk h2load nginx curl openssl

up=127.0.0.1:19200; pa=127.0.0.1:19201; pb=127.0.0.1:19202; pc=127.0.0.1:19203
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null

taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $pa ssl http2;
        ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
        $nginx_proxy_location }")" & pids+=($!)
nginx_pid=$!

weir_manifest() { # listen filters
    cat <<TOML
plugins-dir = "$root/target/plugins"
access-log = false
workers = 1
[[listeners]]
address = "$1"
tls = { certificates = [{ cert = "$work/cert.pem", key = "$work/key.pem" }] }
[upstreams.app]
targets = ["$up"]
[[routes]]
upstream = "app"
filters = [$2]
$(header_filters)
TOML
}
weir_manifest "$pb" "" > "$work/weir.toml"
weir_manifest "$pc" '"h1", "h2", "h3"' > "$work/headers.toml"
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/weir.toml" > /dev/null & pids+=($!); weir_pid=$!
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/headers.toml" > /dev/null & pids+=($!); weir_headers=$!
wait_up "http://$up/" "https://$pa/" "https://$pb/" "https://$pc/"

echo "$conns connections, $duration per proxy and load x $rounds rounds; TLS 1.3, ECDSA P-256, 6-byte body"
echo "proxies (1 worker each) on CPU $proxy_cpus; load generators and upstream on CPU $load_cpus"
results=$(for _ in $(seq 1 "$rounds"); do
    for p in "nginx $nginx_pid $pa" "weir $weir_pid $pb" "weir+3_header_filters $weir_headers $pc"; do
        set -- $p
        run "TLS h1: ${1//_/ }" "$2" wrk -t1 -c"$conns" "https://$3/"
    done
    for p in "nginx $nginx_pid $pa" "weir $weir_pid $pb" "weir+3_header_filters $weir_headers $pc"; do
        set -- $p
        run "TLS h2: ${1//_/ }" "$2" h2load -t1 -c"$conns" -m10 "https://$3/"
    done
    for p in "nginx $nginx_pid $pa" "weir $weir_pid $pb"; do
        set -- $p
        run "handshakes: $1" "$2" wrk -t1 -c"$conns" -H 'Connection: close' "https://$3/"
    done
done)
report "$results"
cpu_added "$results" "TLS h1: weir" "TLS h1: weir+3 header filters"
cpu_added "$results" "TLS h2: weir" "TLS h2: weir+3 header filters"
