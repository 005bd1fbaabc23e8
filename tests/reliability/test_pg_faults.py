"""PostgreSQL faults mid-write through `marketpipe run --source replay` into a real PostgreSQL.

A helper thread takes `LOCK TABLE bars IN SHARE MODE` (reads pass, INSERT/COPY wait), finds the
writer waiting on it in `pg_stat_activity`, checks that no row of the batch is visible, then either
`pg_terminate_backend`s the writer or restarts the whole server. The store task retries; the run
ends with every row exactly once and rows in = rows stored + rows quarantined.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from marketpipe.calendar import expected_bar_starts
from marketpipe.storage.hot import SqlHotStore
from tests.reliability.conftest import all_bars, assert_no_duplicate_keys, open_current_stores

SYMS = ("AAPL", "MSFT")
N_PER_SYMBOL = 1170  # every regular-hours minute of 2024-03-04..06 (3 x 390)
BAD_ROWS = 3  # high < low, negative volume, a zero price
PG_VERSION_DIR = Path("/etc/postgresql")


def _write_replay(path: Path) -> int:
    # session minutes only (the contract quarantines bars outside XNYS sessions: not_a_session)
    ts = expected_bar_starts("1m", "2024-03-04", "2024-03-06")
    assert len(ts) == N_PER_SYMBOL
    rows = []
    for sym in SYMS:
        for i, t in enumerate(ts):
            o = 100 + (i % 7) * 0.1
            rows.append(
                [sym, "1m", t.strftime("%Y-%m-%dT%H:%M:%SZ"), o, o + 1, o - 1, o + 0.5, 10 + i]
            )
    rows[5][4], rows[5][5] = 90.0, 95.0  # high < low
    rows[10][7] = -5  # negative volume
    rows[20][3] = 0  # zero open
    cols = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
    pd.DataFrame(rows, columns=cols).to_csv(path, index=False)
    return len(rows)


def _libpq(sa_url: str) -> str:
    return sa_url.replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_ctl(action: str) -> subprocess.CompletedProcess:
    version = sorted(p.name for p in PG_VERSION_DIR.iterdir())[0]
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wait_pg_up(admin_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(admin_url, connect_timeout=2) as conn:
                conn.execute("select 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def pg_back_up(pg_admin_url):
    """Whatever happens in the test, PostgreSQL is running afterwards."""
    yield
    try:
        _wait_pg_up(pg_admin_url, timeout=5)
    except psycopg.OperationalError:
        _pg_ctl("start")
        _wait_pg_up(pg_admin_url)


class Saboteur(threading.Thread):
    """Blocks writes to `bars`, waits for the writer to queue on the lock, then strikes once."""

    def __init__(self, db_url: str, admin_url: str, action: str):
        super().__init__(daemon=True)
        self.db_url, self.admin_url, self.action = db_url, admin_url, action
        self.dbname = db_url.rsplit("/", 1)[1]
        self.visible_while_blocked: int | None = None
        self.visible_after_strike: int | None = None
        self.blocked_query: str = ""
        self.error: BaseException | None = None
        self.locked = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.locked.set()

    def _count(self) -> int:
        with psycopg.connect(self.db_url, connect_timeout=5) as c:
            return c.execute("select count(*) from bars").fetchone()[0]

    def _run(self) -> None:
        lock = psycopg.connect(self.db_url)
        lock.execute("LOCK TABLE bars IN SHARE MODE")
        self.locked.set()
        admin = psycopg.connect(self.admin_url, autocommit=True)
        deadline = time.monotonic() + 60
        pid = None
        while pid is None:
            row = admin.execute(
                "select pid, query from pg_stat_activity where datname = %s "
                "and wait_event_type = 'Lock' and pid <> %s",
                (self.dbname, lock.info.backend_pid),
            ).fetchone()
            if row:
                pid, self.blocked_query = row
            elif time.monotonic() > deadline:
                raise TimeoutError("the writer never reached the bars write")
            else:
                time.sleep(0.005)
        self.visible_while_blocked = self._count()
        if self.action == "terminate":
            admin.execute("select pg_terminate_backend(%s)", (pid,))
            self.visible_after_strike = self._count()
            lock.rollback()
            lock.close()
        else:
            admin.close()
            res = _pg_ctl("restart")
            assert res.returncode == 0, res.stderr
            _wait_pg_up(self.admin_url)
            self.visible_after_strike = self._count()
            lock.close()
        admin.close()


def _seed_overlap(pg_url: str) -> int:
    """One stored bar inside the batch's span, so the writer takes the staged-merge path."""
    store = SqlHotStore(pg_url)
    try:
        bar = pd.DataFrame(
            [
                {
                    "symbol": "AAPL",
                    "interval": "1m",
                    "ts": pd.Timestamp("2024-03-04 14:30", tz="UTC"),
                    "open": 1.0,
                    "high": 2.0,
                    "low": 0.5,
                    "close": 1.5,
                    "volume": 1.0,
                    "source": "seed",
                }
            ]
        )
        store.upsert_bars(bar)
        return 1
    finally:
        store.dispose()


@pytest.mark.parametrize(
    ("action", "path"),
    [
        ("terminate", "append"),
        ("terminate", "upsert"),
        # restarting the server drops every connection: run it alone (`make test` runs `serial`
        # tests after the parallel ones)
        pytest.param("restart", "append", marks=pytest.mark.serial),
    ],
)
def test_pg_fault_mid_write_is_retried_without_partial_batch(
    cli, mp_env, tmp_path, pg_url, pg_admin_url, pg_back_up, action, path
):
    mp_env.setenv("MARKETPIPE_HOT_URL", pg_url)
    mp_env.setenv("MARKETPIPE_HOT_DAYS", "36500")  # every row stays hot
    if action == "restart":  # 0.3+0.6+1.2+2.4+4.8 s of retries outlast a restart
        mp_env.setenv("MARKETPIPE_RETRY_BACKOFF_S", "0.3")
    replay = tmp_path / "bars.csv"
    rows_in = _write_replay(replay)
    SqlHotStore(pg_url).dispose()  # migrate, so the saboteur can lock `bars` before the run
    seeded = _seed_overlap(pg_url) if path == "upsert" else 0

    saboteur = Saboteur(_libpq(pg_url), pg_admin_url, action)
    saboteur.start()
    assert saboteur.locked.wait(30)
    assert saboteur.error is None, saboteur.error
    res = cli(
        "run",
        "--source",
        "replay",
        "--replay-path",
        str(replay),
        "--symbols",
        ",".join(SYMS),
        "--interval",
        "1m",
        "--start",
        "2024-03-04",
        "--end",
        "2024-03-06",
    )
    saboteur.join(60)
    assert saboteur.error is None, saboteur.error
    assert res.code == 0, res.err[-2000:]

    # no partial batch: nothing of it visible while blocked and right after the fault
    assert saboteur.visible_while_blocked == seeded
    good = rows_in - BAD_ROWS
    if action == "terminate":
        assert saboteur.visible_after_strike == seeded
    else:  # the retry may already have committed once the server is back: all or nothing
        assert saboteur.visible_after_strike in (seeded, good)
    stores = open_current_stores()
    try:
        bars = all_bars(stores, list(SYMS), "1m")
        quarantined = stores.hot.count_quarantine(list(SYMS))
        reasons = sorted(stores.hot.read_quarantine(list(SYMS))["reason"])
        job = stores.hot.recent_jobs(1)[0]
    finally:
        stores.close()
    assert_no_duplicate_keys(bars)
    assert quarantined == BAD_ROWS, reasons  # a retried store never quarantines twice
    assert len(bars) + quarantined == rows_in
    assert job["status"] == "success"
    assert (bars["source"] == "replay").all()  # the seeded bar was replaced by the batch
