#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace receiver for tests: accepts POST /v1/traces
(application/x-protobuf, optionally gzip), decodes ExportTraceServiceRequest by
the OTLP field numbers with its own protobuf wire-format reader (no generated
code needed), and appends one JSON line per span to the file given as argv[1].
Prints "listening on PORT" once ready."""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def fields(buf):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def any_value(buf):
    for n, w, v in fields(buf):
        if n == 1:
            return v.decode()
        if n == 2:
            return bool(v)
        if n == 3:
            return v if v < 1 << 63 else v - (1 << 64)
        if n == 4:
            import struct
            return struct.unpack("<d", v)[0]
    return None


def attributes(kvs):
    out = {}
    for kv in kvs:
        key = value = None
        for n, w, v in fields(kv):
            if n == 1:
                key = v.decode()
            elif n == 2:
                value = any_value(v)
        out[key] = value
    return out


def spans(request):
    for n, _, resource_spans in fields(request):
        if n != 1:
            continue
        resource = {}
        for rn, _, rv in fields(resource_spans):
            if rn == 1:
                resource = attributes([v for an, _, v in fields(rv) if an == 1])
            elif rn == 2:
                for sn, _, span in fields(rv):
                    if sn != 2:
                        continue
                    s = {"service": resource.get("service.name"), "attributes": {}}
                    attrs = []
                    for f, _, v in fields(span):
                        if f == 1:
                            s["trace_id"] = v.hex()
                        elif f == 2:
                            s["span_id"] = v.hex()
                        elif f == 4:
                            s["parent_span_id"] = v.hex()
                        elif f == 5:
                            s["name"] = v.decode()
                        elif f == 6:
                            s["kind"] = v
                        elif f == 9:
                            attrs.append(v)
                    s["attributes"] = attributes(attrs)
                    yield s


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with open(sys.argv[1], "a") as out:
            for s in spans(body):
                out.write(json.dumps(s) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
