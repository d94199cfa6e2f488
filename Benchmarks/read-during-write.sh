#!/usr/bin/env bash
# Query latency while the server indexes: a release ragd (built-in embedder)
# holds BASE documents; queries run at CONCURRENCY for SECONDS, idle, then
# again while a second ragctl indexes MORE documents into another collection
# of the same server (INDEX_INTO=bench: into the queried collection itself;
# its first BASE documents are unchanged and skipped). Compare the two p99s (the machine's two cores are
# shared by the indexing, so some of the rise is CPU, not waiting).
# Usage: Benchmarks/read-during-write.sh [BASE=20000] [MORE=40000] [CONCURRENCY=32] [SECONDS=15] [FLAGS…]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-20000}; more=${2:-40000}; concurrency=${3:-32}; seconds=${4:-15}; shift $(( $# < 4 ? $# : 4 ))
. Benchmarks/lib.sh
dir=$(mktemp -d)
# The server saves its graphs as it stops: wait for it before removing its directory.
trap 'kill $pid 2>/dev/null && wait $pid 2>/dev/null; rm -rf "$dir" "$dir.out" "$dir.err"' EXIT
start_server "$dir" --cache off "$@"
a="--server 127.0.0.1:$port --timeout 600"
"$bin/ragctl" bench $a -c bench --docs "$base" --queries 0 | grep "^index"
"$bin/ragctl" bench $a -c bench --docs 0 --seconds "$seconds" --concurrency "$concurrency" | grep "^query" | sed 's/^/idle:          /'
"$bin/ragctl" bench $a -c "${INDEX_INTO:-other}" --docs "$more" --queries 0 --index-concurrency 2 > "$dir.index" &
indexer=$!
sleep 1
"$bin/ragctl" bench $a -c bench --docs 0 --seconds "$seconds" --concurrency "$concurrency" | grep "^query" | sed 's/^/while indexing: /'
wait $indexer
grep "^index" "$dir.index" | sed 's/^/indexer: /'
