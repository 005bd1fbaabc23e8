"""`bars.session` (issue 15): the exchange session date as a date-typed column in the hot store,
on SQLite and PostgreSQL: written by every writer, returned by reads, backfilled by migration 0002,
and right where `ts::date` is wrong (a New York-timezone SQL session)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command

from marketpipe.bars import SESSION_DTYPE, conform_bars
from marketpipe.calendar import session_dates
from marketpipe.storage.hot import SqlHotStore
from marketpipe.storage.hot_migrate import alembic_config

# a daily bar (00:00 UTC of its session), a regular-hours bar, and a post-market minute whose
# UTC date is the next day (2024-01-02 19:30 ET = 2024-01-03 00:30 UTC)
ROWS = [
    ("AAPL", "1d", "2024-01-02 00:00:00"),
    ("AAPL", "1m", "2024-01-02 14:30:00"),
    ("AAPL", "1m", "2024-01-03 00:30:00"),
    ("AAPL", "1s", "2024-07-01 13:30:01"),
]
EXPECTED = [dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.date(2024, 7, 1)]


def bars() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=["symbol", "interval", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return conform_bars(
        frame.assign(open=10.0, high=11.0, low=9.0, close=10.5, volume=100.0, source="test")
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hot.db"
    return request.getfixturevalue("pg_url")


def test_session_values_equal_the_calendars():
    frame = bars()
    assert str(frame["session"].dtype) == SESSION_DTYPE
    assert frame["session"].tolist() == EXPECTED
    for interval, grp in frame.groupby("interval"):
        assert grp["session"].tolist() == list(session_dates(grp["ts"], interval).astype(dt.date))


def test_every_write_stores_session_and_reads_return_it(url):
    store = SqlHotStore(url)
    try:
        store.upsert_bars(bars().iloc[:2])  # first write
        store.upsert_bars(bars())  # overlapping write (PostgreSQL: the staged merge path)
        with store.engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT interval, session FROM bars ORDER BY interval, ts")
            ).all()
            kind = sa.inspect(conn).get_columns("bars")
        assert {c["name"]: type(c["type"]).__name__ for c in kind}["session"] in ("DATE", "Date")
        by_interval = sorted(zip(bars()["interval"], EXPECTED, strict=True))
        assert [(i, pd.Timestamp(s).date()) for i, s in got] == by_interval
        for interval in ("1d", "1m", "1s"):
            frame = store.read_bars(["AAPL"], interval)
            assert "session" in frame.columns and str(frame["session"].dtype) == SESSION_DTYPE
        assert store.read_bars(["AAPL"], "1m")["session"].tolist() == EXPECTED[1:3]
    finally:
        store.dispose()


def test_day_level_sql_in_a_new_york_session_needs_no_time_zones(pg_url):
    """Issue 15 #6: in a New York-timezone session `ts::date` puts the 2024-01-02 daily bar on
    2024-01-01; `session` is the session date whatever the client's time zone."""
    store = SqlHotStore(pg_url)
    try:
        store.upsert_bars(bars())
        with store.engine.connect() as conn:
            conn.execute(sa.text("SET TIME ZONE 'America/New_York'"))
            row = conn.execute(
                sa.text("SELECT ts::date, session FROM bars WHERE interval = '1d'")
            ).one()
        assert row == (dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    finally:
        store.dispose()


def test_migration_0002_backfills_existing_rows(url):
    """A store created at 0001 with bars in it: upgrading adds `session` and fills every row."""
    engine = sa.create_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        cols = {c["name"] for c in sa.inspect(conn).get_columns("bars")}
        assert "session" not in cols
        for sym, interval, ts in ROWS:
            t = pd.Timestamp(ts, tz="UTC")
            value = t.value // 1000 if engine.dialect.name == "sqlite" else t.to_pydatetime()
            conn.execute(
                sa.text(
                    "INSERT INTO bars (symbol, interval, ts, open, high, low, close, volume, "
                    "source, ingested_at) VALUES (:s, :i, :t, 1, 1, 1, 1, 1, 'old', :t)"
                ),
                {"s": sym, "i": interval, "t": value},
            )
    engine.dispose()
    store = SqlHotStore(url)  # migrates to head
    try:
        with store.engine.connect() as conn:
            got = conn.execute(sa.text("SELECT interval, ts, session FROM bars")).all()
        assert len(got) == len(ROWS)
        by_key = {(i, str(t)): pd.Timestamp(s).date() for i, t, s in got}
        assert sorted(by_key.values()) == sorted(EXPECTED)
        assert store.read_bars(["AAPL"], "1d")["session"].tolist() == [dt.date(2024, 1, 2)]
    finally:
        store.dispose()
