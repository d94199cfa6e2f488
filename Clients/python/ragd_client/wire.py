"""Framing and request building shared by the sync and asyncio clients."""
import os
import ssl
import struct

from .errors import error_for, ResourceExhausted
from .ragd.v1 import ragd_pb2 as pb

MAX_FRAME_SIZE = 16 * 1024 * 1024

METHODS = {
    "Query": (pb.QueryRequest, pb.QueryResponse),
    "Index": (pb.IndexRequest, pb.IndexResponse),
    "Delete": (pb.DeleteRequest, pb.DeleteResponse),
    "Stats": (pb.StatsRequest, pb.StatsResponse),
    "Health": (pb.HealthRequest, pb.HealthResponse),
    "ListCollections": (pb.ListCollectionsRequest, pb.ListCollectionsResponse),
    "ClearCache": (pb.ClearCacheRequest, pb.ClearCacheResponse),
    "SubmitJob": (pb.SubmitJobRequest, pb.SubmitJobResponse),
    "GetJob": (pb.GetJobRequest, pb.GetJobResponse),
    "ListJobs": (pb.ListJobsRequest, pb.ListJobsResponse),
    "CancelJob": (pb.CancelJobRequest, pb.CancelJobResponse),
    "CreateKey": (pb.CreateKeyRequest, pb.CreateKeyResponse),
    "ListKeys": (pb.ListKeysRequest, pb.ListKeysResponse),
    "RevokeKey": (pb.RevokeKeyRequest, pb.RevokeKeyResponse),
    "ClusterStatus": (pb.ClusterStatusRequest, pb.ClusterStatusResponse),
    "ClusterChange": (pb.ClusterChangeRequest, pb.ClusterChangeResponse),
    "ClusterVerify": (pb.ClusterVerifyRequest, pb.ClusterVerifyResponse),
}

FINISHED_JOB_STATES = ("succeeded", "failed", "cancelled")


def index_job_requests(collection, documents, chunk_size=0, chunk_overlap=0, max_retries=0, part_bytes=4 << 20):
    """SubmitJobRequests for an index job: the first carries the spec, the next
    ones `append_to` (filled in by the caller with the job id); parts of about
    `part_bytes` keep each under the frame limit."""
    parts, size = [[]], 0
    for d in documents:
        n = len(d["text"].encode()) + len(d["id"].encode()) + 16
        if parts[-1] and size + n > part_bytes:
            parts.append([])
            size = 0
        parts[-1].append(d)
        size += n
    requests = []
    for i, part in enumerate(parts):
        r = pb.SubmitJobRequest(more=i < len(parts) - 1)
        if i == 0:
            r.spec.max_retries = max_retries
            r.spec.index.CopyFrom(index_request(collection, part, chunk_size, chunk_overlap))
        else:
            r.spec.index.CopyFrom(index_request("", part))
        requests.append(r)
    return requests


def encode_frame(frame):
    body = frame.SerializeToString()
    if len(body) > MAX_FRAME_SIZE:
        raise ResourceExhausted(f"request of {len(body)} bytes exceeds the frame limit of {MAX_FRAME_SIZE} bytes")
    return struct.pack(">I", len(body)) + body


def request_frame(call_id, method, request, timeout, api_key=None, traceparent=None):
    f = pb.Frame(call_id=call_id, method=method, kind=pb.FRAME_KIND_REQUEST, payload=request.SerializeToString())
    if api_key:
        f.metadata.api_key = api_key
    if traceparent:
        # W3C trace context: a server started with --otel-endpoint continues this trace.
        f.metadata.traceparent = traceparent
    if timeout is not None:
        f.metadata.deadline_ms = max(1, int(timeout * 1000))
    return f


def value(v):
    """A Python scalar as a ragd.v1.Value."""
    if isinstance(v, bool):
        return pb.Value(bool_value=v)
    if isinstance(v, (int, float)):
        return pb.Value(number_value=float(v))
    return pb.Value(string_value=str(v))


def py_value(v):
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else None


def query_request(collection, query, top_k=None, filter=None, mode=None, user_id="", no_cache=False):
    r = pb.QueryRequest(collection=collection, query=query, user_id=user_id, no_cache=no_cache)
    if top_k is not None:
        r.top_k = top_k
    if filter is not None:
        r.filter.CopyFrom(filter)
    if mode is not None:
        r.mode = {"vector": pb.SEARCH_MODE_VECTOR, "keyword": pb.SEARCH_MODE_KEYWORD, "hybrid": pb.SEARCH_MODE_HYBRID}[mode]
    return r


def index_request(collection, documents, chunk_size=0, chunk_overlap=0, index=""):
    r = pb.IndexRequest(collection=collection, chunk_size=chunk_size, chunk_overlap=chunk_overlap, index=index)
    for d in documents:
        doc = r.documents.add(id=d["id"], text=d["text"])
        for k, v in (d.get("metadata") or {}).items():
            doc.metadata[k].CopyFrom(value(v))
    return r


# Filter helpers: eq("lang", "en"), all_of(...), any_of(...), negate(...).
def compare(key, op, v=None, values=None):
    c = pb.Comparison(key=key, op=op)
    if v is not None:
        c.value.CopyFrom(value(v))
    for x in values or []:
        c.values.append(value(x))
    return pb.Filter(compare=c)


def eq(key, v): return compare(key, pb.COMPARE_OP_EQ, v)
def ne(key, v): return compare(key, pb.COMPARE_OP_NE, v)
def lt(key, v): return compare(key, pb.COMPARE_OP_LT, v)
def lte(key, v): return compare(key, pb.COMPARE_OP_LTE, v)
def gt(key, v): return compare(key, pb.COMPARE_OP_GT, v)
def gte(key, v): return compare(key, pb.COMPARE_OP_GTE, v)
def in_(key, values): return compare(key, pb.COMPARE_OP_IN, values=values)
def exists(key): return compare(key, pb.COMPARE_OP_EXISTS)
def all_of(*fs): return pb.Filter(all_of=pb.FilterList(filters=list(fs)))
def any_of(*fs): return pb.Filter(any_of=pb.FilterList(filters=list(fs)))
def negate(f): return pb.Filter(negation=f)


def error_from(frame):
    """The exception an ERROR frame stands for; `retry_after` (seconds) when a rate limit said when."""
    e = error_for(frame.status, frame.status_message)
    if frame.metadata.retry_after_ms:
        e.retry_after = frame.metadata.retry_after_ms / 1000
    return e


def check_error(frame):
    if frame.kind == pb.FRAME_KIND_ERROR:
        raise error_from(frame)


def api_key_or_env(api_key):
    """The key given, else $RAGD_API_KEY, else None."""
    return api_key if api_key is not None else (os.environ.get("RAGD_API_KEY") or None)


def tls_context(tls, tls_ca=None, tls_cert=None, tls_key=None):
    """An ssl.SSLContext for `tls`: an SSLContext as is, True (system CAs), or
    None/False with no files (plain TCP). Files: a CA to trust, a client
    certificate and key for servers that require one (mutual TLS)."""
    if isinstance(tls, ssl.SSLContext):
        return tls
    if not tls and not tls_ca and not tls_cert:
        return None
    ctx = ssl.create_default_context(cafile=tls_ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_cert:
        ctx.load_cert_chain(tls_cert, tls_key)
    return ctx
