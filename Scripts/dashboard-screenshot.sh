#!/usr/bin/env bash
# Makes docs/dashboard.png from a real run: a release ragd (built-in embedder),
# a workload (indexing, then queries from 4 clients, repeated questions for
# cache hits, a few calls that fail), and Scripts/dashboard-screenshot.py
# scraping /metrics meanwhile. Needs matplotlib (apt-get install python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/lib.sh
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir" "$dir.out" "$dir.err"' EXIT
start_server "$dir" --metrics-port 0 --log-level info
metrics=$(sed -n 's/^.*metrics on .*:\([0-9]*\).*$/\1/p' "$dir.err" "$dir.out" | head -1)
mkdir -p docs
py=python3
python3 -c "import matplotlib" 2>/dev/null || py=/usr/bin/python3   # Debian's python3-matplotlib
$py Scripts/dashboard-screenshot.py "http://127.0.0.1:$metrics/metrics" docs/dashboard.png 75 1.5 &
shot=$!
a="--server 127.0.0.1:$port"
sleep 3
"$bin/ragctl" bench $a -c kb --docs 20000 --batch 64 --queries 0 >/dev/null
"$bin/ragctl" bench $a -c kb --docs 0 --seconds 25 --concurrency 4 >/dev/null &
"$bin/ragctl" bench $a -c faq --docs 500 --cache >/dev/null
for _ in $(seq 40); do "$bin/ragctl" query $a -c missing "anything" >/dev/null 2>&1 || true; sleep 0.3; done
wait $shot
