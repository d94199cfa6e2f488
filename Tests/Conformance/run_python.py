#!/usr/bin/env python3
"""Runs scenarios.tsv with the Python client; prints one JSON object per step.
usage: run_python.py SCENARIOS HOST PORT SILENT_PORT HANGUP_PORT COLLECTION [sync|async]
$RAGD_API_KEY is sent with every call; $RAGD_CONFORMANCE_TLS_CA turns TLS on for the main server."""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Clients", "python"))
import ragd_client as rc  # noqa: E402
from ragd_client import pb  # noqa: E402


def typed(v):
    kind, _, raw = v.partition(":")
    return {"s": lambda x: x, "n": float, "b": lambda x: x == "true"}[kind](raw)


def parse_filter(text):
    if text == "-":
        return None
    parts = []
    for c in text.split("&"):
        neg = c.startswith("!")
        c = c[1:] if neg else c
        if c.startswith("?"):
            f = rc.exists(c[1:])
        elif "@" in c:
            key, _, vals = c.partition("@")
            f = rc.in_(key, [typed(v) for v in vals.split(",")])
        else:
            for op, fn in (("!=", rc.ne), ("<=", rc.lte), (">=", rc.gte), ("=", rc.eq), ("<", rc.lt), (">", rc.gt)):
                if op in c:
                    key, _, val = c.partition(op)
                    f = fn(key, typed(val))
                    break
        parts.append(rc.negate(f) if neg else f)
    return parts[0] if len(parts) == 1 else rc.all_of(*parts)


def load(path):
    docs, steps = [], []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        if f[0] == "doc":
            meta = {} if f[2] == "-" else {k: typed(v) for k, v in (kv.split("=", 1) for kv in f[2].split(";"))}
            docs.append({"id": f[1], "text": f[3], "metadata": meta})
        else:
            steps.append(f)
    return docs, steps


def status(e):
    return rc.CODE_NAMES[e.code]


def main():
    path, host, port, silent, hangup, collection = sys.argv[1:7]
    mode_name = sys.argv[7] if len(sys.argv) > 7 else "sync"
    docs, steps = load(path)
    ports = {"main": int(port), "silent": int(silent), "hangup": int(hangup)}
    clients = {}

    def client(target):
        if target not in clients:
            # TLS (and the key, from $RAGD_API_KEY) for the server under test; the fakes are plain TCP.
            ca = os.environ.get("RAGD_CONFORMANCE_TLS_CA") if target == "main" else None
            make = rc.RagdClient if mode_name == "sync" else rc.AsyncRagdClient
            clients[target] = make(host, ports[target], tls_ca=ca)
        return clients[target]

    async def call(fn, *args, **kw):
        r = fn(*args, **kw)
        return await r if asyncio.iscoroutine(r) else r

    async def run():
        for s in steps:
            out = {"step": s[1]}
            try:
                if s[0] == "index":
                    r = await call(client("main").index, docs, collection)
                    out.update(status="OK", documents=r.documents, chunks=r.chunks)
                elif s[0] in ("query", "stream"):
                    _, name, target, coll, deadline, mode, top_k, filt, text = s
                    args = dict(top_k=None if top_k == "-" else int(top_k), filter=parse_filter(filt),
                                mode=None if mode == "-" else mode, timeout=int(deadline) / 1000)
                    c = client(target)
                    coll = collection if coll == "-" else coll
                    if s[0] == "query":
                        r = await call(c.query, text, coll, **args)
                        out.update(status="OK", ids=[x.chunk_id for x in r.sources], scores=[x.score for x in r.sources], answer=r.answer)
                    else:
                        ids, tokens, done = [], [], False
                        if mode_name == "sync":
                            events = list(c.stream(text, coll, **args))
                        else:
                            events = [e async for e in c.stream(text, coll, **args)]
                        for e in events:
                            which = e.WhichOneof("event")
                            if which == "sources":
                                ids = [x.chunk_id for x in e.sources.sources]
                            elif which == "token":
                                tokens.append(e.token)
                            elif which == "done":
                                done = True
                        out.update(status="OK", ids=ids, answer="".join(tokens), tokens=len(tokens) > 1, done=done)
                elif s[0] == "stats":
                    r = await call(client("main").stats, collection)
                    out.update(status="OK", documents=r.collections[0].documents, chunks=r.collections[0].chunks)
                elif s[0] == "delete":
                    r = await call(client("main").delete, s[2].split(","), collection)
                    out.update(status="OK", deleted=r.deleted, not_found=list(r.not_found))
            except rc.RagdError as e:
                out["status"] = status(e)
            print(json.dumps(out), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
