"""A fault-injecting HTTP/1.1 reverse proxy on loopback, for the flaky-network test.

It forwards requests to the real server and drops a fraction of them, in the
two ways a network loses a request:

- ``before``: the connection is closed after the request arrived and before it
  is forwarded (the server never saw it);
- ``after``: the request is forwarded and answered, then the connection is
  closed before the answer reaches the agent (the server did the work; the
  agent must retry an already-stored upload, which must succeed).

Drops are decided by a seeded random generator, so runs are repeatable.
"""

from __future__ import annotations

import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "host", "content-length"}


class FaultyProxy:
    """``with FaultyProxy(upstream, drop=0.2) as proxy: proxy.url``."""

    def __init__(self, upstream: str, drop: float, seed: int = 7) -> None:
        self.upstream = upstream
        self.drop = drop
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.forwarded = 0
        self.dropped = {"before": 0, "after": 0}
        self._client = httpx.Client(base_url=upstream, timeout=120)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _decide(self) -> str | None:
        with self._lock:
            roll = self._rng.random()
            if roll >= self.drop:
                self.forwarded += 1
                return None
            how = "before" if roll < self.drop / 2 else "after"
            self.dropped[how] += 1
            return how

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                return None

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                how = proxy._decide()
                if how == "before":
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_HEADERS}
                answer = proxy._client.request(self.command, self.path, content=body,
                                               headers=headers)
                if how == "after":
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
