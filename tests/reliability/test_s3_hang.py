"""An S3 endpoint that accepts connections and never answers (a black hole on loopback).

Before S3 timeouts and a retry budget were settings, one lake listing waited 408 s for botocore's
read timeout and its retries, and the store task retried five more times (~40 min to fail), with
nothing on the screen. Now each request waits at most the connect + read timeout, the store task
stops retrying once the budget is spent, says so, and the run fails with one line. pytest-timeout
only guards against the old behaviour hanging the suite; the assertions are on the outcome.
"""

from __future__ import annotations

import socket
import threading

import pandas as pd
import pytest

from tests.reliability.conftest import assert_one_clean_line


class BlackHole:
    """A TCP server on loopback that accepts every connection, reads, and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.conns: list[socket.socket] = []
        self.accepted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def _write_replay(path) -> int:
    days = pd.bdate_range("2023-03-01", "2023-03-31", tz="UTC")
    rows = [
        [s, "1d", d.strftime("%Y-%m-%d"), 10, 11, 9, 10.5, 1000] for s in ("AAPL",) for d in days
    ]
    cols = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return len(rows)


@pytest.mark.timeout(240)
def test_s3_that_never_answers_fails_the_run_within_the_budget(cli, mp_env, black_hole, tmp_path):
    mp_env.setenv("MARKETPIPE_COLD_URL", "s3://mp-black-hole/lake")
    mp_env.setenv("MARKETPIPE_S3_ENDPOINT_URL", black_hole.url)
    mp_env.setenv("MARKETPIPE_S3_CONNECT_TIMEOUT_S", "1")
    mp_env.setenv("MARKETPIPE_S3_READ_TIMEOUT_S", "1")
    mp_env.setenv("MARKETPIPE_STORE_RETRY_BUDGET_S", "2")
    replay = tmp_path / "AAPL.csv"
    _write_replay(replay)
    res = cli(
        "run",
        "--source",
        "replay",
        "--replay-path",
        str(replay),
        "--symbols",
        "AAPL",
        "--start",
        "2023-03-01",
        "--end",
        "2023-03-31",
    )
    assert black_hole.accepted.is_set()  # the lake was tried before anything started
    assert res.code == 1, res.out + res.err
    last = res.err.strip().splitlines()[-1]
    assert_one_clean_line(last)
    # the preflight check (issue 18) finds it first: bounded by the S3 timeouts, one line
    assert "cold lake s3://mp-black-hole/lake" in last and "reachable" in last, last
    assert "Timeout" in last or "timeout" in last, last


@pytest.mark.timeout(240)
def test_lake_write_to_a_black_hole_fails_within_the_budget(mp_env, black_hole):
    """The data path itself (past the preflight): a lake write fails with one error naming the
    endpoint and its timeouts, after the bounded per-request timeouts, never hanging."""
    from marketpipe.bars import conform_bars
    from marketpipe.errors import MarketpipeError
    from marketpipe.settings import load_settings
    from marketpipe.storage.delta_lake import DeltaLake

    mp_env.setenv("MARKETPIPE_COLD_URL", "s3://mp-black-hole/lake")
    mp_env.setenv("MARKETPIPE_S3_ENDPOINT_URL", black_hole.url)
    mp_env.setenv("MARKETPIPE_S3_CONNECT_TIMEOUT_S", "1")
    mp_env.setenv("MARKETPIPE_S3_READ_TIMEOUT_S", "1")
    mp_env.setenv("MARKETPIPE_STORE_RETRY_BUDGET_S", "2")
    st = load_settings()
    lake = DeltaLake(st.cold_url_resolved, st.storage_options, st.delta_storage_options())
    bars = conform_bars(
        pd.DataFrame(
            {"symbol": ["AAPL"], "interval": ["1d"], "ts": [pd.Timestamp("2023-03-01", tz="UTC")],
             "open": [10.0], "high": [11.0], "low": [9.0], "close": [10.5], "volume": [1000.0],
             "source": ["replay"]}
        )
    )  # fmt: skip
    with pytest.raises(MarketpipeError) as info:
        lake.write_bars(bars)
    assert black_hole.accepted.is_set()
    assert "mp-black-hole" in str(info.value), info.value
