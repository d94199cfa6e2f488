#!/usr/bin/env bash
# The cost of tracing on Query: the same release ragd (built-in embedder)
# without --otel-endpoint, then with it (every query sampled, spans exported
# over OTLP/HTTP to Tests/Fixtures/otlp_receiver.py), each on a fresh data
# directory with the same corpus; `ragctl bench` prints query latencies.
# Usage: Benchmarks/tracing.sh [DOCS=5000] [QUERIES=3000] [CONCURRENCY=1]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-5000}; queries=${2:-3000}; concurrency=${3:-1}
. Benchmarks/lib.sh
spans=$(mktemp)
python3 Tests/Fixtures/otlp_receiver.py "$spans" > "$spans.port" &
receiver=$!
trap 'kill $receiver 2>/dev/null || true; rm -f "$spans" "$spans.port"' EXIT
for _ in $(seq 100); do grep -q listening "$spans.port" && break; sleep 0.05; done
otel="http://127.0.0.1:$(awk '{print $3}' "$spans.port")"
for run in off on; do
  dir=$(mktemp -d)
  if [ $run = on ]; then start_server "$dir" --otel-endpoint "$otel" --cache off; else start_server "$dir" --cache off; fi
  "$bin/ragctl" bench --server "127.0.0.1:$port" --docs "$docs" --queries "$queries" --concurrency "$concurrency" | grep -E "^(query|queries)" | sed "s/^/tracing $run: /"
  stop_server
  rm -rf "$dir" "$dir.out" "$dir.err"
done
echo "spans received: $(wc -l < "$spans")"
