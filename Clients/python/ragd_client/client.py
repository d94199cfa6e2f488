"""Blocking client: one socket, one call at a time (use one client per thread)."""
import socket
import ssl
import struct
import threading
import time

from .errors import DeadlineExceeded, Internal, Unavailable
from .ragd.v1 import ragd_pb2 as pb
from . import wire


class RagdClient:
    """`api_key` (default $RAGD_API_KEY) goes with every call. TLS: `tls=True`
    (system CAs), `tls_ca` (a CA file; implies TLS), `tls_cert`/`tls_key` (a
    client certificate for mutual TLS), or `tls` an ssl.SSLContext."""

    def __init__(self, host="127.0.0.1", port=7878, timeout=None, api_key=None, tls=None, tls_ca=None, tls_cert=None,
                 tls_key=None, server_name=None):
        self.host, self.port, self.default_timeout = host, port, timeout
        self.api_key = wire.api_key_or_env(api_key)
        # A W3C traceparent ("00-<trace id>-<span id>-01") sent with every call; None: none.
        self.traceparent = None
        self._ssl = wire.tls_context(tls, tls_ca, tls_cert, tls_key)
        self._server_name = server_name or host
        self._sock = None
        self._next_id = 1
        self._lock = threading.Lock()

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _connect(self):
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._ssl is not None:
                    try:
                        sock = self._ssl.wrap_socket(sock, server_hostname=self._server_name)
                    except (ssl.SSLError, OSError) as e:
                        sock.close()
                        raise Unavailable(f"TLS handshake with ragd at {self.host}:{self.port} failed: {e}") from None
                self._sock = sock
            except OSError as e:
                raise Unavailable(f"cannot connect to ragd at {self.host}:{self.port}: {e}") from None
        return self._sock

    def _read_exact(self, n, deadline):
        buf = bytearray()
        while len(buf) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded("no answer from ragd within the deadline")
                self._sock.settimeout(left)
            else:
                self._sock.settimeout(None)
            try:
                chunk = self._sock.recv(n - len(buf))
            except socket.timeout:
                raise DeadlineExceeded("no answer from ragd within the deadline") from None
            except OSError as e:
                raise Unavailable(f"connection to ragd failed: {e}") from None
            if not chunk:
                raise Unavailable("connection to the server was lost")
            buf += chunk
        return bytes(buf)

    def _read_frame(self, deadline):
        (length,) = struct.unpack(">I", self._read_exact(4, deadline))
        if length > wire.MAX_FRAME_SIZE:
            raise Internal(f"server sent a frame of {length} bytes, over the limit")
        f = pb.Frame()
        try:
            f.ParseFromString(self._read_exact(length, deadline))
        except Exception:
            raise Internal("server sent a frame that is not valid protobuf") from None
        return f

    def _frames(self, method, request, timeout):
        """Sends a request and yields the call's frames until it ends."""
        timeout = self.default_timeout if timeout is None else timeout
        # A little slack past the server's own deadline, so its answer wins when it sends one.
        deadline = None if timeout is None else time.monotonic() + timeout + 0.25
        with self._lock:
            sock = self._connect()
            call_id = self._next_id
            self._next_id += 1
            try:
                sock.sendall(wire.encode_frame(wire.request_frame(call_id, method, request, timeout, self.api_key, self.traceparent)))
                while True:
                    f = self._read_frame(deadline)
                    if f.call_id not in (call_id, 0):
                        continue
                    wire.check_error(f)
                    yield f
                    if f.kind in (pb.FRAME_KIND_RESPONSE, pb.FRAME_KIND_END_OF_STREAM):
                        return
            except (Unavailable, DeadlineExceeded, Internal):
                self.close()  # the connection's state is unknown: start afresh next call
                raise
            except OSError as e:
                self.close()
                raise Unavailable(f"connection to ragd failed: {e}") from None

    def call(self, method, request, timeout=None):
        _, response_type = wire.METHODS[method]
        for f in self._frames(method, request, timeout):
            r = response_type()
            r.ParseFromString(f.payload)
            return r

    def query(self, query, collection, top_k=None, filter=None, mode=None, user_id="", no_cache=False, timeout=None):
        return self.call("Query", wire.query_request(collection, query, top_k, filter, mode, user_id, no_cache), timeout)

    def stream(self, query, collection, top_k=None, filter=None, mode=None, user_id="", timeout=None):
        """Yields StreamEvent messages: sources, then tokens, then done."""
        for f in self._frames("Stream", wire.query_request(collection, query, top_k, filter, mode, user_id), timeout):
            if f.kind == pb.FRAME_KIND_STREAM_MESSAGE:
                e = pb.StreamEvent()
                e.ParseFromString(f.payload)
                yield e

    def index(self, documents, collection, chunk_size=0, chunk_overlap=0, timeout=None, index=""):
        """documents: dicts with id, text and optional metadata. index: the vector
        index of a collection this call creates ("exact", "int8", "hnsw", "auto";
        "": the server's)."""
        return self.call("Index", wire.index_request(collection, documents, chunk_size, chunk_overlap, index), timeout)

    def delete(self, document_ids, collection, timeout=None):
        return self.call("Delete", pb.DeleteRequest(collection=collection, document_ids=list(document_ids)), timeout)

    def stats(self, collection="", timeout=None):
        return self.call("Stats", pb.StatsRequest(collection=collection), timeout)

    def health(self, timeout=None):
        return self.call("Health", pb.HealthRequest(), timeout)

    def list_collections(self, timeout=None):
        return self.call("ListCollections", pb.ListCollectionsRequest(), timeout).collections

    # Asynchronous jobs.
    def submit_index_job(self, documents, collection, chunk_size=0, chunk_overlap=0, max_retries=0, part_bytes=4 << 20, timeout=None):
        """Returns the queued Job at once; large jobs go up in parts."""
        job = None
        for r in wire.index_job_requests(collection, documents, chunk_size, chunk_overlap, max_retries, part_bytes):
            if job is not None:
                r.append_to = job.id
            job = self.call("SubmitJob", r, timeout).job
        return job

    def submit_query_job(self, query, collection, top_k=None, mode=None, max_retries=0, timeout=None):
        r = pb.SubmitJobRequest()
        r.spec.query.CopyFrom(wire.query_request(collection, query, top_k, None, mode, "", False))
        r.spec.max_retries = max_retries
        return self.call("SubmitJob", r, timeout).job

    def get_job(self, job_id, timeout=None):
        return self.call("GetJob", pb.GetJobRequest(id=job_id), timeout).job

    def list_jobs(self, state="", timeout=None):
        return list(self.call("ListJobs", pb.ListJobsRequest(state=state), timeout).jobs)

    def cancel_job(self, job_id, timeout=None):
        return self.call("CancelJob", pb.CancelJobRequest(id=job_id), timeout).job

    def wait_job(self, job_id, interval=0.2, limit=None):
        """Polls until the job succeeded, failed or was cancelled; returns it."""
        start = time.monotonic()
        while True:
            job = self.get_job(job_id)
            if job.state in wire.FINISHED_JOB_STATES:
                return job
            if limit is not None and time.monotonic() - start > limit:
                raise DeadlineExceeded(f"job {job_id} did not finish within {limit} s")
            time.sleep(interval)
