#!/usr/bin/env python3
"""Clustered ANN data and the HNSW peers on it, one thread, k=10.

  ann-peers.py data DIR [N=100000] [D=384] [Q=200]   writes DIR/base.fvecs, query.fvecs, truth.ivecs
  ann-peers.py peers DIR [EF=16,32,64,128,256]       hnswlib and FAISS HNSW (M=16, efConstruction=200)
                                                     (ANN_PEERS=hnswlib: hnswlib only)

Data: 1,000 random unit centres, each point a centre plus Gaussian noise of
sigma = 1/sqrt(D), normalised (random Gaussian vectors defeat every graph
index and are not a fair test); truth by exact inner product.
(pip install numpy hnswlib faiss-cpu)"""
import os, sys, time
import numpy as np


def write_vecs(path, a):
    a = np.ascontiguousarray(a)
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = a.view(np.int32)
    out.tofile(path)


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def data(dir, n=100_000, d=384, q=200):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((1000, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    def points(m):
        x = centres[rng.integers(0, 1000, m)] + rng.standard_normal((m, d)).astype(np.float32) / np.sqrt(d)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    base, query = points(n), points(q)
    truth = np.empty((q, 10), dtype=np.int32)
    for s in range(0, q, 50):
        scores = query[s:s + 50] @ base.T
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        truth[s:s + 50] = np.take_along_axis(top, order, axis=1)
    write_vecs(f"{dir}/base.fvecs", base)
    write_vecs(f"{dir}/query.fvecs", query)
    write_vecs(f"{dir}/truth.ivecs", truth)
    print(f"data: {n} x {d} clustered (1000 centres), {q} queries, exact truth -> {dir}")


def measure(name, search, query, truth, efs, set_ef):
    print("      ef   recall@10        QPS   p50 ms   p99 ms")
    for ef in efs:
        set_ef(ef)
        for v in query[:20]:
            search(v)
        lat, found = [], 0
        start = time.perf_counter()
        for v, want in zip(query, truth):
            t = time.perf_counter()
            ids = search(v)
            lat.append((time.perf_counter() - t) * 1000)
            found += len(set(int(i) for i in ids) & set(int(i) for i in want))
        secs = time.perf_counter() - start
        lat.sort()
        print(f"  {ef:6d}   {found / (10 * len(query)):9.4f}  {len(query) / secs:9.0f}   {lat[len(lat) // 2]:6.3f}   {lat[min(len(lat) - 1, int(0.99 * len(lat)))]:6.3f}")


def peers(dir, efs):
    base, query, truth = read_vecs(f"{dir}/base.fvecs", np.float32), read_vecs(f"{dir}/query.fvecs", np.float32), read_vecs(f"{dir}/truth.ivecs", np.int32)
    n, d = base.shape
    import hnswlib
    index = hnswlib.Index(space="ip", dim=d)
    index.init_index(max_elements=n, M=16, ef_construction=200, random_seed=100)
    index.set_num_threads(1)
    t = time.perf_counter()
    index.add_items(base, np.arange(n))
    build = time.perf_counter() - t
    print(f"hnswlib {hnswlib.__version__ if hasattr(hnswlib, '__version__') else ''}, {n} x {d}, M=16, efConstruction=200, k=10, one thread: built in {build:.1f} s ({n / build:.0f} vectors/s)")
    measure("hnswlib", lambda v: index.knn_query(v, k=10)[0][0], query, truth, efs, index.set_ef)
    if os.environ.get("ANN_PEERS", "hnswlib,faiss").find("faiss") < 0:
        return
    import faiss
    faiss.omp_set_num_threads(1)
    f = faiss.IndexHNSWFlat(d, 16, faiss.METRIC_INNER_PRODUCT)
    f.hnsw.efConstruction = 200
    t = time.perf_counter()
    f.add(base)
    build = time.perf_counter() - t
    print(f"FAISS {faiss.__version__} IndexHNSWFlat, M=16, efConstruction=200, one thread: built in {build:.1f} s ({n / build:.0f} vectors/s)")
    def set_ef(ef): f.hnsw.efSearch = ef
    measure("faiss", lambda v: f.search(v.reshape(1, -1), 10)[1][0], query, truth, efs, set_ef)


if __name__ == "__main__":
    cmd, dir = sys.argv[1], sys.argv[2]
    if cmd == "data":
        data(dir, *[int(a) for a in sys.argv[3:6]])
    else:
        peers(dir, [int(e) for e in (sys.argv[3] if len(sys.argv) > 3 else "16,32,64,128,256").split(",")])
