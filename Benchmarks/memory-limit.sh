#!/usr/bin/env bash
# Whether an HNSW server keeps serving under a memory limit smaller than its
# vectors need in memory. For each walk (float, then int8): a release ragd with
# --vector-index hnsw indexes DOCS synthetic documents (two chunks each, built-in
# embedder, 4 partitions) and stops (its graphs are saved); then it starts again
# inside a cgroup (v1 memory controller) limited to LIMIT_MB, which counts
# anonymous memory and page cache alike, and answers QUERIES vector queries.
# The float walk holds its vectors in anonymous memory, which a limit cannot
# reclaim: past the limit the kernel kills it. The int8 walk holds int8 codes in
# memory and its floats in a mapped file, whose pages the kernel drops and reads
# again under the limit. Needs root and /sys/fs/cgroup/memory.
# Usage: [WALKS="float int8"] Benchmarks/memory-limit.sh [DOCS=50000] [LIMIT_MB=260] [QUERIES=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-50000}; limit=${2:-260}; queries=${3:-1000}
export START_TRIES=12000
. Benchmarks/lib.sh
cg=/sys/fs/cgroup/memory/ragd-bench-$$
[ -d /sys/fs/cgroup/memory ] || { echo "no cgroup v1 memory controller" >&2; exit 1; }
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
status() {  # from /proc: resident total, anonymous, file pages
  awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "RSS %.0f MB (anonymous %.0f, file %.0f)", t/1024, a/1024, f/1024}' "/proc/$pid/status"
}
for walk in ${WALKS:-float int8}; do
  dir=$(mktemp -d)
  start_server "$dir" --vector-index hnsw --hnsw-walk "$walk" --cache off
  "$bin/ragctl" bench --server "127.0.0.1:$port" --docs "$docs" --queries 200 --concurrency 1 --mode vector | grep -E "^(index|query)" | sed "s/^/$walk, no limit: /"
  echo "$walk, no limit: $(status)"
  stop_server
  mkdir -p "$cg"
  echo $((limit * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
  # Started inside the cgroup, so everything it allocates or reads is charged there.
  sh -c "echo \$\$ > $cg/cgroup.procs; exec \"$bin/ragd\" serve --port 0 --data-dir $dir --metrics-port off --log-level warning --embedder hashing --vector-index hnsw --hnsw-walk $walk --cache off" >"$dir.out" 2>"$dir.err" &
  pid=$!
  port=""
  for _ in $(seq 12000); do
    port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$dir.out"); [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -n "$port" ] && "$bin/ragctl" bench --server "127.0.0.1:$port" --docs 0 --queries "$queries" --concurrency 1 --mode vector -c bench 2>&1 | grep -E "^query" | sed "s/^/$walk, limit $limit MB: /"; then
    echo "$walk, limit $limit MB: serving; $(status); cgroup peak $(awk '{printf "%.0f MB", $1/1048576}' "$cg/memory.max_usage_in_bytes"), limit hit $(cat "$cg/memory.failcnt") times"
  else
    wait "$pid" 2>/dev/null && rc=0 || rc=$?
    echo "$walk, limit $limit MB: not serving (exit status $rc$([ "$rc" = 137 ] && echo ', killed: out of memory'))"
  fi
  kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
  rm -rf "$dir" "$dir.out" "$dir.err"
done
