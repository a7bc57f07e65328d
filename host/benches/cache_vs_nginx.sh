#!/usr/bin/env bash
# The response cache and compression, side by side with nginx in one run on 127.0.0.1:
# 1. cache hits: nginx `proxy_cache` hit vs weir cache hit (1 KiB body, max-age=3600), with
#    weir without a cache (every request to the origin) for reference;
# 2. compression of a 16 KiB text page: nginx `gzip` (level 6) vs weir gzip level 6, and
#    weir's Brotli 4 and zstd 3: CPU per request and per KiB, and the bytes sent;
# 3. hit ratio of a Zipf-distributed trace (s = 1.0, 10,000 objects of 4 KiB) against the
#    zone's memory, beside an exact LRU of the same byte size replaying the same trace.
# wrk (HTTP/1.1 keep-alive), rows interleaved over ROUNDS; proxies on one pinned CPU.
#
# Env: DURATION (default 10s), CONNECTIONS (32), ROUNDS (3), ZIPF_REQUESTS (30000).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl

origin=127.0.0.1:19600
head -c 16384 README.md > "$work/page.txt"
head -c 1024 README.md > "$work/small.txt"
head -c 3072 /dev/urandom | base64 -w0 > "$work/obj"   # 4096 bytes
chmod 755 "$work"; chmod 644 "$work"/*.txt "$work/obj"   # nginx's workers run as another user
taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf origin "server { listen $origin;
    location = /small { alias $work/small.txt; default_type text/plain; add_header Cache-Control 'public, max-age=3600'; }
    location = /page { alias $work/page.txt; default_type text/plain; }
    location = /pagec { alias $work/page.txt; default_type text/plain; add_header Cache-Control 'public, max-age=3600'; }
    location /z/ { root $work; try_files /obj =404; default_type text/plain; add_header Cache-Control 'max-age=3600'; }
}")" & pids+=($!)

ngx=127.0.0.1:19601
mkdir -p "$work/ngx-cache"
taskset -c "$proxy_cpus" "$nginx_bin" -c "$(nginx_conf proxy "
    upstream app { server $origin; keepalive 64; }
    proxy_cache_path $work/ngx-cache keys_zone=main:16m max_size=64m;
    gzip on; gzip_comp_level 6; gzip_types text/plain; gzip_min_length 256;
    server { listen $ngx;
        location /small { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
            proxy_cache main; add_header X-Cache \$upstream_cache_status; }
        location /pagec { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";
            proxy_cache main; add_header X-Cache \$upstream_cache_status; }
        $nginx_proxy_location }")" & ngx_pid=$!; pids+=($ngx_pid)

weir_with() { # port route-lines [top-lines]
    cat > "$work/$1.toml" <<TOML
access-log = false
workers = 1
${3:-}
[[listeners]]
address = "$1"
[upstreams.app]
targets = ["$origin"]
[cache-zones.main]
memory = "64MiB"
[[routes]]
upstream = "app"
$2
TOML
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/$1.toml" > /dev/null & pids+=($!)
    echo $!
}
plain=127.0.0.1:19602; plain_pid=$(weir_with $plain "")
cached=127.0.0.1:19603; cached_pid=$(weir_with $cached 'cache = { zone = "main" }
compress = { codings = ["gzip"], gzip-level = 6, types = ["text/plain"], min-size = 2048 }')
gz=127.0.0.1:19604; gz_pid=$(weir_with $gz 'compress = { codings = ["gzip"], gzip-level = 6, types = ["text/plain"] }')
br=127.0.0.1:19605; br_pid=$(weir_with $br 'compress = { codings = ["br"], brotli-level = 4, types = ["text/plain"] }')
zs=127.0.0.1:19606; zs_pid=$(weir_with $zs 'compress = { codings = ["zstd"], zstd-level = 3, types = ["text/plain"] }')
wait_up "http://$origin/small" "http://$ngx/small" "http://$plain/small" "http://$cached/small" "http://$gz/page" "http://$br/page" "http://$zs/page"
for u in "http://$ngx/small" "http://$cached/small" "http://$ngx/pagec" "http://$cached/pagec"; do
    curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$u"; curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$u"
done
# Both must be serving hits before anything is measured.
ngx_status=$(curl -s -D- -o /dev/null "http://$ngx/small" | tr -d '\r' | grep -i '^x-cache' || true)
weir_status=$(curl -s -D- -o /dev/null "http://$cached/small" | tr -d '\r' | grep -i '^cache-status' || true)
echo "nginx: $ngx_status"; echo "weir:  $weir_status"
[[ $ngx_status == *HIT* && $weir_status == *hit* ]] || { echo "a cache is not hitting: not measuring" >&2; exit 1; }

echo
echo "1. cache hits (1 KiB; and the 16 KiB page gzip-compressed): wrk $conns connections, $duration x $rounds rounds"
echo "   16 KiB gzip hit, bytes: nginx $(curl -s -H 'Accept-Encoding: gzip' "http://$ngx/pagec" | wc -c), weir $(curl -s -H 'Accept-Encoding: gzip' "http://$cached/pagec" | wc -c)"
results=$(for _ in $(seq 1 "$rounds"); do
    run "hit: nginx proxy_cache" "$ngx_pid" wrk -t1 -c"$conns" "http://$ngx/small"
    run "hit: weir cache" "$cached_pid" wrk -t1 -c"$conns" "http://$cached/small"
    run "hit: weir, no cache (origin)" "$plain_pid" wrk -t1 -c"$conns" "http://$plain/small"
    run "gzip hit: nginx proxy_cache+gzip" "$ngx_pid" wrk -t1 -c"$conns" -H 'Accept-Encoding: gzip' "http://$ngx/pagec"
    run "gzip hit: weir (stored gzip copy)" "$cached_pid" wrk -t1 -c"$conns" -H 'Accept-Encoding: gzip' "http://$cached/pagec"
done)
report "$results"

echo
echo "2. compression of a 16 KiB text page (Accept-Encoding: gzip, br, zstd)"
ae=(-H 'Accept-Encoding: gzip, br, zstd')
for p in "$ngx" "$gz" "$br" "$zs"; do
    printf '%-22s %s bytes (%s)\n' "$p" "$(curl -s "${ae[@]}" "http://$p/page" | wc -c)" \
        "$(curl -s -D- -o /dev/null "${ae[@]}" "http://$p/page" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding" {print $2}')"
done
echo "identity: $(wc -c < "$work/page.txt") bytes"
results=$(for _ in $(seq 1 "$rounds"); do
    run "gzip: nginx gzip 6" "$ngx_pid" wrk -t1 -c"$conns" "${ae[@]}" "http://$ngx/page"
    run "gzip: weir gzip 6" "$gz_pid" wrk -t1 -c"$conns" "${ae[@]}" "http://$gz/page"
    run "gzip: weir br 4" "$br_pid" wrk -t1 -c"$conns" "${ae[@]}" "http://$br/page"
    run "gzip: weir zstd 3" "$zs_pid" wrk -t1 -c"$conns" "${ae[@]}" "http://$zs/page"
    run "gzip: weir identity" "$plain_pid" wrk -t1 -c"$conns" "http://$plain/page"
done)
report "$results"
python3 - "$results" <<'PY'
import sys
from statistics import median
runs = [l.split("\t") for l in sys.argv[1].strip().splitlines()]
cpu = lambda label: median(float(r[2]) for r in runs if r[0] == label)
ident = cpu("gzip: weir identity")
for label in ["gzip: nginx gzip 6", "gzip: weir gzip 6", "gzip: weir br 4", "gzip: weir zstd 3"]:
    extra = cpu(label) - (ident if "weir" in label else 0)
    print(f"{label}: {cpu(label) / 16:.2f} us CPU per KiB" + (f" ({extra / 16:.2f} us/KiB over identity)" if "weir" in label else ""))
PY

echo
echo "3. hit ratio, Zipf s=1.0 over 10,000 objects of 4 KiB, ${ZIPF_REQUESTS:-30000} requests"
for mem in 4MiB 8MiB 16MiB 32MiB; do
    z=127.0.0.1:$((19620 + $(echo "$mem" | tr -dc 0-9)))
    sed "s/memory = \"64MiB\"/memory = \"$mem\"/; s/address = \"$cached\"/address = \"$z\"/" "$work/$cached.toml" > "$work/z-$mem.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/z-$mem.toml" > /dev/null & zp=$!; pids+=($zp)
    wait_up "http://$z/z/0"
    python3 - "$z" "$mem" "${ZIPF_REQUESTS:-30000}" <<'PY'
import http.client, random, sys, collections
addr, mem, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = addr.split(":")
objects = 10_000
weights = [1 / (i + 1) for i in range(objects)]
rng = random.Random(7)
trace = rng.choices(range(objects), weights=weights, k=n)
c = http.client.HTTPConnection(host, int(port))
hits = 0
for k in trace:
    c.request("GET", f"/z/{k}")
    r = c.getresponse(); r.read()
    hits += "hit" in (r.getheader("cache-status") or "")
# An exact LRU holding as many 4 KiB objects as the zone's bytes allow (~4.5 KiB charged each).
cap = int(mem[:-3]) * (1 << 20) // (4096 + 600)
lru, lru_hits = collections.OrderedDict(), 0
for k in trace:
    if k in lru:
        lru_hits += 1; lru.move_to_end(k)
    else:
        lru[k] = 1
        if len(lru) > cap: lru.popitem(last=False)
print(f"zone {mem:>6}: weir hit ratio {hits / n:.3f}   exact LRU of the same size {lru_hits / n:.3f}")
PY
    kill "$zp"
done
