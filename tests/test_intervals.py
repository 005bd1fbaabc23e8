"""`1s` (what the real-time mode writes) is a first-class interval: `marketpipe read --interval 1s`
returns a real-time session's bars, and `gaps` / `validate` accept them (issue 15)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from marketpipe.bars import INTERVAL_OFFSETS, STORED_INTERVALS, SUB_MINUTE_INTERVALS
from marketpipe.calendar import expected_bar_starts
from marketpipe.realtime.session import RealtimeSession
from marketpipe.realtime.sink import HotStoreSink
from marketpipe.realtime.sources import SyntheticTickSource
from marketpipe.storage.hot import SqlHotStore

ROOT = Path(__file__).resolve().parents[1]
START = pd.Timestamp("2024-07-02 14:00:00", tz="UTC")  # inside the 2024-07-02 session


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}, **env},
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.fixture
def realtime_store(tmp_path):
    """A short synthetic real-time session (20 s of ticks, 1-second bars) into a SQLite hot store."""
    url = f"sqlite:///{tmp_path}/hot.db"
    store = SqlHotStore(url)
    source = SyntheticTickSource(["AAPL", "MSFT"], 100, seed=3, start=START, paced=False,
                                 limit=2_000)  # fmt: skip
    report = RealtimeSession(
        source, HotStoreSink(store), bar_window=timedelta(seconds=1),
        allowed_lateness=timedelta(0), flush_ms=50, reconcile=False,
    ).run()  # fmt: skip
    stored = store.read_bars(["AAPL"], "1s")
    store.dispose()
    assert report.ticks_aggregated == 2_000 and len(stored) == 20
    return {"MARKETPIPE_HOT_URL": url, "MARKETPIPE_COLD_URL": str(tmp_path / "lake")}, stored


def test_every_stored_interval_has_a_length_and_a_bar_schedule():
    assert "1s" in SUB_MINUTE_INTERVALS and set(SUB_MINUTE_INTERVALS) < set(STORED_INTERVALS)
    assert INTERVAL_OFFSETS["1s"] == pd.Timedelta(seconds=1)
    starts = expected_bar_starts("1s", "2024-07-02", "2024-07-02")
    assert len(starts) == 6.5 * 3600 and starts[0] == pd.Timestamp("2024-07-02 13:30", tz="UTC")


def test_read_interval_1s_returns_the_realtime_sessions_bars(realtime_store, tmp_path):
    env, stored = realtime_store
    proc = cli(env, "read", "AAPL", "--start", "2024-07-02", "--end", "2024-07-02", "--interval",
               "1s")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(io.StringIO(proc.stdout))
    assert len(got) == 20 and set(got["interval"]) == {"1s"}
    assert pd.to_datetime(got["ts"], utc=True).tolist() == stored["ts"].tolist()
    assert got["close"].tolist() == stored["close"].tolist()
    assert int(got["trades"].sum()) == int(stored["trades"].sum())

    # gaps accepts 1s: the 20 stored seconds are present, the rest of the session is missing
    gaps = cli(env, "gaps", "--symbols", "AAPL", "--start", "2024-07-02", "--end", "2024-07-02",
               "--interval", "1s")  # fmt: skip
    assert gaps.returncode == 1, gaps.stderr  # 1 = gaps listed (not 2 = bad input)
    assert f"AAPL: {23_400 - 20} missing in 2 range(s)" in gaps.stdout

    # validate accepts the 1s file read back
    path = tmp_path / "aapl_1s.csv"
    path.write_text(proc.stdout)
    checked = cli(env, "validate", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.rstrip().endswith("20 rows, 20 valid, 0 failing"), checked.stdout


def test_unknown_interval_is_still_one_clear_line(realtime_store):
    env, _ = realtime_store
    proc = cli(env, "read", "AAPL", "--start", "2024-07-02", "--end", "2024-07-02", "--interval",
               "7s")  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "'7s' is not one of" in proc.stderr and "1s" in proc.stderr, proc.stderr
