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

    def add_json(
        self, path: str, body: dict | str, status: int = 200, headers: dict | None = None
    ) -> None:
        self.add(path, Reply(status=status, body=body, headers=headers or {}))

    def add_file(self, path: str, filename: str) -> None:
        self.add(path, Reply(body=(DATA / filename).read_text()))

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        now = time.monotonic()
        key = self.key_for(req.path)
        with self._lock:
            self.seen.append(Seen(now, req.path, dict(req.headers.items())))
            queue = self.routes.get(key)
            reply = (
                (queue.pop(0) if len(queue) > 1 else queue[0])
                if queue
                else Reply(404, {"status": "NOT_FOUND"})
            )
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


# ---------------------------------------------------------------- Yahoo (yfinance's own code, no network)
class FakeYahoo:
    """Serves Yahoo endpoints to yfinance through a `requests` transport adapter (no sockets).

    `charts[symbol]` is a queue of `(status, body, headers)` for price requests (last repeats);
    timezone probes (`range=1d`) get the first queued payload's meta. Every request is recorded.
    """

    def __init__(self) -> None:
        self.charts: dict[str, list[tuple[int, dict | str, dict]]] = {}
        self.seen: list[tuple[float, str, dict]] = []

    def add(
        self,
        symbol: str,
        filename_or_body: str | dict,
        status: int = 200,
        headers: dict | None = None,
    ) -> None:
        body = filename_or_body
        if isinstance(body, str) and body.endswith(".json"):
            body = json.loads((DATA / "yahoo" / body).read_text())
        self.charts.setdefault(symbol, []).append((status, body, headers or {}))

    def price_requests(self) -> list[dict]:
        return [
            p for _, url, p in self.seen if "/v8/finance/chart/" in url and p.get("range") != "1d"
        ]

    def respond(self, url: str, params: dict) -> tuple[int, bytes, dict]:
        self.seen.append((time.monotonic(), url, params))
        parsed = urlparse(url)
        if parsed.hostname == "fc.yahoo.com":
            return 404, b"", {"Set-Cookie": "A3=d=test; Domain=.yahoo.com; Path=/"}
        if parsed.path.endswith("/getcrumb"):
            return 200, b"test-crumb", {"Content-Type": "text/plain"}
        if "/v8/finance/chart/" in parsed.path:
            symbol = parsed.path.rsplit("/", 1)[-1]
            queue = self.charts.get(symbol) or [
                (404, json.loads((DATA / "yahoo/chart_not_found.json").read_text()), {})
            ]
            if params.get("range") == "1d":  # yfinance's timezone probe
                ok = [entry for entry in queue if entry[0] == 200]
                status, body, headers = ok[0] if ok else queue[0]
                if status != 200:
                    return (
                        status,
                        json.dumps(body).encode() if isinstance(body, dict) else body.encode(),
                        headers,
                    )
                meta_only = {
                    "chart": {
                        "result": [
                            {
                                "meta": body["chart"]["result"][0]["meta"],
                                "indicators": {"quote": [{}]},
                            }
                        ],
                        "error": None,
                    }
                }
                return 200, json.dumps(meta_only).encode(), {}
            status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
            return status, (json.dumps(body) if isinstance(body, dict) else body).encode(), headers
        return 404, b"not found", {}


def yahoo_session(fake: FakeYahoo):
    """A real `requests.Session` whose transport answers from `fake` (yfinance parses the bodies)."""
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    class Adapter(BaseAdapter):
        def send(self, request, **kwargs):
            parsed = urlparse(request.url)
            params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
            status, body, headers = fake.respond(request.url.split("?")[0], params)
            resp = requests.Response()
            resp.status_code = status
            resp._content = body
            resp.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
            resp.url = request.url
            resp.request = request
            resp.encoding = "utf-8"
            return resp

        def close(self):
            pass

    session = requests.Session()
    session.mount("https://", Adapter())
    session.mount("http://", Adapter())
    return session


@pytest.fixture
def fake_yahoo(tmp_path):
    from yfinance import cache as yf_cache
    from yfinance.data import YfData

    yf_cache.set_cache_location(str(tmp_path / "yf-cache"))
    YfData.cache_get.cache_clear()
    fake = FakeYahoo()
    yield fake
    YfData.cache_get.cache_clear()
