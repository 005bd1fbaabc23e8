"""Provider test fixtures: a loopback HTTP server that serves recorded-shape payloads, and helpers.

`FakeHTTPServer` routes by path (plus `cursor` query value when present). Each route holds a queue
of responses (the last one repeats). Every request is recorded with its arrival time, path+query
and headers so tests can check pacing and that no secret leaked into a URL.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
POLYGON_KEY = "pk_TEST_SECRET_0123456789"


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Seen:
    at: float
    path: str
    headers: dict[str, str]


class FakeHTTPServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.subst: dict[str, str] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer._handle(self)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.subst["{base}"] = self.url
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @staticmethod
    def key_for(raw_path: str) -> str:
        parsed = urlparse(raw_path)
        cursor = parse_qs(parsed.query).get("cursor")
        return parsed.path + (f"?cursor={cursor[0]}" if cursor else "")

    def add(self, path: str, *replies: Reply) -> None:
        self.routes.setdefault(path, []).extend(replies)

    def add_json(self, path: str, body: dict | str, status: int = 200, headers: dict | None = None) -> None:
        self.add(path, Reply(status=status, body=body, headers=headers or {}))

    def add_file(self, path: str, filename: str) -> None:
        self.add(path, Reply(body=(DATA / filename).read_text()))

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        now = time.monotonic()
        key = self.key_for(req.path)
        with self._lock:
            self.seen.append(Seen(now, req.path, dict(req.headers.items())))
            queue = self.routes.get(key)
            reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Reply(404, {"status": "NOT_FOUND"})
        body = reply.body
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            for k, v in self.subst.items():
                body = body.replace(k, v)
            body = body.encode()
        req.send_response(reply.status)
        req.send_header("Content-Type", reply.content_type)
        req.send_header("Content-Length", str(len(body)))
        for k, v in reply.headers.items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(body)

    def times(self, prefix: str = "") -> list[float]:
        return [s.at for s in self.seen if s.path.startswith(prefix)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    server = FakeHTTPServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def polygon_server(http_server):
    http_server.subst["{key}"] = POLYGON_KEY
    return http_server
