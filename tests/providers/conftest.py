"""Provider test fixtures: a loopback HTTP server that serves recorded-shape payloads, and helpers.

`FakeHTTPServer` routes by path (plus `cursor` query value when present). Each route holds a queue
of responses (the last one repeats). Every request is recorded with its arrival time, path+query
and headers so tests can check pacing and that no secret leaked into a URL.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlparse

import pytest

from tests.polygon_server import DATA, POLYGON_KEY, FakeHTTPServer, Reply, Seen  # noqa: F401  (re-exported)


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
