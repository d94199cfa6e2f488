#!/usr/bin/env python3
"""FAISS flat (IndexFlatIP) on one thread over N x D random unit vectors, k=10:
median ms per query, the peer that `ragctl bench --search-only` is compared with.
Usage: Benchmarks/search-peers.py [N=100000] [D=384]   (pip install faiss-cpu numpy)"""
import sys, time
import numpy as np
import faiss

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
d = int(sys.argv[2]) if len(sys.argv) > 2 else 384
faiss.omp_set_num_threads(1)
rng = np.random.default_rng(1)
x = rng.uniform(-1, 1, (n, d)).astype("float32")
x /= np.linalg.norm(x, axis=1, keepdims=True)
q = rng.uniform(-1, 1, (50, d)).astype("float32")
q /= np.linalg.norm(q, axis=1, keepdims=True)
index = faiss.IndexFlatIP(d)
index.add(x)
index.search(q[:1], 10)
times = []
for i in range(50):
    t = time.perf_counter()
    index.search(q[i:i + 1], 10)
    times.append(time.perf_counter() - t)
times.sort()
print(f"FAISS {faiss.__version__} IndexFlatIP, {n} x {d}, k=10, one thread: {times[len(times) // 2] * 1000:.2f} ms/query")
