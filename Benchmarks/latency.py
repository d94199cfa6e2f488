"""Where a query's time goes, seen from a thin client: the server's own stage
timings (search, generate, total) against the wall time of the call in the
blocking Python client, one call at a time. The difference is the transport's
share (framing, task hops, loopback) plus this client's protobuf decoding.
Usage: latency.py PORT MODE QUERIES (collection "bench", as `ragctl bench` makes it)."""
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/Clients/python")
from ragd_client import RagdClient  # noqa: E402

port, mode, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = RagdClient("127.0.0.1", port)
# Questions made of words the collection holds, so every query has hits.
seed = c.query("anything", collection="bench", top_k=10, mode="vector", no_cache=True)
words = " ".join(s.content for s in seed.sources).split()
questions = [" ".join(words[i * 3:(i + 1) * 3]) for i in range(50)]
rows = []
for i in range(n):
    t0 = time.perf_counter()
    r = c.query(questions[i % len(questions)], collection="bench", top_k=10, mode=mode, no_cache=True)
    wall = time.perf_counter() - t0
    t = r.timings
    rows.append((t.search_seconds, t.generate_seconds, t.total_seconds, wall, len(r.sources)))
p50 = lambda j: statistics.median(x[j] for x in rows) * 1e6  # noqa: E731
print(f"{mode}, {n} queries, k=10 ({statistics.mean(x[4] for x in rows):.1f} hits on average): "
      f"server search p50 {p50(0):.0f} µs, generate {p50(1):.0f} µs, total {p50(2):.0f} µs; "
      f"client wall p50 {p50(3):.0f} µs; outside the server {p50(3) - p50(2):.0f} µs")
