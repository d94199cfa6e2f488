#!/usr/bin/env bash
# What a partition move costs: one logical partition holding N chunks moves from
# node A to node B (drain A) in a cluster of one coordinator, etcd and two shard
# nodes (release build, mutual TLS between them), with queries running; prints
# the move's time and rate, and query p50/p99 (hybrid, k=10, concurrency 2)
# before the move and during it, measured in the same run.
# Usage: Benchmarks/move.sh [DOCS=60000] [QUERIES=1500]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-60000}
queries=${2:-1500}
. Benchmarks/lib.sh
cluster_setup

ep=$(free_port); pp=$(free_port)
etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
  --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "bench=http://127.0.0.1:$pp" \
  --log-level error --logger zap >"$work/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ep/health" >/dev/null 2>&1 && break; sleep 0.1; done

start_node() {  # name → sets port, iport
  local dir="$work/$1"; mkdir -p "$dir"
  # shellcheck disable=SC2086
  "$bin/ragd" serve --role shard --port 0 --internal-port 0 --data-dir "$dir" --metrics-port off --log-level warning \
    --etcd "127.0.0.1:$ep" --node-id "$1" $cluster_tls >"$dir.out" 2>"$dir.err" &
  pids+=($!)
  for _ in $(seq 200); do
    port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$dir.out")
    iport=$(sed -n 's/^ragd internal listener on .*:\([0-9]*\)$/\1/p' "$dir.out")
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "$1 did not start: $(cat "$dir.err")" >&2; exit 1
}
start_node a; a_int=$iport
start_node b; b_int=$iport
a_addr=127.0.0.1:$a_int b_addr=127.0.0.1:$b_int
echo "{\"shards\": [{\"id\": 0, \"replicas\": [\"127.0.0.1:$a_int\"]}]}" >"$work/cluster.json"
# shellcheck disable=SC2086
start_server "$work/coord" --role coordinator --cluster "$work/cluster.json" --etcd "127.0.0.1:$ep" --logical-partitions 1 $cluster_tls
pids+=($pid)
ctl() { "$bin/ragctl" "$@" --server "127.0.0.1:$port"; }

ctl bench --docs "$docs" --queries 0 --batch 256 --index-concurrency 2 | sed 's/^/setup: /'
ctl bench --docs 0 --queries 200 --concurrency 2 >/dev/null  # warm-up
chunks=$(ctl stats -c bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["collections"][0]["chunks"])')

wait_moved() {  # address of the node that must end up with the partition → prints seconds, last progress line
  local t0 t1 s m last=""
  t0=$(date +%s.%N)
  while :; do
    s=$(ctl cluster status)
    m=$(echo "$s" | grep '^move partition' || true)
    [ -n "$m" ] && last=$m
    if [ -z "$m" ] && echo "$s" | awk -F'\t' -v n="$1" '$2==n && $5=="1" {f=1} END {exit !f}'; then break; fi
    sleep 0.1
  done
  t1=$(date +%s.%N)
  printf '%.1f\t%s\n' "$(echo "$t1 - $t0" | bc)" "$last"
}

# 1. Unthrottled, no queries: the copy itself (a → b).
ctl cluster rebalance --max-rate 100000 >/dev/null
ctl cluster add-node b >/dev/null
ctl cluster drain-node a >/dev/null
r=$(wait_moved "$b_addr")
secs=${r%%$'\t'*}
rate=$(python3 -c "print(f'{$chunks/$secs:.0f}')")
echo "move of 1 logical partition ($chunks chunks), unthrottled, idle: $secs s = $rate chunks/s; last progress: ${r#*$'\t'}"

# 2. Queries alone, then the same queries during a move back (b → a), throttled
#    to a third of the rate just measured so the queries all fall inside it.
window=$(python3 -c "print(max(5, round($secs * 2, 1)))")
bytes=$(echo "$r" | sed -n 's/.*, \([0-9.]*\) MB at.*/\1/p')
throttle=$(python3 -c "print(max(0.1, round(${bytes:-100} / $secs / 3, 2)))")
before=$(ctl bench --docs 0 --queries "$queries" --concurrency 2 --seconds "$window" | sed -n 's/.*: \([0-9]* queries.*\)/\1/p')
ctl cluster rebalance --max-rate "$throttle" >/dev/null
ctl cluster add-node a >/dev/null
ctl cluster drain-node b >/dev/null
during=$(ctl bench --docs 0 --queries "$queries" --concurrency 2 --seconds "$window" | sed -n 's/.*: \([0-9]* queries.*\)/\1/p')
r2=$(wait_moved "$a_addr")
echo "move back at ${throttle} MB/s took a further ${r2%%$'\t'*} s after the queries"
echo "queries (hybrid, k=10, 2 in flight) before any move: $before"
echo "queries during the throttled move:                 $during"
