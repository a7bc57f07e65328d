#!/usr/bin/env bash
# Memory per idle client connection, side by side in one run: nginx (reverse proxy, 2 worker
# processes) and weir (2 workers), each in front of the same nginx upstream. N HTTP/1.1
# keep-alive connections (default 5000) each send one request, read the answer and stay open;
# the proxy's RSS (all its processes, from /proc) before and after gives KiB per idle
# connection; weir also with HTTP/2 (prior knowledge, one stream each) and with TLS (HTTP/1.1,
# TLS 1.3, ECDSA P-256), nginx with TLS too.
#
# Env: IDLE_CONNECTIONS (default 5000).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools nginx curl python3 openssl
n=${IDLE_CONNECTIONS:-5000}
ulimit -n $((n * 2 + 1024))

up=127.0.0.1:19300; pa=127.0.0.1:19301; pb=127.0.0.1:19302; pc=127.0.0.1:19303
ta=127.0.0.1:19304; tb=127.0.0.1:19305
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2> /dev/null
"$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
conf=$(nginx_conf proxy "upstream app { server $up; keepalive 64; }
    server { listen $pa; keepalive_timeout 300s; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
    server { listen $ta ssl; keepalive_timeout 300s; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }")
sed -i "s/worker_processes 1;/worker_processes 2;/; s/worker_connections 4096;/worker_connections $((n + 1024));/" "$conf"
"$nginx_bin" -c "$conf" & pids+=($!); nginx_pid=$!

weir_manifest() { # listen [tls table]
    cat <<TOML
access-log = false
workers = 2
header-read-timeout = "300s"
client-idle-timeout = "300s"
[[listeners]]
address = "$1"
${2:-}
[upstreams.app]
targets = ["$up"]
[[routes]]
upstream = "app"
TOML
}
# One weir per protocol, so that each starts from a fresh heap.
weir_manifest "$pb" > "$work/h1.toml"; weir_manifest "$pc" > "$work/h2.toml"
weir_manifest "$tb" "tls = { certificates = [{ cert = \"$work/cert.pem\", key = \"$work/key.pem\" }] }" > "$work/tls.toml"
RUST_LOG=warn "$weir" run "$work/h1.toml" > /dev/null & pids+=($!); weir_h1=$!
RUST_LOG=warn "$weir" run "$work/h2.toml" > /dev/null & pids+=($!); weir_h2=$!
RUST_LOG=warn "$weir" run "$work/tls.toml" > /dev/null & pids+=($!); weir_tls=$!
wait_up "http://$up/" "http://$pa/" "http://$pb/" "http://$pc/"
curl -sk --retry 20 --retry-connrefused --retry-delay 0 -o /dev/null "https://$ta/" -o /dev/null "https://$tb/"

python3 - "$n" "$nginx_pid" "$pa" "$weir_h1" "$pb" "$weir_h2" "$pc" "$ta" "$weir_tls" "$tb" <<'PY'
import os, socket, ssl, sys, time
n = int(sys.argv[1])
# Idle connections are measured after this long: weir parks an HTTP/1.1 connection between
# 0.5 and 1.5 s after its last response, and returns what the parked ones freed a second after.
settle = float(os.environ.get("IDLE_SETTLE", "5"))
cases = [("nginx  HTTP/1.1", sys.argv[2], sys.argv[3], "h1"),
         ("weir   HTTP/1.1", sys.argv[4], sys.argv[5], "h1"),
         ("weir   HTTP/2 (h2c)", sys.argv[6], sys.argv[7], "h2"),
         ("nginx  TLS HTTP/1.1", sys.argv[2], sys.argv[8], "tls"),
         ("weir   TLS HTTP/1.1", sys.argv[9], sys.argv[10], "tls")]
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE

def rss_kib(pid):
    pids = [pid] + [c for c in os.listdir("/proc") if c.isdigit() and ppid(c) == pid]
    total = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total

def ppid(p):
    try:
        return open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]
    except OSError:
        return None

# HTTP/2 prior knowledge: preface, empty SETTINGS, SETTINGS ack, one GET (HPACK: literal
# fields without indexing, so no table state is needed).
def h2_request(host):
    def lit(name, value):
        return bytes([0, len(name)]) + name + bytes([len(value)]) + value
    block = b"\x82\x86\x84" + lit(b":authority", host.encode())  # :method GET, :scheme http, :path /
    frame = lambda t, f, s, p: len(p).to_bytes(3, "big") + bytes([t, f]) + s.to_bytes(4, "big") + p
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") + frame(1, 5, 1, block))

for label, pid, addr, proto in cases:
    host, port = addr.split(":")
    time.sleep(1)
    before = rss_kib(pid)
    socks = []
    for i in range(n):
        s = socket.create_connection((host, int(port)))
        if proto == "tls":
            s = tls.wrap_socket(s, server_hostname="localhost")
        if proto in ("h1", "tls"):
            s.sendall(f"GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
            got = b""
            while not got.endswith(b"hello\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit(f"{label}: connection {i} closed")
                got += chunk
        else:
            s.sendall(h2_request(addr))
            got = b""
            while b"hello\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit(f"{label}: connection {i} closed")
                got += chunk
        socks.append(s)
    time.sleep(settle)
    after = rss_kib(pid)
    print(f"{label}: {n} idle connections: RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB, "
          f"{(after - before) / n:.1f} KiB per connection")
    for s in socks:
        s.close()
    time.sleep(2)
PY
