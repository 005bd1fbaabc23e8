"""The S3 endpoint stops during a lake write (`marketpipe run`, cold rows to s3:// on moto).

The test owns a `ThreadedMotoServer` on a fixed port, stops it once the first partitions have
landed, and starts a new one on the same port. Moto keeps its buckets in-process, so the lake the
new server serves is exactly what the old one had accepted: that is what we inspect for torn
partitions. `AWS_MAX_ATTEMPTS=1` stops botocore from re-trying a dead endpoint for ~10 s per call
(the task's own retries are what is under test).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid

import pandas as pd
import pytest
import s3fs

from tests.reliability.conftest import (
    all_bars,
    assert_no_duplicate_keys,
    assert_one_clean_line,
    free_port,
    open_current_stores,
)

pytestmark = pytest.mark.needs_service  # its own moto S3 server

N_SYMBOLS = 16
BUCKET = f"mp-s3-faults-{uuid.uuid4().hex[:8]}"  # moto buckets outlive a server


class Moto:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request lines on stderr
        self._cls = ThreadedMotoServer
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None

    def start(self) -> None:
        self.server = self._cls(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def fs(self) -> s3fs.S3FileSystem:
        return s3fs.S3FileSystem(client_kwargs={"endpoint_url": self.url}, skip_instance_cache=True)


@pytest.fixture
def moto():
    m = Moto()
    m.start()
    try:
        yield m
    finally:
        m.stop()


def _symbols() -> list[str]:
    return [f"S{i:03d}" for i in range(N_SYMBOLS)]


def _write_replay(path) -> tuple[int, dict[str, int]]:
    from marketpipe.calendar import sessions

    # XNYS sessions, not business days: holiday bars are quarantined `not_a_session` now
    days = sessions("2023-01-02", "2023-12-29").tz_localize("UTC")
    rows = []
    for sym in _symbols():
        for d in days:
            rows.append([sym, "1d", d.strftime("%Y-%m-%dT%H:%M:%SZ"), 10, 11, 9, 10.5, 1000])
    rows[3][6] = -1  # one bad row: a negative close
    cols = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return len(rows), {s: len(days) - (1 if s == "S000" else 0) for s in _symbols()}


def _stop_after_first_files(moto: Moto, done: threading.Event, n: int = 2) -> None:
    fs = moto.fs()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            files = [f for f in fs.find(f"{BUCKET}/lake/bars") if f.endswith(".parquet")]
        except Exception:
            files = []
        fs.invalidate_cache()
        if len(files) >= n:
            moto.stop()
            done.set()
            return
        time.sleep(0.01)
    done.set()


def _run_args(replay) -> list[str]:
    return [
        "run",
        "--source",
        "replay",
        "--replay-path",
        str(replay),
        "--symbols",
        ",".join(_symbols()),
        "--start",
        "2023-01-01",
        "--end",
        "2023-12-31",
    ]


def _partition_counts(moto: Moto) -> dict[str, int]:
    """Rows per symbol in the committed Delta table (data files no commit names do not count)."""
    from deltalake import DeltaTable

    from marketpipe.storage.delta_io import delta_storage_options

    url = f"s3://{BUCKET}/lake"
    opts = delta_storage_options(url, {"client_kwargs": {"endpoint_url": moto.url}})
    try:
        dt = DeltaTable(f"{url}/bars", storage_options=opts)
    except Exception:  # no commit landed at all
        return {}
    df = dt.to_pyarrow_table(columns=["symbol", "ts"]).to_pandas()
    assert not df.duplicated().any()
    return df.groupby("symbol").size().to_dict()


@pytest.fixture
def s3_env(mp_env, moto, tmp_path):
    global BUCKET
    BUCKET = f"mp-s3-faults-{uuid.uuid4().hex[:8]}"
    moto.fs().mkdir(BUCKET)
    mp_env.setenv("MARKETPIPE_COLD_URL", f"s3://{BUCKET}/lake")
    mp_env.setenv("MARKETPIPE_S3_ENDPOINT_URL", moto.url)
    mp_env.setenv("AWS_MAX_ATTEMPTS", "1")
    replay = tmp_path / "bars.csv"
    rows_in, expected = _write_replay(replay)
    return replay, rows_in, expected


def _check_final(res, rows_in: int, expected: dict[str, int]) -> None:
    run_id = re.search(r"\(run ([0-9a-f-]+)\)", res.out).group(1)
    stores = open_current_stores()
    try:
        bars = all_bars(stores, _symbols())
        quarantined = stores.hot.count_quarantine(run_id=run_id)
    finally:
        stores.close()
    assert_no_duplicate_keys(bars)
    assert bars.groupby("symbol").size().to_dict() == expected
    assert len(bars) + quarantined == rows_in


def test_s3_down_mid_write_fails_clearly_without_torn_partition(cli, moto, s3_env):
    replay, rows_in, expected = s3_env
    stopped = threading.Event()
    threading.Thread(target=_stop_after_first_files, args=(moto, stopped), daemon=True).start()
    res = cli(*_run_args(replay))
    assert stopped.is_set()
    assert res.code == 1, res.out
    last = res.err.strip().splitlines()[-1]
    assert "Traceback" not in res.err
    assert_one_clean_line(last)
    assert "unreachable" in last and "cold lake s3://" in last, last

    moto.start()  # same port, same in-process buckets: what the dead server had accepted
    landed = _partition_counts(moto)
    assert len(landed) < N_SYMBOLS, landed  # the fault did hit mid-write (files, not commits)
    for sym, n in landed.items():  # every visible partition is whole
        assert n == expected[sym], (sym, n)
    stores = open_current_stores()
    try:
        job = stores.hot.recent_jobs(1)[0]
        assert_no_duplicate_keys(all_bars(stores, _symbols()))
    finally:
        stores.close()
    assert job["status"] == "failed" and "unreachable" in job["error"]

    again = cli(*_run_args(replay))  # a later run completes the lake
    assert again.code == 0, again.err[-2000:]
    _check_final(again, rows_in, expected)
    assert _partition_counts(moto) == expected


def test_s3_restarted_mid_write_is_retried(cli, moto, s3_env, mp_env):
    replay, rows_in, expected = s3_env
    mp_env.setenv("MARKETPIPE_RETRY_BACKOFF_S", "0.3")  # 0.3, 0.6, 1.2, … s between tries
    stopped = threading.Event()

    def stop_then_restart() -> None:
        _stop_after_first_files(moto, stopped)
        time.sleep(0.5)
        moto.start()

    threading.Thread(target=stop_then_restart, daemon=True).start()
    res = cli(*_run_args(replay))
    assert stopped.is_set()
    assert res.code == 0, res.err[-2000:]
    _check_final(res, rows_in, expected)
    assert _partition_counts(moto) == expected
