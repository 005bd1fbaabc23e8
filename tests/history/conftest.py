"""End-to-end fixtures for history tests: the console script in a subprocess, a local Polygon
market on loopback, and stores (PostgreSQL or SQLite hot, local or moto-S3 cold) to inspect."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.polygon_server import POLYGON_KEY, PolygonMarket, serve_market

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]

# the market every history test trades in: 20 symbols, splits and dividends for two of them
SYMBOLS = [f"S{i:02d}" for i in range(18)] + ["AAPL", "MSFT"]
SPLITS = {"AAPL": [("2020-08-31", 4.0)], "S03": [("2025-06-02", 2.0)]}
DIVIDENDS = {
    "AAPL": [("2024-11-08", 0.25), ("2025-02-10", 0.25), ("2025-05-12", 0.26)],
    "MSFT": [("2025-02-20", 0.83), ("2025-05-15", 0.83)],
}


@pytest.fixture
def market():
    return PolygonMarket(SYMBOLS, splits=SPLITS, dividends=DIVIDENDS)


@pytest.fixture
def poly(market):
    server = serve_market(market)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def base_env(tmp_path, prefect_server, poly):
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env.update(
        MARKETPIPE_DATA_DIR=str(tmp_path / "data"),
        MARKETPIPE_POLYGON_BASE_URL=poly.url,
        MARKETPIPE_POLYGON_RATE_LIMIT="20/1s",
        MARKETPIPE_RETRY_BACKOFF_S="0.1",
        POLYGON_API_KEY=POLYGON_KEY,
        PREFECT_API_URL=PREFECT_API_URL.value(),
        PYTHONPATH=str(ROOT),
    )
    return env


def mp(env: dict, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def mp_popen(env: dict, *args: str, log: Path) -> subprocess.Popen:
    fh = open(log, "w")  # noqa: SIM115  (closed by the caller through the process)
    return subprocess.Popen([*CLI, *args], env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)


def stores_for(env: dict):
    """The stores the subprocess used (same settings, read from `env`)."""
    from marketpipe.settings import Settings
    from marketpipe.storage import open_stores

    keys = {
        k[len("MARKETPIPE_") :].lower(): v for k, v in env.items() if k.startswith("MARKETPIPE_")
    }
    return open_stores(Settings(**keys))


def all_rows(stores, symbols, start, end, interval="1d") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(hot rows, cold rows) read separately, so duplicates across tiers show."""
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)
    hot = stores.hot.read_bars(symbols, interval, lo, hi)
    cold = stores.cold.read_bars(symbols, interval, lo, hi)
    return hot, cold


def wait_for(cond, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def gaps_cli(monkeypatch, capsys):
    """`marketpipe gaps` through the console entry point in-process (no Prefect, no start-up
    cost) with the MARKETPIPE_* settings of `env`; returns (exit code, stdout)."""

    def run(env: dict, *args: str) -> tuple[int, str]:
        from cli.main import main

        for k in [k for k in os.environ if k.startswith("MARKETPIPE_")]:
            monkeypatch.delenv(k)
        for k, v in env.items():
            if k.startswith("MARKETPIPE_"):
                monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(["gaps", *args])
        return code, capsys.readouterr().out

    return run
