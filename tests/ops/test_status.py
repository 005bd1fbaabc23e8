"""`marketpipe status`: freshness against the last closed session, exit codes for cron.

Needs the merged tree (SqlHotStore, DeltaLake, marketpipe.calendar).
"""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from marketpipe.bars import conform_bars
from marketpipe.status import freshness, json_safe, last_runs, non_session_reason


def _daily(symbol: str, days: list[date]) -> pd.DataFrame:
    n = len(days)
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": [symbol] * n,
                "interval": ["1d"] * n,
                "ts": [pd.Timestamp(d, tz="UTC") for d in days],
                "open": [10.0] * n,
                "high": [11.0] * n,
                "low": [9.0] * n,
                "close": [10.5] * n,
                "volume": [1000.0] * n,
                "source": ["synthetic"] * n,
            }
        )
    )


@pytest.fixture
def env_stores(tmp_path, monkeypatch, sqlite_url):
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", sqlite_url)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    stores = open_stores(load_settings())
    yield stores
    stores.close()


def _run_cli(*args: str) -> tuple[int, str]:
    import contextlib
    import io

    from cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["status", *args])
    return code, buf.getvalue()


def _recent_sessions(n: int) -> list[date]:
    from marketpipe.calendar import last_closed_session, sessions

    last = last_closed_session(pd.Timestamp.now(tz="UTC"))
    got = sessions(pd.Timestamp(last) - pd.Timedelta(days=3 * n), pd.Timestamp(last))
    return [d.date() for d in got[-n:]]


def test_non_session_reason():
    assert non_session_reason(date(2024, 7, 3)) is None  # Wednesday session
    assert "not an XNYS session" in non_session_reason(date(2024, 7, 4))  # Independence Day
    assert non_session_reason(date(2024, 7, 6)) is not None  # Saturday
    # 17:30 New York on a Friday is still that Friday (22:30 UTC)
    assert non_session_reason(pd.Timestamp("2024-07-05 21:30", tz="UTC")) is None
    # 17:30 New York on 2024-12-25 (a holiday) → skip
    assert non_session_reason(pd.Timestamp("2024-12-25 22:30", tz="UTC")) is not None


def test_freshness_rules():
    expected = date(2024, 7, 5)
    last = {
        ("AAPL", "1d"): pd.Timestamp("2024-07-05", tz="UTC"),
        ("MSFT", "1d"): pd.Timestamp("2024-07-02", tz="UTC"),
        ("AAPL", "1m"): pd.Timestamp("2024-07-05 19:59", tz="UTC"),
    }
    rows = {r["symbol"]: r for r in freshness(last, expected, ["AAPL", "MSFT", "SPY"])}
    assert rows["AAPL"]["stale"] is False and rows["AAPL"]["sessions_behind"] == 0
    assert rows["MSFT"]["stale"] is True and rows["MSFT"]["sessions_behind"] == 2  # 3rd, 5th
    assert rows["SPY"]["stale"] is True and rows["SPY"]["last_bar"] is None
    intraday = freshness(last, expected, None, "1m")
    assert intraday[0]["stale"] is None
    json.dumps(rows)


def test_last_runs_keeps_newest_per_job():
    jobs = [
        {"job": "ingestion", "status": "failed", "error": "Boom: x\ntrace", "counts": {}},
        {"job": "processing", "status": "success", "counts": {"rows": 3}},
        {"job": "ingestion", "status": "success", "counts": {}},
    ]
    runs = {r["job"]: r for r in last_runs(jobs)}
    assert runs["ingestion"]["status"] == "failed" and runs["ingestion"]["error"] == "Boom: x"
    assert runs["processing"]["counts"] == {"rows": 3}


def test_json_safe_values():
    import numpy as np

    got = json_safe({"a": np.int64(3), "b": float("nan"), "c": pd.Timestamp("2024-01-02")})
    assert got == {"a": 3, "b": None, "c": "2024-01-02T00:00:00+00:00"}


def test_status_exit_codes_fresh_then_stale(env_stores):
    days = _recent_sessions(5)
    env_stores.hot.upsert_bars(_daily("AAPL", days))
    env_stores.hot.upsert_bars(_daily("MSFT", days))
    job = env_stores.hot.start_job("ingestion", {"symbols": ["AAPL", "MSFT"]}, flow_run_id="x")
    env_stores.hot.finish_job(job, "success", {"fetched": 10})

    code, out = _run_cli("--json")
    status = json.loads(out)
    assert code == 0, out
    assert status["stale"] is False
    assert status["rows"]["hot"]["1d"] == 10
    assert status["last_runs"][0]["job"] == "ingestion"
    assert status["last_runs"][0]["status"] == "success"
    assert {f["symbol"] for f in status["freshness"]} == {"AAPL", "MSFT"}

    code, out = _run_cli()
    assert code == 0 and "fresh" in out

    # an old series makes the whole status stale (exit 1), and a requested symbol without data too
    old = [pd.Timestamp(d).date() for d in pd.bdate_range("2024-01-02", periods=3)]
    env_stores.cold.write_bars(_daily("SPY", old))
    code, out = _run_cli("--json")
    status = json.loads(out)
    assert code == 1
    assert status["stale_symbols"] == ["SPY"]
    assert status["rows"]["cold"]["1d"] == 3
    spy = next(f for f in status["freshness"] if f["symbol"] == "SPY")
    assert spy["last_bar"].startswith(str(old[-1])) and spy["sessions_behind"] > 100

    code, out = _run_cli("--symbols", "AAPL,QQQ")
    assert code == 1 and "QQQ" in out and "STALE" in out


def test_status_on_empty_store_with_symbols_is_stale(env_stores):
    code, out = _run_cli("--json", "--symbols", "AAPL")
    assert code == 1
    assert json.loads(out)["freshness"][0]["last_bar"] is None
