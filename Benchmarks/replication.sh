#!/usr/bin/env bash
# What replication costs and how fast a replica comes back (release build, mutual
# TLS between coordinator and nodes, etcd, 8 logical partitions, hashing embedder):
#  1. write throughput and per-call p50/p99 of Index (batch 16, 4 calls in flight)
#     on a single node, and on a coordinator over 3 nodes with replication 1, 2, 3,
#     measured in the same run;
#  2. recovery: with replication 2 over 2 nodes, one node is killed, DOCS documents
#     (~2 chunks each) are indexed without it, and it is restarted: the time until
#     it is in sync again, by the log (default) and by a copy (--replication-log 100).
# Usage: Benchmarks/replication.sh [WRITE_DOCS=8000] [RECOVERY_DOCS=50000]  (0 skips a part)
set -euo pipefail
cd "$(dirname "$0")/.."
write_docs=${1:-8000}
recovery_docs=${2:-50000}
. Benchmarks/lib.sh
cluster_setup

start_etcd() {  # → sets ep
  ep=$(free_port); local pp; pp=$(free_port)
  rm -rf "$work/etcd"
  etcd --name bench --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" --initial-cluster "bench=http://127.0.0.1:$pp" \
    --log-level error --logger zap >"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  pids+=($etcd_pid)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$ep/health" >/dev/null 2>&1 && break; sleep 0.1; done
}

start_node() {  # dir, internal port (0: any), extra flags… → sets node_pid, iport
  local dir=$1 ip=$2; shift 2; mkdir -p "$dir"
  # shellcheck disable=SC2086
  "$bin/ragd" serve --role shard --port 0 --internal-port "$ip" --data-dir "$dir" --metrics-port off --log-level warning \
    --etcd "127.0.0.1:$ep" $cluster_tls "$@" >"$dir.out" 2>"$dir.err" &
  node_pid=$!
  pids+=($node_pid)
  for _ in $(seq 200); do
    if grep -q "^ragd listening on" "$dir.out"; then
      iport=$(sed -n 's/^ragd internal listener on .*:\([0-9]*\)$/\1/p' "$dir.out")
      return 0
    fi
    sleep 0.05
  done
  echo "node did not start: $(cat "$dir.err")" >&2; exit 1
}

ctl() { "$bin/ragctl" "$@" --server "127.0.0.1:$port"; }
wait_in_sync() {  # → seconds until no replica is out of sync and nothing moves
  local t0; t0=$(date +%s.%N)
  for _ in $(seq 6000); do
    s=$(ctl cluster status --json 2>/dev/null || true)
    if echo "$s" | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if not s.get("out_of_sync") and not s.get("unassigned") and not s.get("moves") else 1)' 2>/dev/null; then
      python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')"; return 0
    fi
    sleep 0.1
  done
  echo "never in sync" >&2; exit 1
}

runs=0
cluster() {  # nodes, replication, extra node flags… → a coordinator on $port over fresh nodes
  local n=$1 r=$2; shift 2
  runs=$((runs + 1))
  local tag="run$runs-r$r"
  start_etcd
  node_addrs=(); node_pids=(); node_dirs=(); node_ports=()
  for i in $(seq "$n"); do
    start_node "$work/$tag-n$i" 0 "$@"
    node_addrs+=("127.0.0.1:$iport"); node_pids+=("$node_pid"); node_dirs+=("$work/$tag-n$i"); node_ports+=("$iport")
  done
  # shellcheck disable=SC2086
  start_server "$work/$tag-coord" --role coordinator --etcd "127.0.0.1:$ep" --replication "$r" --logical-partitions 8 $cluster_tls
  pids+=($pid)
  for a in "${node_addrs[@]}"; do  # once the node has registered in etcd
    local added=""
    for _ in $(seq 300); do ctl cluster add-node "$a" >/dev/null 2>&1 && { added=1; break; }; sleep 0.2; done
    [ -n "$added" ] || { echo "could not add $a" >&2; exit 1; }
  done
  wait_in_sync >/dev/null
}
teardown() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=(); }

if [ "$write_docs" -gt 0 ]; then
echo "== writes: $write_docs documents, batch 16, 4 calls in flight"
start_server "$work/single" --partitions 8
pids+=($pid)
echo "single node:    $(ctl bench --docs "$write_docs" --queries 0 --batch 16 --index-concurrency 4)"
teardown
for r in 1 2 3; do
  cluster 3 "$r"
  echo "replication $r:  $(ctl bench --docs "$write_docs" --queries 0 --batch 16 --index-concurrency 4)"
  teardown
done
fi
[ "$recovery_docs" -gt 0 ] || exit 0

echo "== recovery: replication 2 over 2 nodes; one misses $recovery_docs documents"
for mode in log copy; do
  extra=(); [ "$mode" = copy ] && extra=(--replication-log 100)
  cluster 2 2 "${extra[@]}"
  ctl bench --docs 2000 --queries 0 --batch 64 --index-concurrency 2 -c base >/dev/null
  kill -9 "${node_pids[1]}"; wait "${node_pids[1]}" 2>/dev/null || true
  echo "indexed without it: $(ctl bench --docs "$recovery_docs" --queries 0 --batch 64 --index-concurrency 2 -c missed)"
  start_node "${node_dirs[1]}" "${node_ports[1]}" "${extra[@]}"
  echo "recovery by $mode: in sync again after $(wait_in_sync) s"
  teardown
done
