#!/usr/bin/env bash
# One release ragd (built-in embedder, cache off), DOCS synthetic documents indexed by
# `ragctl bench`, then QUERIES queries one at a time from the Python client per mode:
# the server's stage timings against the client's wall time (Benchmarks/latency.py).
# Usage: Benchmarks/latency.sh [DOCS=200] [QUERIES=3000]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-200}; queries=${2:-3000}
. Benchmarks/lib.sh
dir=$(mktemp -d)
# The server saves its graphs as it stops: wait for it before removing its directory.
trap 'kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir" "$dir.out" "$dir.err"' EXIT
start_server "$dir" --cache off
"$bin/ragctl" bench --server "127.0.0.1:$port" --docs "$docs" --queries 10 --concurrency 1 --mode keyword >/dev/null
for mode in ${MODES:-keyword hybrid}; do python3 Benchmarks/latency.py "$port" "$mode" "$queries"; done
