#!/usr/bin/env bash
# HNSW against its peers on the same vectors, one thread, k=10, in one run:
# clustered synthetic data written as .fvecs/.ivecs (Benchmarks/ann-peers.py data),
# then hnswlib and FAISS IndexHNSWFlat (M=16, efConstruction=200), then Ragd's
# HNSWGraph reading the same files (`ragctl bench --search-only --index hnsw-int8`:
# one graph, searched by its float walk and by its int8 walk, whose kept nodes are
# rescored from the floats, turn about).
# Needs python3 with numpy, hnswlib and faiss-cpu (pip install numpy hnswlib faiss-cpu).
# Usage: Benchmarks/ann.sh [N=100000] [D=384] [EF=16,32,64,128,256]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000} d=${2:-384} ef=${3:-16,32,64,128,256}
. Benchmarks/lib.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 Benchmarks/ann-peers.py data "$dir" "$n" "$d" 200
python3 Benchmarks/ann-peers.py peers "$dir" "$ef"
"$bin/ragctl" bench --search-only --index hnsw-int8 --base "$dir/base.fvecs" --query-vectors "$dir/query.fvecs" --truth "$dir/truth.ivecs" --ef "$ef"
