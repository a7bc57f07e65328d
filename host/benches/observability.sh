#!/usr/bin/env bash
# What metrics and the JSON access log cost per request, side by side in one run on
# 127.0.0.1: nginx upstream answering 200; one weir with request metrics off and no access
# log, with metrics on (the default), with metrics and the JSON access log written to a file,
# and with metrics and OTLP trace export (nginx answering the exports).
# wrk (HTTP/1.1 keep-alive) against each, interleaved over ROUNDS, each round in a rotated
# order; reported: req/s, weir's CPU per request and what each row adds over the first
# (target: <= 1 us for both together).
# Part 2 runs the same rows at a fixed request rate (h2load --rps, HTTP/1.1), below what the
# slowest row can serve. Under wrk each row runs weir flat out, so a row that costs more
# also serves fewer requests, and its CPU per request then moves with the load's dynamics
# too (how often a response finds the load generator asleep and must wake it); at a fixed
# rate every row serves the same requests at the same pace.
#
# Env: DURATION (default 10s), CONNECTIONS (32), ROUNDS (4: one per slot), RATE (requests a
# second per connection in part 2; default 700, 22.4k/s in all).
set -euo pipefail
ROUNDS=${ROUNDS:-4}
source "$(dirname "$0")/lib.sh"
need_tools wrk h2load nginx curl

up=127.0.0.1:19500
taskset -c "$load_cpus" "$nginx_bin" -c "$(nginx_conf upstream "server { listen $up; location / { return 200 'hello\n'; } }")" & pids+=($!)

# One weir process serves every row: a row is a manifest, put in place by a reload through
# the admin API before it is measured. (One process per row measured each process's own
# luck, a code and heap layout worth +-1 us here, as much as the features.)
port=127.0.0.1:19501 admin=127.0.0.1:19599
labels=(); manifests=()
add() { # label manifest-lines
    local file="$work/row${#labels[@]}.toml"
    { echo "$2"; echo "admin = \"$admin\""; weir_route_manifest "$port" "$up" "" | grep -v '^access-log'; } > "$file"
    labels+=("$1"); manifests+=("$file")
}
add "weir, no metrics, no log" $'metrics = false\naccess-log = false'
add "weir + metrics" $'access-log = false'
# The log goes to a folder of its own: in the manifest's folder, every write the writer
# makes would wake the manifest watcher's thread too (0.6% of weir's CPU in one profile).
mkdir -p "$work/log"
add "weir + metrics + JSON log" "$(printf 'access-log-format = "json"\naccess-log-to = "%s/log/access.log"\naccess-log-headers = ["user-agent"]' "$work")"
# OTLP export of a server and a client span per request, to nginx standing in for a collector.
add "weir + metrics + OTLP spans" "$(printf 'access-log = false\notlp = { endpoint = "http://%s/v1/traces" }' "$up")"
cp "${manifests[0]}" "$work/weir.toml"
RUST_LOG=warn taskset -c "$proxy_cpus" "$weir" run "$work/weir.toml" > /dev/null & pids+=($!)
weir_pid=$!
wait_up "http://$up/" "http://$port/"
switch() { # row index: reload weir into that row's manifest
    cp "${manifests[$1]}" "$work/weir.toml"
    curl -sf -X POST "http://$admin/reload" | grep -Eq '"reloaded": *true' \
        || { echo "reload into ${labels[$1]} failed" >&2; exit 1; }
}

# Every row, each round in a rotated order, loaded by `tool args...`; then the report and
# what each row adds over the first.
rows() { # tool args...
    local results r i
    results=$(for r in $(seq 0 $((rounds - 1))); do
        for i in $(rotated ${#labels[@]} "$r"); do
            switch "$i"
            run "${labels[$i]}" "$weir_pid" "$@" "http://$port/"
        done
    done)
    report "$results"
    cpu_added "$results" "${labels[0]}" "${labels[@]:1}"
}

echo "wrk: $conns connections, $duration per row x $rounds rounds, rows in a rotated order; weir (1 worker) on CPU $proxy_cpus, wrk and nginx on CPU $load_cpus"
rows wrk -t1 -c"$conns"

rate=${RATE:-700}
echo
echo "at a fixed rate: h2load --h1, $conns connections x $rate requests/s, $duration per row x $rounds rounds, rows in a rotated order"
rows h2load --h1 -c"$conns" -t1 --rps="$rate"
echo "access log: $(wc -l < "$work/log/access.log") lines written; last:"
tail -1 "$work/log/access.log"
