"""asyncio client: one connection multiplexing any number of concurrent calls."""
import asyncio
import struct

from .errors import Cancelled, DeadlineExceeded, Internal, Unavailable, error_for
from .ragd.v1 import ragd_pb2 as pb
from . import wire


class AsyncRagdClient:
    def __init__(self, host="127.0.0.1", port=7878, timeout=None, api_key=None, tls=None, tls_ca=None, tls_cert=None,
                 tls_key=None, server_name=None):
        """Options as for RagdClient (api_key, tls, tls_ca, tls_cert, tls_key)."""
        self.host, self.port, self.default_timeout = host, port, timeout
        self.api_key = wire.api_key_or_env(api_key)
        # A W3C traceparent ("00-<trace id>-<span id>-01") sent with every call; None: none.
        self.traceparent = None
        self._ssl = wire.tls_context(tls, tls_ca, tls_cert, tls_key)
        self._server_name = server_name or host
        self._reader = self._writer = self._task = None
        self._calls = {}  # call id -> asyncio.Queue of frames
        self._next_id = 1

    async def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def _connect(self):
        if self._writer is None or self._writer.is_closing():
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._ssl, server_hostname=self._server_name if self._ssl else None)
            except OSError as e:
                raise Unavailable(f"cannot connect to ragd at {self.host}:{self.port}: {e}") from None
            self._task = asyncio.ensure_future(self._read_loop(self._reader))

    async def _read_loop(self, reader):
        error = Unavailable("connection to the server was lost")
        try:
            while True:
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                if length > wire.MAX_FRAME_SIZE:
                    error = Internal(f"server sent a frame of {length} bytes, over the limit")
                    break
                f = pb.Frame()
                f.ParseFromString(await reader.readexactly(length))
                if f.call_id == 0 and f.kind == pb.FRAME_KIND_ERROR:
                    error = wire.error_from(f)
                    break
                q = self._calls.get(f.call_id)
                if q is not None:
                    q.put_nowait(f)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except Exception:
            error = Internal("server sent a frame that is not valid protobuf")
        for q in list(self._calls.values()):
            q.put_nowait(error)
        self._calls.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _frames(self, method, request, timeout):
        timeout = self.default_timeout if timeout is None else timeout
        await self._connect()
        call_id = self._next_id
        self._next_id += 1
        queue = asyncio.Queue()
        self._calls[call_id] = queue
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout + 0.25
        try:
            self._writer.write(wire.encode_frame(wire.request_frame(call_id, method, request, timeout, self.api_key, self.traceparent)))
            await self._writer.drain()
            while True:
                left = None if deadline is None else deadline - loop.time()
                try:
                    item = await asyncio.wait_for(queue.get(), left) if left is None or left > 0 else None
                except asyncio.TimeoutError:
                    item = None
                if item is None:
                    raise DeadlineExceeded("no answer from ragd within the deadline")
                if isinstance(item, Exception):
                    raise item
                wire.check_error(item)
                yield item
                if item.kind in (pb.FRAME_KIND_RESPONSE, pb.FRAME_KIND_END_OF_STREAM):
                    return
        except asyncio.CancelledError:
            if self._writer is not None:
                self._writer.write(wire.encode_frame(pb.Frame(call_id=call_id, kind=pb.FRAME_KIND_CANCEL)))
            raise
        except (ConnectionError, OSError) as e:
            raise Unavailable(f"connection to ragd failed: {e}") from None
        finally:
            self._calls.pop(call_id, None)

    async def call(self, method, request, timeout=None):
        _, response_type = wire.METHODS[method]
        async for f in self._frames(method, request, timeout):
            r = response_type()
            r.ParseFromString(f.payload)
            return r

    async def query(self, query, collection, top_k=None, filter=None, mode=None, user_id="", no_cache=False, timeout=None):
        return await self.call("Query", wire.query_request(collection, query, top_k, filter, mode, user_id, no_cache), timeout)

    async def stream(self, query, collection, top_k=None, filter=None, mode=None, user_id="", timeout=None):
        async for f in self._frames("Stream", wire.query_request(collection, query, top_k, filter, mode, user_id), timeout):
            if f.kind == pb.FRAME_KIND_STREAM_MESSAGE:
                e = pb.StreamEvent()
                e.ParseFromString(f.payload)
                yield e

    async def index(self, documents, collection, chunk_size=0, chunk_overlap=0, timeout=None, index=""):
        return await self.call("Index", wire.index_request(collection, documents, chunk_size, chunk_overlap, index), timeout)

    async def delete(self, document_ids, collection, timeout=None):
        return await self.call("Delete", pb.DeleteRequest(collection=collection, document_ids=list(document_ids)), timeout)

    async def stats(self, collection="", timeout=None):
        return await self.call("Stats", pb.StatsRequest(collection=collection), timeout)

    async def health(self, timeout=None):
        return await self.call("Health", pb.HealthRequest(), timeout)

    # Asynchronous jobs (see RagdClient for the semantics).
    async def submit_index_job(self, documents, collection, chunk_size=0, chunk_overlap=0, max_retries=0, part_bytes=4 << 20, timeout=None):
        job = None
        for r in wire.index_job_requests(collection, documents, chunk_size, chunk_overlap, max_retries, part_bytes):
            if job is not None:
                r.append_to = job.id
            job = (await self.call("SubmitJob", r, timeout)).job
        return job

    async def get_job(self, job_id, timeout=None):
        return (await self.call("GetJob", pb.GetJobRequest(id=job_id), timeout)).job

    async def cancel_job(self, job_id, timeout=None):
        return (await self.call("CancelJob", pb.CancelJobRequest(id=job_id), timeout)).job

    async def wait_job(self, job_id, interval=0.2, limit=None):
        start = asyncio.get_running_loop().time()
        while True:
            job = await self.get_job(job_id)
            if job.state in wire.FINISHED_JOB_STATES:
                return job
            if limit is not None and asyncio.get_running_loop().time() - start > limit:
                raise DeadlineExceeded(f"job {job_id} did not finish within {limit} s")
            await asyncio.sleep(interval)
