"""Reliability fixtures: the CLI run in-process against real stores, a Polygon-compatible server.

`cli(*args)` calls the console script's `main()` in this process (the Prefect test server is
already up, so a run takes about a second instead of a subprocess's start-up); subprocess runs
are used where a process must be killed or its whole output inspected.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.providers.conftest import FakeHTTPServer, Reply  # noqa: F401  (re-exported)

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
POLY_KEY = "pk_SENTINEL_7f3c9a1e5b"
EMPTY = {"results": [], "status": "OK", "count": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def mp_env(tmp_path, prefect_server, monkeypatch):
    """A clean MARKETPIPE_* environment on an embedded store in tmp_path, fast retries/limits."""
    for k in list(os.environ):
        if k.startswith("MARKETPIPE_") or k == "POLYGON_API_KEY":
            monkeypatch.delenv(k)
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETPIPE_POLYGON_RATE_LIMIT", "50/1s")
    monkeypatch.setenv("MARKETPIPE_RETRY_BACKOFF_S", "0.05")
    monkeypatch.setenv("POLYGON_API_KEY", POLY_KEY)
    from marketpipe import ratelimit

    ratelimit._REGISTRY.clear()  # a fresh limiter per test (the rate is read at first use)
    yield monkeypatch
    ratelimit._REGISTRY.clear()


@pytest.fixture
def cli(mp_env, capsys):
    """Run `marketpipe ARGS…` in-process; returns CliResult(code, stdout, stderr)."""
    from cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)

    return run


def cli_subprocess(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def open_current_stores():
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    return open_stores(load_settings())


def all_bars(stores, symbols, interval="1d") -> pd.DataFrame:
    from marketpipe.storage.read import read_bars

    return read_bars(stores, symbols, "1990-01-01", "2100-01-01", interval)


def assert_no_duplicate_keys(bars: pd.DataFrame) -> None:
    dup = bars.duplicated(["symbol", "interval", "ts"], keep=False)
    assert not dup.any(), bars[dup]


def assert_one_clean_line(err: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("marketpipe: error: "), err


# ---------------------------------------------------------------- Polygon payloads
def poly_path(sym: str, start: str, end: str, mult: int = 1, span: str = "day") -> str:
    return f"/v2/aggs/ticker/{sym}/range/{mult}/{span}/{start}/{end}"


def day_ms(day: str) -> int:
    """Polygon's daily `t`: midnight America/New_York, in Unix ms."""
    return int(pd.Timestamp(day, tz="America/New_York").timestamp() * 1000)


def agg(day: str, o=100.0, h=101.0, low=99.0, c=100.5, v=1000.0) -> dict:
    return {"t": day_ms(day), "o": o, "h": h, "l": low, "c": c, "v": v, "vw": 100.2, "n": 10}


def serve_reference(server: FakeHTTPServer, syms=("AAPL",)) -> None:
    """Empty splits/dividends (the pipeline asks for them) and known tickers."""
    server.add_json("/v3/reference/splits", EMPTY)
    server.add_json("/v3/reference/dividends", EMPTY)
    for s in syms:
        server.add_json(f"/v3/reference/tickers/{s}", {"status": "OK", "results": {"ticker": s}})


def json_text(obj) -> str:
    return json.dumps(obj)


class Drop(Reply):
    """Close the connection without answering (a reset / timed-out request, as the client sees it)."""

    drop = True


class FaultyHTTPServer(FakeHTTPServer):
    """`FakeHTTPServer` whose queues may also hold `Drop()`."""

    def _handle(self, req) -> None:

        key = self.key_for(req.path)
        with self._lock:
            queue = self.routes.get(key)
            head = queue[0] if queue else None
            if getattr(head, "drop", False):
                self.seen.append(_seen(req.path))
                if len(queue) > 1:
                    queue.pop(0)
                req.close_connection = True
                req.connection.shutdown(socket.SHUT_RDWR)
                return
        super()._handle(req)


def _seen(path: str):
    import time

    from tests.providers.conftest import Seen

    return Seen(time.monotonic(), path, {})


@pytest.fixture
def poly(mp_env):
    server = FaultyHTTPServer()
    server.subst["{key}"] = POLY_KEY
    mp_env.setenv("MARKETPIPE_POLYGON_BASE_URL", server.url)
    try:
        yield server
    finally:
        server.close()
