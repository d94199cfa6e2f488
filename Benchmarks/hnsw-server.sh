#!/usr/bin/env bash
# A release ragd with --vector-index flat, then hnsw, then auto, each on a fresh data
# directory (built-in embedder, 4 partitions): `ragctl bench` indexes DOCS
# synthetic documents (two chunks each) and runs vector queries one at a time;
# then the server is stopped (hnsw saves its graphs) and started again, and the
# time until it listens is printed (hnsw adopts the saved graphs; it is also
# killed -9 right after indexing, to adopt what it saved while serving), then the
# same after a kill -9 with the graph files removed (a full rebuild; auto opens
# exact and builds its graphs in the background: the time until every partition
# searches its graph is printed too). KINDS picks the kinds; hnsw-int8 is hnsw with
# --hnsw-walk int8 (codes in memory, floats in a mapped scratch file). RSS is split
# into anonymous memory and mapped file pages (which the kernel may drop and read again).
# Usage: Benchmarks/hnsw-server.sh [DOCS=50000] [QUERIES=2000]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-50000}; queries=${2:-2000}
export START_TRIES=12000  # a graph rebuilt at start takes minutes
. Benchmarks/lib.sh
rss() {  # total (anonymous + file pages)
  awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2} END {printf "%.0f MB (anonymous %.0f, file %.0f)", t/1024, a/1024, f/1024}' "/proc/$pid/status"
}
flags() { [ "$1" = hnsw-int8 ] && echo "--vector-index hnsw --hnsw-walk int8" || echo "--vector-index $1"; }
restart() {  # dir, flags… → sets elapsed (seconds until listening), pid, port
  local t0; t0=$(date +%s.%N); start_server "$@"; elapsed=$(echo "$(date +%s.%N) - $t0" | bc)
}
for kind in ${KINDS:-flat hnsw auto}; do
  dir=$(mktemp -d)
  start_server "$dir" $(flags "$kind") --cache off
  "$bin/ragctl" bench --server "127.0.0.1:$port" --docs "$docs" --queries "$queries" --concurrency 1 --mode vector | grep -E "^(index|query|queries)" | sed "s/^/$kind: /"
  echo "$kind: RSS $(rss)"
  if [ "${kind%-int8}" = hnsw ]; then  # a crash right after indexing: the graphs saved in the background are adopted
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    restart "$dir" $(flags "$kind") --cache off; echo "$kind: start after kill -9 right after indexing (graphs saved while serving) $elapsed s"
  fi
  t0=$(date +%s.%N); stop_server; echo "$kind: stop $(echo "$(date +%s.%N) - $t0" | bc) s"
  restart "$dir" $(flags "$kind") --cache off; echo "$kind: restart $elapsed s"
  "$bin/ragctl" bench --server "127.0.0.1:$port" --docs 0 --queries "$queries" --concurrency 1 --mode vector -c bench | grep -E "^query" | sed "s/^/$kind after restart: /"
  echo "$kind: RSS after restart $(rss)"
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$dir"/collections/*/*-hnsw
  restart "$dir" $(flags "$kind") --cache off; echo "$kind: start after kill -9 without saved graphs $elapsed s"
  if [ "$kind" = auto ]; then
    t0=$(date +%s.%N)
    "$bin/ragctl" bench --server "127.0.0.1:$port" --docs 0 --queries "$queries" --concurrency 1 --mode vector -c bench | grep -E "^query" | sed "s/^/$kind while its graphs build: /"
    while "$bin/ragctl" stats --server "127.0.0.1:$port" -c bench | grep -q ', exact$'; do sleep 0.2; done
    echo "$kind: every partition on its graph $(echo "$(date +%s.%N) - $t0 + $elapsed" | bc) s after the start"
  fi
  stop_server
  rm -rf "$dir" "$dir.out" "$dir.err"
done
