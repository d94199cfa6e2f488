#!/usr/bin/env bash
# Retrieval quality on the development corpus, through a real server:
#   Benchmarks/quality.sh [RAGD FLAGS…]
# starts a fresh release ragd with the given flags (none: the defaults a new
# install gets), indexes ../shared/corpus/docs.jsonl with ragctl index (titles
# and sections as metadata), and runs ragctl eval with keyword, vector and
# hybrid side by side. EVAL_COMPARE and EVAL_LIMIT change what is compared;
# QUALITY_DIR=DIR keeps the server's data there and skips indexing when DIR
# already holds the collection (to compare query-time settings quickly).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${CORPUS:-../shared/corpus}
. Benchmarks/lib.sh
if [ -n "${QUALITY_DIR:-}" ]; then
  dir=$QUALITY_DIR; mkdir -p "$dir"
  trap 'kill $pid 2>/dev/null || true' EXIT
else
  dir=$(mktemp -d)
  trap 'kill $pid 2>/dev/null || true; rm -rf "$dir" "$dir.out" "$dir.err"' EXIT
fi
BENCH_EMBEDDER=${BENCH_EMBEDDER:-auto} start_server "$dir" --log-level info "$@"
grep -h "embedder" "$dir.err" "$dir.out" | sed 's/^.*embedder/embedder/' || true
if [ -z "${QUALITY_DIR:-}" ] || [ ! -e "$dir/indexed" ]; then
  start=$(date +%s.%N)
  "$bin/ragctl" index --server "127.0.0.1:$port" -c man ${INDEX_FLAGS:-} "$corpus/docs.jsonl" 2>/dev/null | tail -1
  echo "indexed in $(echo "$(date +%s.%N) - $start" | bc) s"
  touch "$dir/indexed"
fi
"$bin/ragctl" eval --server "127.0.0.1:$port" -c man --compare "${EVAL_COMPARE:-keyword,vector,hybrid}" \
  ${EVAL_LIMIT:+--limit $EVAL_LIMIT} "$corpus/queries-dev.jsonl" | grep -E "^[a-z]|^ +(1|10) "
