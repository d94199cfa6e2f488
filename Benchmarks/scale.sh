#!/usr/bin/env bash
# One large collection on one release ragd, as #16's 10M-chunk run asks: HNSW with
# the int8 walk (codes in memory, floats in mapped scratch files), texts on disk,
# built-in embedder (so embedding time is not what is measured). `ragctl bench`
# indexes DOCS synthetic documents of ~1 KB (two chunks each), made as they are
# sent; then hybrid and vector queries one at a time; then a stop (index images saved),
# a restart (time until listening) and the same queries; then a kill -9 and a
# restart (images saved while serving are read, the writes since reloaded). Prints the index rate, RSS
# (anonymous / mapped file pages), peak RSS (VmHWM), the data directory's size
# and every latency. LIMIT_MB (optional) starts each ragd inside a cgroup v1
# memory limit (needs root): past it the kernel kills ragd rather than the machine.
# Extra arguments go to ragd (e.g. --partitions 8).
# Usage: [DATA=dir] [LIMIT_MB=22000] Benchmarks/scale.sh [DOCS=500000] [QUERIES=1000] [ragd flags…]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-500000}; queries=${2:-1000}; shift $(( $# > 2 ? 2 : $# ))
export START_TRIES=36000  # 30 minutes: the last resort of a start is rebuilding every graph
. Benchmarks/lib.sh
dir=${DATA:-$(mktemp -d -p "${TMPDIR:-/tmp}")}
cg=""
if [ -n "${LIMIT_MB:-}" ]; then
  cg=/sys/fs/cgroup/memory/ragd-scale-$$
  mkdir -p "$cg"
  echo $((LIMIT_MB * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
fi
trap 'kill -9 ${pid:-} 2>/dev/null || true; wait ${pid:-} 2>/dev/null || true; [ -n "${DATA:-}" ] || rm -rf "$dir" "$dir.out" "$dir.err"; [ -z "$cg" ] || rmdir "$cg" 2>/dev/null || true' EXIT
flags=(--vector-index hnsw --hnsw-walk int8 --cache off "$@")
serve() {  # → pid, port, elapsed (seconds until listening)
  local t0; t0=$(date +%s.%N)
  : >"$dir.out"
  if [ -n "$cg" ]; then
    # Started inside the cgroup, so everything it allocates or reads is charged there.
    sh -c 'echo $$ > "$0/cgroup.procs"; shift; exec "$@"' "$cg" "$bin/ragd" serve --port 0 --data-dir "$dir" --metrics-port off \
      --log-level warning --embedder hashing "${flags[@]}" >"$dir.out" 2>>"$dir.err" &
  else
    "$bin/ragd" serve --port 0 --data-dir "$dir" --metrics-port off --log-level warning --embedder hashing "${flags[@]}" >"$dir.out" 2>>"$dir.err" &
  fi
  pid=$!
  port=""
  for _ in $(seq "$START_TRIES"); do
    port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$dir.out"); [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "ragd exited: $(tail -3 "$dir.err")" >&2; exit 1; }
    sleep 0.05
  done
  [ -n "$port" ] || { echo "ragd did not start" >&2; exit 1; }
  elapsed=$(echo "$(date +%s.%N) - $t0" | bc)
}
memory() {
  awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} /^VmHWM/ {h=$2} END {printf "RSS %.0f MB (anonymous %.0f, file %.0f), peak %.0f MB", t/1024, a/1024, f/1024, h/1024}' "/proc/$pid/status"
}
queries() {  # label
  for mode in hybrid vector; do
    "$bin/ragctl" bench --server "127.0.0.1:$port" --docs 0 --queries "$queries" --concurrency 1 --mode "$mode" -c bench --timeout 600 \
      | grep -E "^query" | sed "s/^/$1: /"
  done
}
serve
echo "ragd ${flags[*]}; data in $dir"
"$bin/ragctl" bench --server "127.0.0.1:$port" --docs "$docs" --queries 0 --batch 256 --index-concurrency 2 --timeout 600 | grep -E "^index"
echo "after indexing: $(memory); data $(du -sh "$dir" | cut -f1)"
queries "after indexing"
echo "after queries: $(memory)"
t0=$(date +%s.%N); kill "$pid"; wait "$pid" 2>/dev/null || true; echo "stop (index images saved) $(echo "$(date +%s.%N) - $t0" | bc) s"
serve; echo "restart from index images: listening after $elapsed s; $(memory)"
queries "after restart"
echo "after restart and queries: $(memory)"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
serve; echo "start after kill -9: listening after $elapsed s; $(memory)"
kill "$pid"; wait "$pid" 2>/dev/null || true
