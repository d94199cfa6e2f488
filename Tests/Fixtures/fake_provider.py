#!/usr/bin/env python3
"""A local stand-in for model providers, speaking the OpenAI-compatible and Ollama
wire formats. The model name picks the behaviour:
  ok         embeddings from hashed words (16 dims); chat streams a fixed cited answer with usage
  flaky      the first 2 requests get 429, then like ok
  broken     200 with a body that is not JSON (embeddings) or malformed SSE/NDJSON (chat)
  fail       500 on every request
  cut        chat: the stream ends at once, without [DONE] / done
  slow       waits 3 s before answering
  gate       waits until GET /_release (or 60 s), then like ok
GET /_stats returns request counts per path and model. Prints "port N" when ready."""
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = ["The ", "answer ", "is ", "in ", "the ", "sources ", "[1]."]
counts = {}
lock = threading.Lock()
gate = threading.Event()


def vector(text):
    v = [0.0] * 16
    for w in text.lower().split():
        h = int(hashlib.sha256(w.strip(".,?!:;").encode()).hexdigest(), 16)
        v[h % 16] += 1.0 if (h >> 8) % 2 else -1.0
    return v


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_release":
            gate.set()
            return self.send(200, "{}")
        with lock:
            self.send(200, json.dumps(counts))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        model = body.get("model", "ok")
        key = f"{self.path} {model}"
        with lock:
            counts[key] = counts.get(key, 0) + 1
            n = counts[key]
            if self.headers.get("Authorization"):
                counts["auth " + self.headers["Authorization"]] = 1
        if model == "slow":
            time.sleep(3)
        if model == "gate":
            gate.wait(60)
        if model == "fail" or (model == "flaky" and n <= 2):
            return self.send(500 if model == "fail" else 429, json.dumps({"error": "try later"}))
        if self.path in ("/v1/embeddings", "/api/embed"):
            if model == "broken":
                return self.send(200, "this is not json")
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            if self.path == "/v1/embeddings":
                return self.send(200, json.dumps({"data": [{"index": i, "embedding": vector(t)} for i, t in enumerate(inputs)]}))
            return self.send(200, json.dumps({"embeddings": [vector(t) for t in inputs]}))
        if self.path in ("/rerank", "/v1/rerank"):
            # Cross-encoder stand-in: score = query words found in the passage, minus a length penalty.
            words = set(body["query"].lower().replace("?", "").split())
            passages = body["texts"] if self.path == "/rerank" else body["documents"]
            scores = [len(words & set(p.lower().replace(".", " ").split())) - len(p) / 10000 for p in passages]
            order = sorted(range(len(scores)), key=lambda i: -scores[i])
            if self.path == "/rerank":
                return self.send(200, json.dumps([{"index": i, "score": scores[i]} for i in order]))
            return self.send(200, json.dumps({"results": [{"index": i, "relevance_score": scores[i]} for i in order]}))
        if self.path in ("/v1/chat/completions", "/api/chat"):
            self.send_response(200)
            openai = self.path == "/v1/chat/completions"
            self.send_header("Content-Type", "text/event-stream" if openai else "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(s):
                data = s.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            if model == "cut":  # the stream ends without a word and without its final marker
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            prompt = json.dumps(body.get("messages", []))
            tokens = ANSWER
            if model == "judge":
                tokens = ["Here is my grade:\n```json\n", '{"accuracy": "4", "relevance": 5, ', '"completeness": 3, "reason": "close {enough}"}', "\n```"]
            for t in tokens:
                if model == "broken":
                    chunk("data: {oops\n\n" if openai else "{oops\n")
                    break
                if openai:
                    chunk("data: " + json.dumps({"choices": [{"delta": {"content": t}}]}) + "\n\n")
                else:
                    chunk(json.dumps({"message": {"role": "assistant", "content": t}, "done": False}) + "\n")
                time.sleep(0.01)
            if model != "broken":
                if openai:
                    chunk("data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(ANSWER)}}) + "\n\n")
                    chunk("data: [DONE]\n\n")
                else:
                    chunk(json.dumps({"done": True, "prompt_eval_count": len(prompt) // 4, "eval_count": len(ANSWER)}) + "\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        self.send(404, json.dumps({"error": "unknown path " + self.path}))


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
