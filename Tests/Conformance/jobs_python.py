#!/usr/bin/env python3
"""Asynchronous jobs from the Python clients (sync and asyncio) against a ragd:
an index job uploaded in several parts, a query job, listing, cancel of an
unknown job. Usage: jobs_python.py HOST PORT. Prints "ok" or fails."""
import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Clients", "python"))
from ragd_client import AsyncRagdClient, NotFound, RagdClient  # noqa: E402

host, port = sys.argv[1], int(sys.argv[2])
docs = [{"id": f"py{i}", "text": f"Python job document {i} carries keyword{i}.", "metadata": {"n": i % 7}} for i in range(1500)]

with RagdClient(host, port, timeout=30) as c:
    job = c.submit_index_job(docs, "pyjobs", part_bytes=16384)  # several parts
    assert job.state in ("queued", "running") and job.progress_total == len(docs), job
    done = c.wait_job(job.id, interval=0.05, limit=120)
    assert done.state == "succeeded", done
    assert done.progress_done == len(docs), done
    assert c.stats("pyjobs").collections[0].documents == len(docs)
    q = c.wait_job(c.submit_query_job("keyword1499", "pyjobs", top_k=1, mode="keyword").id, interval=0.05, limit=60)
    from ragd_client import pb
    answer = pb.QueryResponse()
    answer.ParseFromString(q.result)
    assert answer.sources[0].document_id == "py1499", answer
    assert {j.id for j in c.list_jobs("succeeded")} >= {job.id, q.id}
    try:
        c.cancel_job("no-such-job")
        raise AssertionError("expected NotFound")
    except NotFound:
        pass


async def main():
    async with AsyncRagdClient(host, port, timeout=30) as c:
        job = await c.submit_index_job(docs[:300], "pyjobs-async", part_bytes=4096)
        done = await c.wait_job(job.id, interval=0.05, limit=120)
        assert done.state == "succeeded" and done.progress_done == 300, done

asyncio.run(main())
print("ok")
