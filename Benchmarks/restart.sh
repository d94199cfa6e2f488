#!/usr/bin/env bash
# Start-up of a large data directory (one made by `DATA=dir Benchmarks/scale.sh`):
# a clean start from the index images (page cache warm), a clean stop, a start
# with the page cache dropped (root), then EXTRA new documents written, a kill -9
# and the start after it: time until listening, time until every partition has
# linked the reloaded chunks into its graph (from the log), and query latency
# while they link and after. Prints each partition's log line.
# Usage: Benchmarks/restart.sh DIR [EXTRA=50000] [QUERIES=300] [ragd flags…]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: Benchmarks/restart.sh DIR [EXTRA] [QUERIES] [ragd flags]}; extra=${2:-50000}; queries=${3:-300}
shift $(( $# > 3 ? 3 : $# ))
. Benchmarks/lib.sh
out=$(mktemp); err=$(mktemp); docs=$(mktemp --suffix=.jsonl)
trap 'kill -9 ${pid:-} 2>/dev/null || true; wait ${pid:-} 2>/dev/null || true; rm -f "$out" "$err" "$docs"' EXIT
flags=(--vector-index hnsw --hnsw-walk int8 --cache off "$@")
serve() {  # → pid, port, elapsed
  local t0; t0=$(date +%s.%N); : >"$out"; : >"$err"
  "$bin/ragd" serve --port 0 --data-dir "$dir" --metrics-port off --log-level info --embedder hashing "${flags[@]}" >"$out" 2>"$err" &
  pid=$!; port=""
  for _ in $(seq 24000); do
    port=$(sed -n 's/^ragd listening on .*:\([0-9]*\)$/\1/p' "$out"); [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "ragd exited: $(tail -3 "$err")" >&2; exit 1; }
    sleep 0.05
  done
  elapsed=$(echo "$(date +%s.%N) - $t0" | bc)
  started=$t0
}
partitions() { grep -o 'partition .*' "$err" | cut -c1-170 | sed 's/^/  /'; }
memory() { awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} END {printf "RSS %.0f MB (anonymous %.0f)", t/1024, a/1024}' "/proc/$pid/status"; }
queries() {
  for mode in hybrid vector keyword; do
    "$bin/ragctl" bench --server "127.0.0.1:$port" --docs 0 --queries "$queries" --concurrency 1 --mode "$mode" -c bench --timeout 600 \
      | grep -E "^query" | sed "s/^/$1: /"
  done
}
stop() { local t0; t0=$(date +%s.%N); kill "$pid"; wait "$pid" 2>/dev/null || true; echo "stop $(echo "$(date +%s.%N) - $t0" | bc) s"; }

serve; echo "start from images (warm): listening after $elapsed s; $(memory)"; partitions; stop
if [ -w /proc/sys/vm/drop_caches ]; then
  sync; echo 3 > /proc/sys/vm/drop_caches
  serve; echo "start from images (page cache dropped): listening after $elapsed s; $(memory)"; queries "cold"; queries "warm"; stop
fi
serve
python3 - "$extra" "$(date +%s)" >"$docs" <<'EOF'
import json, random, sys
random.seed(int(sys.argv[2]))
words = "kernel socket page cache shard tree frame token index replica vector query latency merge filter coordinator deadline protocol buffer commit journal".split()
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"restart-{sys.argv[2]}-{i}", "text": " ".join(random.choice(words) for _ in range(160)) + f". Extra document {i}."}))
EOF
"$bin/ragctl" index "$docs" -c bench --server "127.0.0.1:$port" --timeout 600 2>&1 | tail -1
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
serve; echo "start after $extra new documents and kill -9: listening after $elapsed s"
queries "while linking"
want=$(grep -c "chunks to link" "$err" || true)
for _ in $(seq 24000); do [ "$(grep -c 'chunks into the graph in' "$err" || true)" -ge "$want" ] && break; sleep 0.25; done
echo "every partition linked $(echo "$(date +%s.%N) - $started" | bc) s after the start"; partitions
queries "linked"
stop
