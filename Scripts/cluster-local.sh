#!/usr/bin/env bash
# Starts a 3-shard, 2-replica Ragd cluster on this machine (loopback ports
# 7101-7106 for shards, 7878 for the coordinator), data under ./ragd-cluster.
# Stop it with: kill $(cat ragd-cluster/*.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RAGD_BIN:-.build/release/ragd}
[ -x "$bin" ] || swift build -c release
root=${1:-ragd-cluster}
mkdir -p "$root"
port=7101
shards=()
for s in 0 1 2; do
  replicas=()
  for r in 0 1; do
    "$bin" serve --role shard --port $port --data-dir "$root/shard$s-$r" --metrics-port off >"$root/shard$s-$r.log" 2>&1 &
    echo $! >"$root/shard$s-$r.pid"
    replicas+=("\"127.0.0.1:$port\"")
    port=$((port + 1))
  done
  shards+=("{\"id\": $s, \"replicas\": [$(IFS=,; echo "${replicas[*]}")]}")
done
echo "{\"replication_factor\": 2, \"shards\": [$(IFS=,; echo "${shards[*]}")]}" >"$root/cluster.json"
sleep 1
"$bin" serve --role coordinator --cluster "$root/cluster.json" --data-dir "$root/coordinator" >"$root/coordinator.log" 2>&1 &
echo $! >"$root/coordinator.pid"
sleep 1
echo "cluster up: coordinator on 127.0.0.1:7878 (try: ragctl health), cluster file $root/cluster.json"
