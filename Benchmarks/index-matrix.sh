#!/usr/bin/env bash
# Indexing throughput and the server's peak memory as a function of the batch
# size (documents per Index call), the server's embedding workers
# (--index-embed-workers) and the Index calls in flight; then the same corpus
# through an asynchronous job (ragctl jobs submit + wait).
# A fresh ragd (release build, built-in embedder, 4 partitions) per row.
# Usage: Benchmarks/index-matrix.sh [DOCS=20000] [BATCHES="16 64 256"] [WORKERS="1 2"] [INFLIGHT="1 4"]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-20000}
batches=${2:-16 64 256}
workers_list=${3:-1 2}
inflight_list=${4:-1 4}
. Benchmarks/lib.sh
peak_mib() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }

echo "$(nproc) cores, $docs synthetic documents of ~1 KB (160 words)"
echo
echo "| batch | embed workers | calls in flight | docs/s | chunks/s | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|"
for batch in $batches; do
  for workers in $workers_list; do
    for inflight in $inflight_list; do
      dir=$(mktemp -d)
      start_server "$dir" --index-embed-workers "$workers"
      line=$("$bin/ragctl" bench --server "127.0.0.1:$port" --docs "$docs" --batch "$batch" --index-concurrency "$inflight" --queries 0)
      rss=$(peak_mib)
      stop_server
      rm -rf "$dir" "$dir.out" "$dir.err"
      rates=$(echo "$line" | sed -n 's/.* = \([0-9]*\) docs\/s, \([0-9]*\) chunks\/s.*/\1 | \2/p')
      echo "| $batch | $workers | $inflight | $rates | $rss |"
    done
  done
done

# The same documents as one asynchronous job (uploaded in parts, indexed in job batches of 64).
dir=$(mktemp -d)
python3 - "$dir/docs.jsonl" "$docs" <<'PY'
import json, random, sys
random.seed(42)
words = [f"w{i}" for i in range(5000)]
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": f"job-{i}", "text": " ".join(random.choice(words) for _ in range(160))}) + "\n")
PY
start_server "$dir/data"
t0=$(date +%s.%N)
id=$("$bin/ragctl" jobs submit "$dir/docs.jsonl" -c jobbench --server "127.0.0.1:$port")
"$bin/ragctl" jobs wait "$id" --server "127.0.0.1:$port" >/dev/null 2>&1
t1=$(date +%s.%N)
rss=$(peak_mib)
stop_server
echo
python3 -c "import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f'async job: {sys.argv[3]} documents submitted and indexed in {s:.2f} s = {int(sys.argv[3]) / s:.0f} docs/s, peak RSS {sys.argv[4]} MiB')" "$t0" "$t1" "$docs" "$rss"
rm -rf "$dir"
