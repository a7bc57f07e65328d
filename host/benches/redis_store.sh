#!/usr/bin/env bash
# What a shared rate limit on Redis costs, and how exact it is over several nodes, on
# 127.0.0.1 in one run:
#   1. CPU and latency: nginx upstream answering 200; weir with no filter, with rate-limit
#      (per client IP, never spent) on the node-local store, and the same on Redis. wrk
#      (HTTP/1.1 keep-alive) against each, interleaved over ROUNDS; reported: req/s, weir's
#      CPU per request and what each row adds over plain weir, Redis's own CPU per request,
#      Redis round trips per request (script calls / requests), and the mean latency with
#      one connection (one request at a time).
#   2. Accuracy: 3 weir nodes sharing one limit (RATE/s, burst BURST) on Redis, driven at
#      5x RATE spread over the nodes for ACCURACY_SECONDS; admitted vs allowed
#      (BURST + RATE x elapsed).
#   3. Shared cache purges: 2 nodes; the time from a purge through one node's admin API to
#      the other having applied it.
#
# Env: DURATION (default 10s), CONNECTIONS (32), ROUNDS (3), RATE (400), BURST (40),
#      ACCURACY_SECONDS (10).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl redis-server
rate=${RATE:-400}; burst=${BURST:-40}; accuracy_seconds=${ACCURACY_SECONDS:-10}

up=127.0.0.1:19300; redis_port=19301
taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)
taskset -c "$load_cpus" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" > /dev/null & pids+=($!)
redis_pid=$!
redis_url="redis://127.0.0.1:$redis_port/0"

redis_calls() { # script calls Redis answered so far
    redis-cli -p "$redis_port" info commandstats | tr -d '\r' |
        awk -F'[=,:]' '/^cmdstat_(evalsha|eval):/ { n += $3 } END { print n + 0 }'
}

weir_manifest() { # listen filters [store]
    weir_route_manifest "$1" "$up" "$2"
    cat <<TOML
[filters.local]
plugin = "rate-limit.wasm"
config.limits = [{ name = "per-ip", rate = 1000000000, per = "1s", key = ["client-ip"] }]
[filters.shared]
plugin = "rate-limit.wasm"
store = { backend = "redis", url = "$redis_url" }
config.limits = [{ name = "per-ip", rate = 1000000000, per = "1s", key = ["client-ip"] }]
TOML
}

labels=(); ports=(); weirs=()
add() { # label port filters
    weir_manifest "$2" "$3" > "$work/$2.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/$2.toml" > /dev/null & pids+=($!)
    labels+=("$1"); ports+=("$2"); weirs+=($!)
}
add "weir" 127.0.0.1:19302 ""
add "weir+rate-limit local" 127.0.0.1:19303 '"local"'
add "weir+rate-limit redis" 127.0.0.1:19304 '"shared"'
wait_up "http://$up/"
for p in "${ports[@]}"; do wait_up "http://$p/"; done

echo "== 1. cost: wrk $conns connections, $duration per row x $rounds rounds; weir (1 worker) on CPU $proxy_cpus, wrk, nginx and redis on CPU $load_cpus"
results=""; redis_rows=""
for _ in $(seq 1 "$rounds"); do
    for i in "${!labels[@]}"; do
        r0=$(cpu_ticks "$redis_pid"); c0=$(redis_calls)
        line=$(run "${labels[$i]}" "${weirs[$i]}" wrk -t1 -c"$conns" "http://${ports[$i]}/")
        r1=$(cpu_ticks "$redis_pid"); c1=$(redis_calls)
        results+="$line"$'\n'
        redis_rows+="${labels[$i]}"$'\t'"$(echo "$line" | cut -f2)"$'\t'"$((r1 - r0))"$'\t'"$((c1 - c0))"$'\n'
    done
done
# The warm-up in `run` (2 s) is outside the CPU window but inside the Redis call count:
# count round trips with a separate fixed-length run below instead.
report "$results"
cpu_added "$results" weir "${labels[@]:1}"

echo "== Redis round trips and Redis CPU per request (one 5 s run each)"
for i in "${!labels[@]}"; do
    c0=$(redis_calls); r0=$(cpu_ticks "$redis_pid")
    out=$(taskset -c "$load_cpus" wrk -t1 -c"$conns" -d5s "http://${ports[$i]}/")
    c1=$(redis_calls); r1=$(cpu_ticks "$redis_pid")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    python3 - "${labels[$i]}" "$reqs" "$((c1 - c0))" "$((r1 - r0))" "$hz" <<'PY'
import sys
label, reqs, calls, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"{label:<28} {calls / reqs:.3f} round trips/request, Redis CPU {ticks / hz * 1e6 / reqs:.1f} us/request")
PY
done

echo "== latency, one connection (5 s each, mean of wrk's per-request latency)"
for i in "${!labels[@]}"; do
    lat=$(taskset -c "$load_cpus" wrk -t1 -c1 -d5s "http://${ports[$i]}/" | awk '/Latency/ {print $2}')
    printf '%-28s %s\n' "${labels[$i]}" "$lat"
done

echo "== 2. accuracy: 3 nodes, one limit of $rate/s (burst $burst) on Redis, load 5x spread over the nodes for ${accuracy_seconds}s"
redis-cli -p "$redis_port" flushall > /dev/null
nodes=()
for n in 1 2 3; do
    port=$((19310 + n))
    { weir_route_manifest "127.0.0.1:$port" "$up" '"shared"'
      cat <<TOML
[filters.shared]
plugin = "rate-limit.wasm"
store = { backend = "redis", url = "$redis_url" }
config.limits = [{ name = "all", rate = $rate, per = "1s", burst = $burst, key = ["host"] }]
TOML
    } > "$work/node$n.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/node$n.toml" > /dev/null & pids+=($!)
    nodes+=("127.0.0.1:$port")
done
for n in "${nodes[@]}"; do wait_up "http://$n/healthz-probe"; done
sleep 2  # the probes above spent some of the burst: let it refill
python3 - "$rate" "$burst" "$accuracy_seconds" "${nodes[@]}" <<'PY'
import http.client, sys, threading, time
rate, burst, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
nodes = sys.argv[4:]
threads_per_node = 4
senders = [(n, i) for n in nodes for i in range(threads_per_node)]
per_sender = 5 * rate / len(senders)          # requests/s each sender paces itself to
counts = {}; lock = threading.Lock(); times = []
start = time.monotonic() + 0.2
def send(node, k):
    host, port = node.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    i = 0; mine = {}; first = last = None
    while True:
        at = start + (i + k / threads_per_node) / per_sender
        if at > start + seconds: break
        delay = at - time.monotonic()
        if delay > 0: time.sleep(delay)
        conn.request("GET", "/", headers={"host": "bench"})
        r = conn.getresponse(); r.read()
        now = time.monotonic(); first = first or now; last = now
        mine[r.status] = mine.get(r.status, 0) + 1
        i += 1
    with lock:
        for s, c in mine.items(): counts[s] = counts.get(s, 0) + c
        times.extend([first, last])
ts = [threading.Thread(target=send, args=s) for s in senders]
for t in ts: t.start()
for t in ts: t.join()
elapsed = max(times) - min(times)
sent = sum(counts.values()); admitted = counts.get(200, 0)
allowed = burst + rate * elapsed
print(f"sent {sent} in {elapsed:.2f} s ({sent / elapsed:.0f}/s, {sent / elapsed / rate:.1f}x the limit); statuses {dict(sorted(counts.items()))}")
print(f"admitted {admitted}, allowed {allowed:.0f} (burst {burst} + {rate}/s x {elapsed:.2f} s): admitted/allowed = {admitted / allowed:.4f}")
PY

echo "== 3. shared cache purges: 2 nodes caching, a purge through node A's admin API until node B applied it"
redis-cli -p "$redis_port" flushall > /dev/null
purge_nodes=()
for n in 1 2; do
    port=$((19320 + n)); admin=$((19330 + n))
    { echo "admin = \"127.0.0.1:$admin\""
      echo "store = { backend = \"redis\", url = \"$redis_url\" }"
      weir_route_manifest "127.0.0.1:$port" "$up" ""
      printf 'cache = { zone = "main", default-ttl = "1h" }\n[cache-zones.main]\nmemory = "16MiB"\n'
    } > "$work/purge$n.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/purge$n.toml" > /dev/null & pids+=($!)
    purge_nodes+=("127.0.0.1:$admin")
done
for n in "${purge_nodes[@]}"; do wait_up "http://$n/healthz"; done
python3 - "${purge_nodes[@]}" <<'PY'
import http.client, json, sys, time
from statistics import median
a, b = [http.client.HTTPConnection(*n.split(":"), timeout=5) for n in sys.argv[1:3]]
def shared(conn):
    for _ in range(200):
        conn.request("GET", "/cache"); s = json.loads(conn.getresponse().read())["shared_purges"]
        if s["subscribed"]: return s
        time.sleep(0.01)
    raise SystemExit("node never subscribed")
received = shared(b)["received"]
took = []
for i in range(200):
    t0 = time.perf_counter()
    a.request("POST", f"/cache/purge?key=http://bench/page{i}"); a.getresponse().read()
    while True:
        b.request("GET", "/cache"); s = json.loads(b.getresponse().read())["shared_purges"]
        if s["received"] > received: break
    took.append((time.perf_counter() - t0) * 1e3); received = s["received"]
took.sort()
print(f"200 purges: from the purge request on A to B having applied it: median {median(took):.2f} ms, "
      f"p90 {took[179]:.2f} ms, max {took[-1]:.2f} ms (polling B's /cache; gaps {s['gaps']})")
PY
