"""A local websocket server speaking Polygon's stocks protocol, for tests (127.0.0.1, port 0).

Protocol: on connect send `[{"ev":"status","status":"connected",...}]`; expect
`{"action":"auth","params":KEY}` -> `auth_success` (or `auth_failed` and close); accept
`{"action":"subscribe","params":"T.AAPL,AM.AAPL"}`; then stream the known tick set as `T` event
arrays, each tick sent when the wall clock reaches its timestamp (a live feed), and an `AM`
minute aggregate once a minute's ticks are all sent.

`drop()` (or `drop_after_ticks`) aborts the connection (no close frame: the client sees an error
and must reconnect).
A reconnecting client resumes with the ticks *after* the reconnect instant: ticks during the
outage are never sent over the websocket (only the REST fake has them).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pandas as pd
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


class PolygonWsServer:
    def __init__(
        self,
        ticks: pd.DataFrame,
        api_key: str = "test-key",
        *,
        drop_after_subscribe: bool = False,
        drop_after_ticks: int | None = None,
    ):
        """`ticks`: columns symbol, ts (UTC, ms resolution), price, size; sorted by ts."""
        self.api_key = api_key
        self.drop_after_subscribe = drop_after_subscribe
        self.drop_after_ticks = (
            drop_after_ticks  # abort the first connection once this many are sent
        )
        self.dropped_at_ms: int | None = None  # timestamp of the last tick sent before that drop
        df = ticks.sort_values("ts", kind="stable").reset_index(drop=True)
        self._ts_ms = (df["ts"].astype("datetime64[ms, UTC]").astype("int64")).tolist()
        self._events = [
            {
                "ev": "T",
                "sym": s,
                "i": str(i),
                "x": 4,
                "p": p,
                "s": int(z),
                "c": [0],
                "t": t,
                "q": i,
                "z": 3,
            }
            for i, (s, p, z, t) in enumerate(
                zip(df["symbol"], df["price"], df["size"], self._ts_ms, strict=True)
            )
        ]
        self._minute_aggs = _minute_aggs(df)
        self.connections = 0
        self.auth_failures = 0
        self.subscriptions: list[str] = []
        self.sent_ticks = 0
        self._subscribed_once = False
        self._live: set[ServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle
    @property
    def host(self) -> str:
        """What to pass as `PolygonTickSource(host=...)` (the client builds ws://HOST/stocks)."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> PolygonWsServer:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("polygon ws test server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> PolygonWsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def drop(self) -> None:
        """Abort every live connection now (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._abort_all)

    def _abort_all(self) -> None:
        for ws in list(self._live):
            ws.transport.abort()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    # ---------------------------------------------------------------- protocol
    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            await self._converse(ws)
        except ConnectionClosed:
            pass  # the client left (normal at session end, or after a drop)

    async def _converse(self, ws: ServerConnection) -> None:
        await ws.send(
            json.dumps(
                [{"ev": "status", "status": "connected", "message": "Connected Successfully"}]
            )
        )
        auth = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if auth.get("action") != "auth" or auth.get("params") != self.api_key:
            self.auth_failures += 1
            await ws.send(
                json.dumps(
                    [{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]
                )
            )
            await ws.close()
            return
        await ws.send(
            json.dumps([{"ev": "status", "status": "auth_success", "message": "authenticated"}])
        )
        sub = json.loads(await asyncio.wait_for(ws.recv(), 10))
        params = str(sub.get("params", ""))
        self.subscriptions.append(params)
        topics = {p.strip() for p in params.split(",") if p.strip()}
        await ws.send(
            json.dumps(
                [{"ev": "status", "status": "success", "message": f"subscribed to: {params}"}]
            )
        )
        if self.drop_after_subscribe:
            ws.transport.abort()
            return
        self._live.add(ws)
        try:
            await self._stream(ws, topics)
            await ws.wait_closed()
        finally:
            self._live.discard(ws)

    async def _stream(self, ws: ServerConnection, topics: set[str]) -> None:
        i = 0
        if self._subscribed_once:  # a reconnect: the outage's ticks are gone for the websocket
            now_ms = int(time.time() * 1000)
            while i < len(self._ts_ms) and self._ts_ms[i] <= now_ms:
                i += 1
        self._subscribed_once = True
        first_ms = self._ts_ms[i] if i < len(self._ts_ms) else 0
        pending_aggs = [a for a in self._minute_aggs if a["e"] > first_ms]
        while i < len(self._events):
            now_ms = int(time.time() * 1000)
            j = i
            while j < len(self._events) and self._ts_ms[j] <= now_ms:
                j += 1
            if j > i:
                batch = [e for e in self._events[i:j] if f"T.{e['sym']}" in topics]
                sent_upto = self._ts_ms[j - 1]
                done_aggs = [
                    a for a in pending_aggs if a["e"] <= sent_upto or j == len(self._events)
                ]
                pending_aggs = [a for a in pending_aggs if a not in done_aggs]
                batch += [a for a in done_aggs if f"AM.{a['sym']}" in topics]
                if batch:
                    await ws.send(json.dumps(batch))
                    self.sent_ticks += j - i
                i = j
                if self.drop_after_ticks is not None and self.dropped_at_ms is None:
                    if self.sent_ticks >= self.drop_after_ticks:
                        self.dropped_at_ms = sent_upto
                        ws.transport.abort()
                        return
            else:
                await asyncio.sleep(min(0.01, max(0.0, (self._ts_ms[i] - now_ms) / 1000)))


def _minute_aggs(df: pd.DataFrame) -> list[dict]:
    d = df.assign(m=df["ts"].dt.floor("1min"), pv=df["price"] * df["size"])
    out = []
    for (sym, m), g in d.groupby(["symbol", "m"], sort=True):
        start = int(pd.Timestamp(m).value // 1_000_000)
        out.append(
            {
                "ev": "AM",
                "sym": sym,
                "v": float(g["size"].sum()),
                "av": float(g["size"].sum()),
                "op": float(g["price"].iloc[0]),
                "vw": float(g["pv"].sum() / g["size"].sum()),
                "o": float(g["price"].iloc[0]),
                "c": float(g["price"].iloc[-1]),
                "h": float(g["price"].max()),
                "l": float(g["price"].min()),
                "a": 0.0,
                "z": 0,
                "s": start,
                "e": start + 60_000,
            }
        )
    return out
