#!/usr/bin/env bash
# What metrics and the JSON access log cost per request, side by side in one run on
# 127.0.0.1: nginx upstream answering 200; weir with request metrics off and no access log,
# with metrics on (the default), with metrics and the JSON access log written to a file, and
# with metrics and OTLP trace export (nginx answering the exports).
# wrk (HTTP/1.1 keep-alive) against each, interleaved over ROUNDS; reported: req/s, weir's
# CPU per request and what each row adds over the first (target: <= 1 us for both together).
#
# Env: DURATION (default 10s), CONNECTIONS (32), ROUNDS (3).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need_tools wrk nginx curl

up=127.0.0.1:19500
taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)

labels=(); ports=(); weirs=()
add() { # label port manifest-lines
    { echo "$3"; weir_route_manifest "$2" "$up" "" | grep -v '^access-log'; } > "$work/$2.toml"
    RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/$2.toml" > /dev/null & pids+=($!)
    labels+=("$1"); ports+=("$2"); weirs+=($!)
}
add "weir, no metrics, no log" 127.0.0.1:19501 $'metrics = false\naccess-log = false'
add "weir + metrics" 127.0.0.1:19502 $'access-log = false'
add "weir + metrics + JSON log" 127.0.0.1:19503 "$(printf 'access-log-format = "json"\naccess-log-to = "%s/access.log"\naccess-log-headers = ["user-agent"]' "$work")"
# OTLP export of a server and a client span per request, to nginx standing in for a collector.
add "weir + metrics + OTLP spans" 127.0.0.1:19504 "$(printf 'access-log = false\notlp = { endpoint = "http://%s/v1/traces" }' "$up")"
wait_up "http://$up/"
for p in "${ports[@]}"; do wait_up "http://$p/"; done

echo "wrk: $conns connections, $duration per row x $rounds rounds; weir (1 worker) on CPU $proxy_cpus, wrk and nginx on CPU $load_cpus"
results=$(for _ in $(seq 1 "$rounds"); do
    for i in "${!labels[@]}"; do
        run "${labels[$i]}" "${weirs[$i]}" wrk -t1 -c"$conns" "http://${ports[$i]}/"
    done
done)
report "$results"
cpu_added "$results" "${labels[0]}" "${labels[@]:1}"
echo "access log: $(wc -l < "$work/access.log") lines written; last:"
tail -1 "$work/access.log"
