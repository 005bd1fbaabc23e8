"""`marketpipe tier` SIGKILLed at seeded random points, then re-run: every row once, right tier.

(SIGKILL mid-backfill is covered in tests/history by the historical helper's tests.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from tests.reliability.conftest import ROOT, all_bars, assert_no_duplicate_keys

N_SYMBOLS = 15
HOT_DAYS = 30


def _seed(data_dir) -> tuple[int, int]:
    """Old daily bars in 2022 and 2023 (two partitions per symbol) plus recent ones, all hot."""
    old = pd.bdate_range("2022-10-03", "2023-03-31", tz="UTC")
    recent = pd.bdate_range(end=pd.Timestamp.now(tz="UTC").normalize(), periods=5, tz="UTC")
    frames = []
    for i in range(N_SYMBOLS):
        days = old.append(recent)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"T{i:03d}",
                    "interval": "1d",
                    "ts": days,
                    "open": 10.0,
                    "high": 11.0,
                    "low": 9.0,
                    "close": 10.5,
                    "volume": 100.0,
                    "source": "seed",
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    stores = open_stores(load_settings(data_dir=data_dir, hot_days=HOT_DAYS))
    try:
        stores.hot.upsert_bars(df)
    finally:
        stores.close()
    return len(df), N_SYMBOLS * len(recent)


def _tier_process(data_dir) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env.update(
        MARKETPIPE_DATA_DIR=str(data_dir), MARKETPIPE_HOT_DAYS=str(HOT_DAYS), PYTHONPATH=str(ROOT)
    )
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", "tier"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lake_files(data_dir) -> int:
    return len(list((data_dir / "lake" / "bars").rglob("*.parquet")))


def _check_every_row_once(data_dir, total: int) -> tuple[int, int]:
    stores = open_stores(load_settings(data_dir=data_dir, hot_days=HOT_DAYS))
    try:
        syms = [f"T{i:03d}" for i in range(N_SYMBOLS)]
        bars = all_bars(stores, syms)
        assert_no_duplicate_keys(bars)
        assert len(bars) == total
        hot = stores.hot.read_bars(syms, "1d", None, None)
        cold = stores.cold.read_bars(syms, "1d", None, None)
        return len(hot), len(cold)
    finally:
        stores.close()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_mid_tier_then_rerun_finishes_exactly(tmp_path, seed):
    data = tmp_path / "data"
    total, recent = _seed(data)
    # kill once a seeded number of lake partitions has landed (of 2 per symbol): a point defined by
    # progress, not wall time, so a faster or slower machine still kills mid-run
    partitions = random.Random(seed).randint(1, 2 * N_SYMBOLS - 2)
    proc = _tier_process(data)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if _lake_files(data) >= partitions:
            break
        time.sleep(0.001)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    _check_every_row_once(data, total)  # after the kill: nothing lost, nothing doubled

    again = _tier_process(data)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    hot, cold = _check_every_row_once(data, total)
    assert hot == recent and cold == total - recent  # right tier
    # a third run has nothing left to move
    third = _tier_process(data)
    out3, err3 = third.communicate(timeout=120)
    assert third.returncode == 0 and "tiered 0 rows" in out3, (out3, err3)
    assert killed, f"seed {seed}: tier finished before {partitions} partitions (no fault injected)"
