"""Contract tests of SqlHotStore, run against SQLite and a real PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES
from marketpipe.errors import ContractError, ServiceUnavailable, StoreError, is_retryable
from marketpipe.storage.hot import SqlHotStore
from marketpipe.storage.hot_migrate import head_revision
from tests.storage.frames import make_bars

UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


# ---------------------------------------------------------------- schema
def test_migrations_are_idempotent_and_recorded(hot_url):
    store = SqlHotStore(hot_url, migrate=False)
    try:
        assert store.schema_revision() is None
        assert store.migrate() is True
        assert store.schema_revision() == head_revision() == "0003"
        assert store.migrate() is False  # second run is a no-op
        again = SqlHotStore(hot_url)  # constructor migrates: still a no-op
        again.dispose()
        with store.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            tables = set(sa.inspect(conn).get_table_names())
        assert versions == [("0003",)]
        assert {
            "bars",
            "corporate_actions",
            "quarantine",
            "watermarks",
            "job_runs",
            "features",
            "quality",
            "backfill_chunks",
        } <= tables
    finally:
        store.dispose()


def test_concurrent_migrations_serialise(hot_url):
    errors: list[BaseException] = []
    stores: list[SqlHotStore] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        barrier.wait()
        try:
            stores.append(SqlHotStore(hot_url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert all(s.schema_revision() == "0003" for s in stores)
    for s in stores:
        s.dispose()


def test_unreachable_postgres_is_retryable_and_masks_password():
    with pytest.raises(ServiceUnavailable) as info:
        SqlHotStore("postgresql+psycopg://postgres:sekret@127.0.0.1:1/nope")
    assert "sekret" not in str(info.value)
    assert "***" in str(info.value)
    assert is_retryable(info.value)


# ---------------------------------------------------------------- bars
def test_upsert_twice_keeps_count_and_pg_paths(hot_store):
    bars = make_bars(symbols=("AAPL", "MSFT"), periods=50)
    assert hot_store.upsert_bars(bars) == 100
    if hot_store.dialect == "postgresql":
        assert hot_store.last_write_path == "append"
    assert hot_store.upsert_bars(bars) == 100
    assert hot_store.last_write_path == "upsert"
    assert hot_store.count_bars() == 100
    assert hot_store.count_bars("AAPL", "1m") == 50
    assert hot_store.count_bars(["AAPL", "MSFT"], "5m") == 0


def test_changed_values_win(hot_store):
    old = make_bars(periods=10, price=100.0)
    hot_store.upsert_bars(old)
    first_ingest = _ingested_at(hot_store)
    new = make_bars(start="2024-01-02 14:35", periods=10, price=200.0, source="replay")
    assert hot_store.upsert_bars(new) == 10
    assert hot_store.last_write_path == "upsert"  # half the keys overlap
    got = hot_store.read_bars("AAPL", "1m")
    assert len(got) == 15
    by_ts = got.set_index("ts")
    assert by_ts.loc[ts("2024-01-02 14:34"), "open"] == 104.0  # untouched
    assert by_ts.loc[ts("2024-01-02 14:35"), "open"] == 200.0  # replaced
    assert by_ts.loc[ts("2024-01-02 14:35"), "source"] == "replay"
    assert _ingested_at(hot_store) > first_ingest


def test_identical_rewrite_leaves_rows_untouched(hot_store):
    bars = make_bars(periods=5)
    hot_store.upsert_bars(bars)
    before = _ingested_at(hot_store)
    assert hot_store.upsert_bars(bars) == 5
    assert _ingested_at(hot_store) == before
    changed = bars.assign(vwap=np.nan)  # null-safe comparison: NaN/NULL vs value is a change
    hot_store.upsert_bars(changed)
    assert hot_store.read_bars("AAPL", "1m")["vwap"].isna().all()
    assert _ingested_at(hot_store) > before


def test_disjoint_append_takes_fast_path_on_postgres(hot_store):
    hot_store.upsert_bars(make_bars(periods=10))
    later = make_bars(start="2024-01-02 14:40", periods=10)  # after the stored range
    other = make_bars(symbols=("MSFT",), periods=10)  # same range, other symbol
    hot_store.upsert_bars(pd.concat([later, other], ignore_index=True))
    if hot_store.dialect == "postgresql":
        assert hot_store.last_write_path == "append"
    assert hot_store.count_bars() == 30


def test_append_race_falls_back_to_merge_on_postgres(pg_url, monkeypatch):
    """If another writer adds keys between the overlap check and COPY, the merge path runs."""
    from marketpipe.storage.pg_bars_copy import PgBulkBars

    store = SqlHotStore(pg_url)
    try:
        store.upsert_bars(make_bars(periods=5, price=100.0))
        monkeypatch.setattr(PgBulkBars, "_overlaps", staticmethod(lambda conn, df: False))
        assert store.upsert_bars(make_bars(periods=8, price=300.0)) == 8
        assert store.last_write_path == "upsert"
        got = store.read_bars("AAPL", "1m")
        assert got["open"].tolist() == [300.0 + i for i in range(8)]
    finally:
        store.dispose()


def test_duplicate_keys_in_one_batch_keep_the_last(hot_store):
    first = make_bars(periods=3, price=1.0)
    second = make_bars(periods=3, price=2.0)
    assert hot_store.upsert_bars(pd.concat([first, second], ignore_index=True)) == 3
    assert hot_store.read_bars("AAPL", "1m")["open"].tolist() == [2.0, 3.0, 4.0]


def test_read_ranges_order_and_dtypes(hot_store):
    bars = make_bars(symbols=("MSFT", "AAPL"), periods=10)
    bars.loc[2, "trades"] = pd.NA
    bars.loc[3, "vwap"] = np.nan
    hot_store.upsert_bars(bars.iloc[::-1])
    got = hot_store.read_bars(
        ["MSFT", "AAPL"], "1m", ts("2024-01-02 14:32"), ts("2024-01-02 14:36")
    )
    assert list(got.columns) == list(BAR_COLUMNS)
    assert {c: str(got[c].dtype) for c in got.columns} == BAR_DTYPES
    assert str(got["ts"].dtype) == "datetime64[us, UTC]"
    assert got["symbol"].tolist() == ["AAPL"] * 4 + ["MSFT"] * 4
    assert got["ts"].iloc[0] == ts("2024-01-02 14:32")  # start inclusive
    assert got["ts"].iloc[3] == ts("2024-01-02 14:35")  # end exclusive
    msft = got[got["symbol"] == "MSFT"].set_index("ts")
    assert pd.isna(msft.loc[ts("2024-01-02 14:32"), "trades"])
    assert pd.isna(msft.loc[ts("2024-01-02 14:33"), "vwap"])
    expected = bars[(bars["symbol"] == "AAPL")].iloc[2:6].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.iloc[:4].reset_index(drop=True), expected)
    # open-ended ranges and a non-UTC bound
    assert len(hot_store.read_bars("AAPL", "1m", start=ts("2024-01-02 14:38"))) == 2
    ny_end = pd.Timestamp("2024-01-02 09:32", tz="America/New_York")
    assert len(hot_store.read_bars("AAPL", "1m", end=ny_end)) == 2
    assert hot_store.read_bars("NOPE", "1m").empty


def test_read_orders_symbols_by_code_point(hot_store):
    symbols = ("brk.b", "BRK.A", "BRKA", "A")  # a locale collation would interleave these
    hot_store.upsert_bars(make_bars(symbols=symbols, periods=2))
    got = hot_store.read_bars(list(symbols), "1m")
    assert list(pd.unique(got["symbol"])) == sorted(symbols)
    assert got["ts"].is_monotonic_increasing is False  # two rows per symbol, ts restarts
    assert got.groupby("symbol")["ts"].apply(lambda s: s.is_monotonic_increasing).all()


def test_delete_keys_and_stats(hot_store):
    hot_store.upsert_bars(make_bars(symbols=("AAPL", "MSFT"), periods=10))
    deleted = hot_store.delete_bars("AAPL", "1m", ts("2024-01-02 14:30"), ts("2024-01-02 14:33"))
    assert deleted == 3
    keys = hot_store.bar_keys("AAPL", "1m", ts("2024-01-02 14:30"), ts("2024-01-02 14:35"))
    assert list(keys) == list(pd.date_range("2024-01-02 14:33", periods=2, freq="min", tz=UTC))
    assert str(keys.dtype) == "datetime64[us, UTC]"
    stats = hot_store.stats()
    assert stats["symbol"].tolist() == ["AAPL", "MSFT"]
    assert stats["rows"].tolist() == [7, 10]
    assert stats["min_ts"].tolist() == [ts("2024-01-02 14:33"), ts("2024-01-02 14:30")]
    assert stats["max_ts"].tolist() == [ts("2024-01-02 14:39")] * 2
    assert str(stats["min_ts"].dtype) == "datetime64[us, UTC]"


def test_failed_batch_leaves_nothing_visible(hot_store):
    hot_store.upsert_bars(make_bars(periods=5, price=100.0))
    overlapping = make_bars(periods=10, price=500.0)
    overlapping.loc[9, "open"] = np.nan  # NOT NULL violation in the last row
    with pytest.raises(StoreError):
        hot_store.upsert_bars(overlapping)
    fresh = make_bars(symbols=("MSFT",), periods=10)
    fresh.loc[9, "close"] = np.nan  # would take the append path on PostgreSQL
    with pytest.raises(StoreError):
        hot_store.upsert_bars(fresh)
    got = hot_store.read_bars(["AAPL", "MSFT"], "1m")
    assert len(got) == 5
    assert got["open"].tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]


def test_failure_mid_transaction_rolls_back_everything(hot_store):
    """A trigger aborts on one row after the others were written in the same statement."""
    _install_boom_trigger(hot_store)
    hot_store.upsert_bars(make_bars(periods=3))
    batch = pd.concat(
        [make_bars(periods=6, price=900.0), make_bars(symbols=("BOOM",), periods=1)],
        ignore_index=True,
    )
    with pytest.raises(StoreError, match="boom"):
        hot_store.upsert_bars(batch)
    assert hot_store.count_bars() == 3
    assert hot_store.read_bars("AAPL", "1m")["open"].tolist() == [100.0, 101.0, 102.0]
    fresh = pd.concat(
        [make_bars(symbols=("MSFT",), periods=6), make_bars(symbols=("BOOM",), periods=1)],
        ignore_index=True,
    )
    with pytest.raises(StoreError, match="boom"):
        hot_store.upsert_bars(fresh)  # append path on PostgreSQL
    assert hot_store.count_bars() == 3


def test_missing_required_column_is_a_contract_error(hot_store):
    with pytest.raises(ContractError, match="close"):
        hot_store.upsert_bars(make_bars().drop(columns=["close"]))
    with pytest.raises(ContractError, match="dtypes"):
        hot_store.upsert_bars(make_bars().astype({"open": object}).assign(open="cheap"))
    assert hot_store.upsert_bars(make_bars().iloc[0:0]) == 0
    assert hot_store.count_bars() == 0


def test_unsafe_symbol_in_reads_is_a_bound_value(hot_store):
    hot_store.upsert_bars(make_bars())
    assert hot_store.read_bars("A';DROP TABLE bars;--", "1m").empty
    assert hot_store.count_bars("x' OR '1'='1") == 0
    assert hot_store.count_bars() == 5


# ---------------------------------------------------------------- quarantine
def test_quarantine_round_trip_with_unsafe_symbol(hot_store):
    hot_store.upsert_bars(make_bars())
    evil = "A;DROP TABLE bars"
    rejected = pd.DataFrame(
        {
            "symbol": [evil, "MSFT"],
            "interval": ["1m", "1m"],
            "ts": ["2024-01-02T14:30:00Z", "not a time"],
            "source": ["synthetic", "replay"],
            "reason": ["bad_symbol", "bad_timestamp"],
            "detail": ["symbol fails the gate", None],
            "payload": [{"symbol": evil, "open": 1.0}, '{"raw": "x"}'],
            "run_id": ["run-1", "run-1"],
        }
    )
    assert hot_store.write_quarantine(rejected) == 2
    assert hot_store.count_quarantine() == 2
    assert hot_store.count_quarantine(evil) == 1
    assert hot_store.count_quarantine(run_id="run-1", interval="1m") == 2
    assert hot_store.count_quarantine(run_id="other") == 0
    got = hot_store.read_quarantine(symbols=evil)
    assert got.loc[0, "symbol"] == evil
    assert got.loc[0, "ts"] == ts("2024-01-02 14:30")
    assert got.loc[0, "payload"] == '{"open": 1.0, "symbol": "A;DROP TABLE bars"}'
    assert got.loc[0, "reason"] == "bad_symbol"
    assert str(got["quarantined_at"].dtype) == "datetime64[us, UTC]"
    other = hot_store.read_quarantine(symbols="MSFT")
    assert pd.isna(other.loc[0, "ts"]) and other.loc[0, "payload"] == '{"raw": "x"}'
    assert hot_store.count_bars() == 5  # bars table intact


# ---------------------------------------------------------------- watermarks
def test_watermarks_never_move_backwards(hot_store):
    assert hot_store.get_watermark("synthetic", "AAPL", "1m") is None
    hot_store.set_watermark("synthetic", "AAPL", "1m", ts("2024-01-02 15:00"))
    assert hot_store.set_watermark("synthetic", "AAPL", "1m", ts("2024-01-02 14:00")) == ts(
        "2024-01-02 15:00"
    )
    assert hot_store.get_watermark("synthetic", "AAPL", "1m") == ts("2024-01-02 15:00")
    hot_store.set_watermark("synthetic", "AAPL", "1m", "2024-01-03T00:00:00Z")
    assert hot_store.get_watermark("synthetic", "AAPL", "1m") == ts("2024-01-03")
    assert hot_store.get_watermark("synthetic", "AAPL", "1d") is None
    assert hot_store.get_watermark("replay", "AAPL", "1m") is None
    with pytest.raises(ContractError):
        hot_store.set_watermark("synthetic", "AAPL", "1m", "soon")


# ---------------------------------------------------------------- jobs and chunks
def test_job_lifecycle(hot_store):
    job_id = hot_store.start_job("ingestion", {"symbols": ["AAPL"], "interval": "1m"}, "fr-1")
    hot_store.update_job(job_id, chunks_total=4, chunks_done=1, rows_so_far=100)
    job = hot_store.get_job(job_id)
    assert job["status"] == "running" and job["chunks_total"] == 4 and job["rows_so_far"] == 100
    assert job["finished_at"] is None
    hot_store.finish_job(job_id, "success", {"bars": 400, "quarantined": 2})
    second = hot_store.start_job("backfill", {})
    hot_store.finish_job(second, "failed", error="provider down")
    jobs = hot_store.recent_jobs(10)
    assert [j["id"] for j in jobs] == [second, job_id]
    assert jobs[1]["status"] == "success" and jobs[1]["counts"] == {"bars": 400, "quarantined": 2}
    assert jobs[1]["params"] == {"interval": "1m", "symbols": ["AAPL"]}
    assert jobs[1]["flow_run_id"] == "fr-1"
    assert jobs[1]["finished_at"] >= jobs[1]["started_at"]
    assert jobs[0]["error"] == "provider down"
    assert len(hot_store.recent_jobs(1)) == 1
    with pytest.raises(ValueError):
        hot_store.finish_job(job_id, "running")


def test_backfill_chunks(hot_store):
    assert hot_store.done_chunks("bf-1") == set()
    hot_store.mark_chunk_done("bf-1", "AAPL/2024-01", rows=100, requests=2)
    hot_store.mark_chunk_done("bf-1", "AAPL/2024-02", rows=90, requests=1)
    hot_store.mark_chunk_done("bf-1", "AAPL/2024-02", rows=95, requests=1)  # re-run
    hot_store.mark_chunk_done("bf-2", "MSFT/2024-01", rows=1, requests=1)
    assert hot_store.done_chunks("bf-1") == {"AAPL/2024-01", "AAPL/2024-02"}


# ---------------------------------------------------------------- corporate actions
def test_corporate_actions_round_trip(hot_store):
    actions = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", "MSFT"],
            "ex_date": [dt.date(2020, 8, 31), pd.Timestamp("2024-02-09"), "2024-02-14"],
            "kind": ["split", "dividend", "dividend"],
            "value": [4.0, 0.24, 0.75],
            "source": ["synthetic"] * 3,
        }
    )
    assert hot_store.upsert_corporate_actions(actions) == 3
    fixed = actions.iloc[[1]].assign(value=0.25)
    hot_store.upsert_corporate_actions(fixed)
    got = hot_store.read_corporate_actions("AAPL")
    assert got["ex_date"].tolist() == [dt.date(2020, 8, 31), dt.date(2024, 2, 9)]
    assert got["value"].tolist() == [4.0, 0.25]
    assert got["kind"].tolist() == ["split", "dividend"]
    assert len(hot_store.read_corporate_actions()) == 3
    with pytest.raises(ContractError):
        hot_store.upsert_corporate_actions(actions.drop(columns=["kind"]))


# ---------------------------------------------------------------- features and quality
def test_features_round_trip_and_partial_update(hot_store):
    bars = make_bars(periods=4)
    feats = bars[["symbol", "interval", "ts"]].assign(ret=[np.nan, 0.01, 0.02, -0.01], sma_20=1.5)
    assert hot_store.upsert_features(feats) == 4
    hot_store.upsert_features(bars[["symbol", "interval", "ts"]].iloc[:2].assign(rsi_14=55.0))
    got = hot_store.read_features("AAPL", "1m", start=ts("2024-01-02 14:31"))
    assert len(got) == 3
    assert got["ret"].tolist() == [0.01, 0.02, -0.01]
    assert got["sma_20"].tolist() == [1.5] * 3  # not clobbered by the partial update
    assert got["rsi_14"].iloc[0] == 55.0 and pd.isna(got["rsi_14"].iloc[1])
    assert str(got["ts"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(ContractError, match="bogus"):
        hot_store.upsert_features(feats.assign(bogus=1.0))


def test_quality_round_trip(hot_store):
    quality = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL"],
            "interval": ["1m", "1m"],
            "session": [dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
            "expected": [390, 390],
            "present": [390, 380],
            "missing": [0, 10],
            "quarantined": [0, 1],
            "outliers": [0, 2],
            "staleness_s": [12.0, 30.0],
            "score": [1.0, 0.97],
        }
    )
    assert hot_store.upsert_quality(quality) == 2
    hot_store.upsert_quality(quality.iloc[[1]].assign(present=390, missing=0, score=1.0))
    got = hot_store.read_quality("AAPL", "1m", start=dt.date(2024, 1, 3))
    assert got["session"].tolist() == [dt.date(2024, 1, 3)]
    assert got["score"].tolist() == [1.0] and got["missing"].tolist() == [0]
    assert len(hot_store.read_quality()) == 2


# ---------------------------------------------------------------- SQLite storage detail
def test_sqlite_stores_utc_epoch_microseconds(sqlite_url):
    store = SqlHotStore(sqlite_url)
    try:
        bars = make_bars(periods=1)
        bars["ts"] = bars["ts"].dt.tz_convert("America/New_York")  # same instant, other zone
        store.upsert_bars(bars)
        store.set_watermark("synthetic", "AAPL", "1m", ts("2024-01-02 14:30:00.000001"))
        with store.engine.connect() as conn:
            raw_ts = conn.execute(sa.text("SELECT ts FROM bars")).scalar_one()
            raw_wm = conn.execute(sa.text("SELECT last_ts FROM watermarks")).scalar_one()
        assert raw_ts == ts("2024-01-02 14:30").value // 1000 == 1_704_205_800_000_000
        assert raw_wm == raw_ts + 1
        assert store.read_bars("AAPL", "1m")["ts"].tolist() == [ts("2024-01-02 14:30")]
    finally:
        store.dispose()


# ---------------------------------------------------------------- helpers
def _ingested_at(store: SqlHotStore) -> pd.Timestamp:
    with store.engine.connect() as conn:
        value = conn.execute(sa.text("SELECT max(ingested_at) FROM bars")).scalar_one()
    if isinstance(value, int):  # SQLite: epoch microseconds
        return pd.Timestamp(value, unit="us", tz=UTC)
    return pd.Timestamp(value)


def _install_boom_trigger(store: SqlHotStore) -> None:
    """A real database trigger that aborts any write of symbol 'BOOM'."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER bars_boom BEFORE INSERT ON bars WHEN NEW.symbol = 'BOOM' "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION bars_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.symbol = 'BOOM' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER bars_boom BEFORE INSERT ON bars "
                "FOR EACH ROW EXECUTE FUNCTION bars_boom()"
            )


def test_two_sqlite_stores_on_one_file_writing_at_once_lose_nothing(tmp_path):
    """Two stores on one file, writing at once from two threads: every row lands once. (A bulk
    path through ADBC's SQLite driver lost 1,600 of these 4,000 rows without an error: it links
    its own SQLite copy, and two copies in one process break SQLite's file locking.)"""
    url = f"sqlite:///{tmp_path / 'hot.db'}"
    a, b = SqlHotStore(url), SqlHotStore(url)
    try:
        frames = {s: make_bars(symbols=(s,), periods=2000) for s in ("AAA", "BBB")}
        errors: list[BaseException] = []

        def write(store, sym):
            try:
                for i in range(10):
                    store.upsert_bars(frames[sym].iloc[i * 200 : (i + 1) * 200])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=x) for x in ((a, "AAA"), (b, "BBB"))]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert a.count_bars() == 4000
    finally:
        a.dispose()
        b.dispose()
