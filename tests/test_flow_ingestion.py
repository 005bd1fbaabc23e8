"""The foundation slice end to end under a real Prefect server: synthetic → pandera → router →
PostgreSQL (hot) + S3 on a moto server (cold). Run twice: identical counts (idempotent)."""

from datetime import timedelta

import pandas as pd
import pytest

from marketpipe.calendar import expected_bar_starts
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from marketpipe.storage.read import read_bars


@pytest.fixture
def pg_s3_env(monkeypatch, pg_url, s3_bucket, moto_server, tmp_path):
    cold_url, _ = s3_bucket
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", pg_url)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", cold_url)
    monkeypatch.setenv("MARKETPIPE_S3_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("MARKETPIPE_HOT_DAYS", "30")
    return load_settings()


def _tier_counts(settings, symbols, interval="1d"):
    stores = open_stores(settings)
    try:
        hot = stores.hot.count_bars(symbols=symbols, interval=interval)
        cold = len(stores.cold.read_bars(symbols, interval))
        jobs = stores.hot.recent_jobs(10)
        return hot, cold, jobs
    finally:
        stores.close()


def test_pipeline_ingestion_postgres_s3_idempotent(prefect_server, pg_s3_env):
    from flows.pipeline import pipeline

    settings = pg_s3_env
    today = pd.Timestamp.now(tz="UTC").date()
    start = today - timedelta(days=60)
    symbols = ["AAA", "BBB"]

    first = pipeline(stages=["ingestion"], symbols=symbols, start=start, end=today)["ingestion"]
    totals = first["totals"]
    assert totals["fetched"] == totals["hot"] + totals["cold"] + totals["quarantined"]
    assert totals["hot"] > 0 and totals["cold"] > 0
    hot1, cold1, _ = _tier_counts(settings, symbols)
    assert (hot1, cold1) == (totals["hot"], totals["cold"])

    # exactly one row per XNYS session per symbol across the two tiers
    expected = expected_bar_starts("1d", start, today, now=pd.Timestamp.now(tz="UTC"))
    stores = open_stores(settings)
    try:
        both = read_bars(stores, symbols, start, today + timedelta(days=1), "1d")
    finally:
        stores.close()
    for sym in symbols:
        got = both.loc[both["symbol"] == sym, "ts"]
        assert got.is_unique
        assert list(got) == list(expected)
    cutoff = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=30)
    assert totals["hot"] == 2 * int((expected >= cutoff).sum())

    second = pipeline(stages=["ingestion"], symbols=symbols, start=start, end=today)["ingestion"]
    assert second["totals"] == totals
    hot2, cold2, jobs = _tier_counts(settings, symbols)
    assert (hot2, cold2) == (hot1, cold1)
    done = [j for j in jobs if j["job"] == "ingestion"]
    assert len(done) == 2 and {j["status"] for j in done} == {"success"}
