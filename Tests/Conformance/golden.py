#!/usr/bin/env python3
"""Golden frames: builds each frame with the Python protobuf runtime and checks it against
golden/NAME.hex byte for byte, then decodes the file and checks the fields.
usage: golden.py check | write"""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Clients", "python"))
from ragd_client import pb, all_of, eq, gte  # noqa: E402

HERE = os.path.join(os.path.dirname(__file__), "golden")


def framed(f):
    body = f.SerializeToString()
    return struct.pack(">I", len(body)) + body


def frames():
    q = pb.QueryRequest(collection="kb", query="what is SQLITE_BUSY?", top_k=3, mode=pb.SEARCH_MODE_KEYWORD,
                        filter=all_of(eq("lang", "en"), gte("year", 2000)))
    yield "health-request", pb.Frame(call_id=1, method="Health", kind=pb.FRAME_KIND_REQUEST)
    yield "query-request", pb.Frame(call_id=42, method="Query", kind=pb.FRAME_KIND_REQUEST,
                                    metadata=pb.Metadata(request_id="req-1", deadline_ms=1500),
                                    payload=q.SerializeToString())
    yield "query-top-k-zero", pb.Frame(call_id=2, method="Query", kind=pb.FRAME_KIND_REQUEST,
                                       payload=pb.QueryRequest(collection="kb", query="x", top_k=0).SerializeToString())
    yield "error-not-found", pb.Frame(call_id=42, method="Query", kind=pb.FRAME_KIND_ERROR,
                                      status=pb.STATUS_CODE_NOT_FOUND, status_message='collection "kb" does not exist')
    yield "stream-token", pb.Frame(call_id=7, method="Stream", kind=pb.FRAME_KIND_STREAM_MESSAGE,
                                   payload=pb.StreamEvent(token="Hello ").SerializeToString())
    yield "end-of-stream", pb.Frame(call_id=7, method="Stream", kind=pb.FRAME_KIND_END_OF_STREAM)
    yield "cancel", pb.Frame(call_id=9, kind=pb.FRAME_KIND_CANCEL)


def main():
    failures = 0
    for name, f in frames():
        path = os.path.join(HERE, name + ".hex")
        data = framed(f)
        if sys.argv[1] == "write":
            open(path, "w").write(data.hex() + "\n")
            continue
        golden = bytes.fromhex(open(path).read().strip())
        if golden != data:
            print(f"{name}: encoded {data.hex()} != golden {golden.hex()}")
            failures += 1
        (n,) = struct.unpack(">I", golden[:4])
        decoded = pb.Frame()
        decoded.ParseFromString(golden[4:4 + n])
        if decoded != f or n != len(golden) - 4:
            print(f"{name}: decoding the golden bytes gives another frame")
            failures += 1
        if name == "query-top-k-zero":
            r = pb.QueryRequest()
            r.ParseFromString(decoded.payload)
            if not r.HasField("top_k") or r.top_k != 0:
                print("query-top-k-zero: explicit top_k 0 lost its presence")
                failures += 1
    print(f"{failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
