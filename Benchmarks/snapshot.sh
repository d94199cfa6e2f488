#!/usr/bin/env bash
# Snapshot and restore throughput: a fresh release ragd (built-in embedder, 4
# partitions) indexes DOCS synthetic documents (`ragctl bench`: two chunks
# each, so 50,000 documents make 100k chunks), then: snapshot create (archive MB/s), download, restore into
# the live collection (files moved, one catalog switch), under another name
# (documents re-placed), and from the downloaded file (upload, check, restore).
# With --cluster: the collection lives on a local cluster (4 shards x 2 replicas,
# Scripts/cluster-local.sh), the snapshot is taken and downloaded through its
# coordinator, and restored on a fresh single server from the downloaded file.
# Usage: Benchmarks/snapshot.sh [DOCS=50000] [--cluster]
set -euo pipefail
cd "$(dirname "$0")/.."
docs=${1:-50000}
cluster=${2:-}
. Benchmarks/lib.sh
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; [ -n "$cluster" ] && Scripts/cluster-local.sh stop --dir "$dir/cluster" >/dev/null; rm -rf "$dir" "$dir.out" "$dir.err" "$dir.ragsnap"' EXIT
if [ "$cluster" = --cluster ]; then
  pid=
  up=$(RAGD_BIN="$bin/ragd" Scripts/cluster-local.sh start --shards 4 --replicas 2 --port 0 --shard-port 0 --dir "$dir/cluster" --embedder hashing | tail -1)
  port=$(echo "$up" | sed -n 's/.*coordinator on 127.0.0.1:\([0-9]*\).*/\1/p')
else
  start_server "$dir"
fi
a="--server 127.0.0.1:$port --timeout 3600"
"$bin/ragctl" bench $a -c kb --docs "$docs" --queries 0 | tail -2
"$bin/ragctl" stats $a -c kb 2>/dev/null | head -3 || true
mbps() { python3 -c "import sys; b=$1; s=$2; print(f'{b/1e6:.0f} MB in {s:.2f} s = {b/1e6/s:.0f} MB/s')"; }
t0=$(date +%s.%N)
created=$("$bin/ragctl" snapshot create $a -c kb --json)
t1=$(date +%s.%N)
name=$(echo "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["name"])')
bytes=$(echo "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["bytes"])')
echo "snapshot create: $(mbps "$bytes" "$(echo "$t1 - $t0" | bc)")"
t0=$(date +%s.%N); "$bin/ragctl" snapshot download $a "$name" --out "$dir.ragsnap" >/dev/null; t1=$(date +%s.%N)
echo "download:        $(mbps "$bytes" "$(echo "$t1 - $t0" | bc)")"
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); mbps "$bytes" "$(echo "$t1 - $t0" | bc)"; }
if [ "$cluster" = --cluster ]; then
  mkdir -p "$dir/single"
  start_server "$dir/single"
  s="--server 127.0.0.1:$port --timeout 3600"
  echo "upload (checked) + restore on a single server: $(timed "$bin/ragctl" snapshot restore $s "$dir.ragsnap" --name uploaded)"
  "$bin/ragctl" collections $s
  exit 0
fi
echo "restore over the live collection (files moved, one switch): $(timed "$bin/ragctl" snapshot restore $a "$name")"
echo "restore under another name (documents re-placed):           $(timed "$bin/ragctl" snapshot restore $a "$name" -c copy)"
echo "upload (checked) + restore over the live collection:        $(timed "$bin/ragctl" snapshot restore $a "$dir.ragsnap" --name uploaded)"
"$bin/ragctl" collections $a
