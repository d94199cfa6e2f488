#!/usr/bin/env bash
# A Ragd cluster on this machine, on loopback: S shards x R replicas and one coordinator.
#
#   Scripts/cluster-local.sh start [--shards S] [--replicas R] [--port P] [--shard-port Q] [--dir DIR] [--embedder NAME]
#   Scripts/cluster-local.sh status [--dir DIR]
#   Scripts/cluster-local.sh stop [--dir DIR]
#
# Defaults: 3 shards x 2 replicas, coordinator on 127.0.0.1:7878, shards from 7101 up
# (--port 0 / --shard-port 0: ports the kernel picks; the last line names the coordinator's)
# (each shard's internal listener, for shard RPCs, on a port the kernel picks;
# cluster.json names them),
# data in ${XDG_STATE_HOME:-~/.local/state}/ragd-cluster (never inside the checkout).
# Nodes talk mutual TLS: a throwaway CA and one certificate per node are made with
# openssl (Scripts/make-certs.sh) in DIR/certs on first start.
# The binary is $RAGD_BIN, else ragd on PATH, else this checkout's release build
# (built only when none of these exists).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-start}
[ $# -gt 0 ] && shift
shards=3 replicas=2 port=7878 shard_port=7101 embedder=auto
dir=${RAGD_CLUSTER_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ragd-cluster}
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) shards=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --shard-port) shard_port=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --embedder) embedder=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "cluster-local.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$shards" "$replicas"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "cluster-local.sh: expected positive integers, got $n" >&2; exit 2; }
done
for n in "$port" "$shard_port"; do  # 0: the kernel picks (read back from the logs)
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "cluster-local.sh: expected a port number, got $n" >&2; exit 2; }
done

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

status() {
  local any=0 up=0
  for pid in "$dir"/*.pid; do
    [ -e "$pid" ] || continue
    any=1
    name=$(basename "$pid" .pid)
    if alive "$pid"; then echo "$name: running (pid $(cat "$pid"))"; up=$((up + 1)); else echo "$name: stopped"; fi
  done
  [ $any = 1 ] || { echo "no cluster in $dir"; return 1; }
  [ $up -gt 0 ]
}

stop() {
  local pids=()
  for pid in "$dir"/*.pid; do
    [ -e "$pid" ] || continue
    alive "$pid" && pids+=("$(cat "$pid")")
  done
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 100); do
    local left=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$dir"/*.pid
  echo "stopped (${#pids[@]} processes); data kept in $dir"
}

binary() {
  if [ -n "${RAGD_BIN:-}" ]; then echo "$RAGD_BIN"; return; fi
  if command -v ragd >/dev/null 2>&1; then command -v ragd; return; fi
  if [ ! -x "$here/.build/release/ragd" ]; then (cd "$here" && swift build -c release >&2); fi
  echo "$here/.build/release/ragd"
}

# Waits until a process prints its listening line (or dies).
wait_listening() {
  for _ in $(seq 1 200); do
    grep -q "ragd listening on" "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || { echo "cluster-local.sh: process failed to start, see $2" >&2; tail -5 "$2" >&2; return 1; }
    sleep 0.05
  done
  echo "cluster-local.sh: no listening line in $2 after 10 s" >&2
  return 1
}

start() {
  if status >/dev/null 2>&1; then echo "a cluster is already running in $dir (stop it first)" >&2; exit 1; fi
  local bin
  bin=$(binary)
  mkdir -p "$dir"
  # The nodes outlive this script: they must not hold descriptors it inherited
  # (a caller's pipe would stay open until the cluster stops).
  for fd in $(ls /proc/$$/fd 2>/dev/null); do
    [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null || true
  done
  local names=()
  for ((s = 0; s < shards; s++)); do for ((r = 0; r < replicas; r++)); do names+=("shard$s-$r"); done; done
  [ -f "$dir/certs/coordinator.pem" ] || "$here/Scripts/make-certs.sh" "$dir/certs" coordinator "${names[@]}"
  local p=$shard_port entries=()
  for ((s = 0; s < shards; s++)); do
    local list=()
    for ((r = 0; r < replicas; r++)); do
      [ -f "$dir/certs/shard$s-$r.pem" ] || "$here/Scripts/make-certs.sh" "$dir/certs" "shard$s-$r"
      "$bin" serve --role shard --port $p --internal-port 0 --data-dir "$dir/shard$s-$r" --metrics-port off \
        --cluster-ca "$dir/certs/ca.pem" --cluster-cert "$dir/certs/shard$s-$r.pem" --cluster-key "$dir/certs/shard$s-$r.key" \
        >"$dir/shard$s-$r.log" 2>&1 &
      echo $! >"$dir/shard$s-$r.pid"
      wait_listening $! "$dir/shard$s-$r.log" || { stop >/dev/null; exit 1; }
      local internal
      internal=$(sed -n 's/^ragd internal listener on .*:\([0-9]*\)$/\1/p' "$dir/shard$s-$r.log" | head -1)
      list+=("\"127.0.0.1:$internal\"")
      [ "$p" -gt 0 ] && p=$((p + 1))
    done
    entries+=("{\"id\": $s, \"replicas\": [$(IFS=,; echo "${list[*]}")]}")
  done
  echo "{\"replication_factor\": $replicas, \"shards\": [$(IFS=,; echo "${entries[*]}")]}" >"$dir/cluster.json"
  "$bin" serve --role coordinator --port "$port" --cluster "$dir/cluster.json" --data-dir "$dir/coordinator" --metrics-port off --embedder "$embedder" \
    --cluster-ca "$dir/certs/ca.pem" --cluster-cert "$dir/certs/coordinator.pem" --cluster-key "$dir/certs/coordinator.key" \
    >"$dir/coordinator.log" 2>&1 &
  echo $! >"$dir/coordinator.pid"
  wait_listening $! "$dir/coordinator.log" || { stop >/dev/null; exit 1; }
  port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$dir/coordinator.log" | head -1)
  echo "cluster up: $shards shards x $replicas replicas (mutual TLS between nodes), coordinator on 127.0.0.1:$port (ragctl --server 127.0.0.1:$port health); data and logs in $dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  -h|--help|help) sed -n '2,16p' "$0" ;;
  *) echo "usage: cluster-local.sh start|stop|status [options] (see --help)" >&2; exit 2 ;;
esac
