"""SIGTERM mid-session: everything received before the signal is committed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rt_support import assert_bars_equal, expected_bars

from marketpipe.realtime import SyntheticTickSource, ticks_frame

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


@pytest.mark.timeout(90)
def test_sigterm_flushes_everything_received(tmp_path):
    db, report_path = tmp_path / "bars.db", tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "rt_sigterm_session.py"), str(db), str(report_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "READY" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "READY" in line, proc.stderr.read()  # 2000 ticks committed: stop it now
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert rc == 0, proc.stderr.read()
    report = json.loads(report_path.read_text())
    assert report["ended_by"] == "stop"
    n = report["ticks_received"]
    assert n > 1000 and report["drops"] == 0 and report["late_ticks"] == 0
    assert report["ticks_aggregated"] == n

    with sqlite3.connect(db) as conn:
        stored = pd.read_sql("select * from bars", conn)
    stored["ts"] = pd.to_datetime(stored["ts"], utc=True).astype("datetime64[us, UTC]")
    assert int(stored["trades"].sum()) == n, "every received tick is in a committed bar"
    start = pd.Timestamp(report["start_ns"], unit="ns", tz="UTC")
    ticks = SyntheticTickSource(["AAPL", "MSFT"], 5_000, seed=5, start=start).take(n)
    assert_bars_equal(stored, expected_bars(ticks_frame(ticks), "1s", "1s", "synthetic"))


@pytest.mark.timeout(60)
def test_ctrl_c_flushes_then_reraises():
    """SIGINT reaches the main thread inside `run()` once a flush has committed (the progress
    hook runs on the main thread, so no timing decides where the interrupt lands)."""
    from datetime import timedelta

    from rt_support import MemorySink

    from marketpipe.realtime import RealtimeSession

    source = SyntheticTickSource(["AAPL"], 2_000, seed=8)
    sink = MemorySink()

    def interrupt_after_first_flush(report) -> None:
        if sink.flushes and not sent:
            sent.append(True)
            signal.raise_signal(signal.SIGINT)  # handled on the main thread, which is in run()

    sent: list[bool] = []
    session = RealtimeSession(
        source,
        sink,
        bar_window=timedelta(seconds=1),
        flush_ms=50,
        duration=30,
        on_progress=interrupt_after_first_flush,
    )
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's Ctrl-C
    try:
        with pytest.raises(KeyboardInterrupt):
            session.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    r = session.report
    assert sent and r.ended_by == "interrupt" and r.ticks_received > 0
    assert int(sink.bars_frame()["trades"].sum()) == r.ticks_received
