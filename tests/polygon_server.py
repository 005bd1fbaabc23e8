"""A local Polygon-compatible HTTP server on loopback, shared by provider and end-to-end tests.

`FakeHTTPServer` routes by path (plus `cursor` query value when present). Each route holds a queue
of responses (the last one repeats). Every request is recorded with its arrival time, path+query
and headers so tests can check pacing, request counts and that no secret leaked into a URL.
A `dynamic` callable (path+query -> Reply | None) answers what no static route holds.

`PolygonMarket` is such a callable: a deterministic market coherent with the XNYS calendar (one
daily aggregate per session, nothing on holidays/weekends; intraday `minute`/`hour` aggregates of
any multiplier bucketed on the clock as Polygon does, 04:00-20:00 ET), splits and dividends, ticker lookups
(404 for unknown tickers) and one-shot fault injection (429 with Retry-After, 5xx).
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd

DATA = Path(__file__).resolve().parent / "data"
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
    status: int = 0


class FakeHTTPServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.subst: dict[str, str] = {}
        self.dynamic: Callable[[str], Reply | None] | None = None
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
            seen = Seen(now, req.path, dict(req.headers.items()))
            self.seen.append(seen)
            queue = self.routes.get(key)
            reply = None
            if queue:
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
            elif self.dynamic is not None:
                reply = self.dynamic(req.path)
            if reply is None:
                reply = Reply(404, {"status": "NOT_FOUND"})
            seen.status = reply.status
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


# ---------------------------------------------------------------- a coherent Polygon market
def _base_price(symbol: str) -> float:
    return 50.0 + zlib.crc32(symbol.encode()) % 200


def daily_bar(symbol: str, session: pd.Timestamp, i: int) -> dict:
    """Polygon's daily aggregate for `session` (t = the session date's midnight in New York)."""
    p = round(_base_price(symbol) + (i % 97) * 0.25, 2)
    t = pd.Timestamp(session.date(), tz="America/New_York")
    return {
        "t": int(t.timestamp() * 1000),
        "o": p,
        "h": round(p + 1.5, 2),
        "l": round(p - 1.0, 2),
        "c": round(p + 0.5, 2),
        "v": 1_000_000 + i,
        "vw": round(p + 0.2, 4),
        "n": 5000 + i,
    }


def intraday_bars(symbol: str, session: pd.Timestamp, i: int, minutes: int) -> list[dict]:
    """Polygon's intraday aggregates of one session as Polygon buckets them: on the clock
    (multiples of `minutes` since the epoch), extended hours 04:00-20:00 ET included."""
    day = pd.Timestamp(session.date(), tz="America/New_York")
    starts = pd.date_range(day + pd.Timedelta(hours=4), day + pd.Timedelta(hours=20),
                           freq=f"{minutes}min", inclusive="left")  # fmt: skip
    base = _base_price(symbol) + (i % 97) * 0.25
    rows = []
    for k, t in enumerate(starts):
        p = round(base + (k % 13) * 0.01, 2)
        rows.append(
            {
                "t": int(t.timestamp() * 1000),
                "o": p,
                "h": round(p + 0.05, 2),
                "l": round(p - 0.04, 2),
                "c": round(p + 0.02, 2),
                "v": 1000 + k,
                "vw": round(p + 0.01, 4),
                "n": 10 + k,
            }
        )
    return rows


def _day(text: str) -> date:
    """Polygon's from/to: YYYY-MM-DD or a Unix ms timestamp (anything else is a 400)."""
    if text.isdigit():
        return pd.Timestamp(int(text), unit="ms", tz="America/New_York").date()
    if len(text) != 10:
        raise ValueError(text)
    return date.fromisoformat(text)


@dataclass
class AggRequest:
    symbol: str
    multiplier: int
    timespan: str
    start: str
    end: str
    status: int
    path: str


class PolygonMarket:
    """Deterministic daily aggregates for `symbols` on every XNYS session in [first, last].

    `last` defaults to the last closed session, so a "complete" store has one bar per expected
    session. `splits`/`dividends`: {symbol: [(date, value)]}. `fail(path_prefix, *replies)` makes
    the next requests whose path starts with the prefix get those replies first (then normal).
    """

    def __init__(
        self,
        symbols,
        first: date = date(2015, 1, 2),
        last: date | None = None,
        splits: dict | None = None,
        dividends: dict | None = None,
    ):
        from marketpipe.calendar import last_closed_session, sessions

        self.symbols = set(symbols)
        self.first = first
        self.last = last or last_closed_session()
        self.sessions = sessions(first, self.last)
        self._daily: dict[str, list[dict]] = {}
        self.splits = splits or {}
        self.dividends = dividends or {}
        self.faults: list[tuple[str, Reply]] = []
        self._lock = threading.Lock()

    def fail(self, prefix: str, *replies: Reply) -> None:
        with self._lock:
            self.faults.extend((prefix, r) for r in replies)

    def bars(self, symbol: str, start: date | None = None, end: date | None = None) -> list[dict]:
        lo = pd.Timestamp(start or self.first)
        hi = pd.Timestamp(end or self.last)
        every = self._all_daily(symbol)
        a, b = self.sessions.searchsorted(lo), self.sessions.searchsorted(hi, side="right")
        return every[a:b]

    def _all_daily(self, symbol: str) -> list[dict]:
        """Every daily bar of `symbol`, built once per market (the benchmarks ask for 500 symbols
        × 2 years: rebuilding them per request cost this process ~20 ms of CPU, taken from the
        client under test)."""
        cached = self._daily.get(symbol)
        if cached is None:
            cached = [daily_bar(symbol, s, i) for i, s in enumerate(self.sessions)]
            self._daily[symbol] = cached
        return cached

    def intraday(self, symbol: str, minutes: int, lo_ms: int, hi_ms: int) -> list[dict]:
        """Clock-bucketed intraday aggregates with `lo_ms <= t <= hi_ms` (Polygon's from/to ms)."""
        lo = pd.Timestamp(lo_ms, unit="ms", tz="UTC")
        hi = pd.Timestamp(hi_ms, unit="ms", tz="UTC")
        rows = []
        for i, s in enumerate(self.sessions):
            if lo - pd.Timedelta(days=1) <= s.tz_localize("UTC") <= hi:
                rows += intraday_bars(symbol, s, i, minutes)
        return [r for r in rows if lo_ms <= r["t"] <= hi_ms]

    def __call__(self, raw: str) -> Reply | None:
        parsed = urlparse(raw)
        path, q = parsed.path, {k: v[0] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            for n, (prefix, reply) in enumerate(self.faults):
                if path.startswith(prefix):
                    del self.faults[n]
                    return reply
        parts = path.strip("/").split("/")
        if parts[:3] == ["v2", "aggs", "ticker"] and len(parts) == 9:
            sym, mult, span, lo, hi = parts[3], parts[5], parts[6], parts[7], parts[8]
            minutes = {"minute": 1, "hour": 60}.get(span)
            if (mult, span) != ("1", "day") and not (minutes and mult.isdigit()):
                return Reply(400, {"status": "ERROR", "error": f"unknown timespan {span}"})
            try:
                if minutes:
                    rows = self.intraday(sym, int(mult) * minutes, int(lo), int(hi))
                else:
                    rows = self.bars(sym, _day(lo), _day(hi))
            except ValueError:
                return Reply(400, {"status": "ERROR", "error": f"bad from/to {lo}/{hi}"})
            if sym not in self.symbols:
                rows = []
            body = {"ticker": sym, "status": "OK", "adjusted": False, "resultsCount": len(rows)}
            if rows:
                body["results"] = rows
            return Reply(body=body)
        if parts[:3] == ["v3", "reference", "tickers"] and len(parts) == 4:
            if parts[3] in self.symbols:
                return Reply(body={"status": "OK", "results": {"ticker": parts[3], "active": True}})
            return Reply(404, {"status": "NOT_FOUND", "message": "Ticker not found."})
        if path == "/v3/reference/splits":
            sym = q.get("ticker", "")
            rows = [
                {"ticker": sym, "execution_date": d, "split_from": 1, "split_to": v}
                for d, v in self.splits.get(sym, [])
                if q.get("execution_date.gte", "0000") <= d <= q.get("execution_date.lte", "9999")
            ]
            return Reply(body={"status": "OK", "results": rows})
        if path == "/v3/reference/dividends":
            sym = q.get("ticker", "")
            rows = [
                {"ticker": sym, "ex_dividend_date": d, "cash_amount": v}
                for d, v in self.dividends.get(sym, [])
                if q.get("ex_dividend_date.gte", "0000")
                <= d
                <= q.get("ex_dividend_date.lte", "9999")
            ]
            return Reply(body={"status": "OK", "results": rows})
        return None


def agg_requests(server: FakeHTTPServer) -> list[AggRequest]:
    """Every aggregates request the server saw, parsed: symbol, span, from, to, status."""
    out = []
    for s in server.seen:
        parts = urlparse(s.path).path.strip("/").split("/")
        if parts[:3] == ["v2", "aggs", "ticker"] and len(parts) == 9:
            out.append(
                AggRequest(parts[3], int(parts[5]), parts[6], parts[7], parts[8], s.status, s.path)
            )
    return out


def serve_market(market: PolygonMarket) -> FakeHTTPServer:
    server = FakeHTTPServer()
    server.subst["{key}"] = POLYGON_KEY
    server.dynamic = market
    return server
