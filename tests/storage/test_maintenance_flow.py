"""The nightly `maintenance` flow tiers, compacts (Delta optimize) and vacuums the lake."""

from __future__ import annotations

import pandas as pd

from marketpipe.settings import load_settings
from marketpipe.storage import open_stores
from tests.storage.frames import make_bars


def test_maintenance_tiers_compacts_and_vacuums(tmp_path, monkeypatch, prefect_server):
    from flows.maintenance import maintenance

    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETPIPE_LAKE_VACUUM_RETENTION_HOURS", "0")
    stores = open_stores(load_settings())
    try:
        for day in range(2, 6):  # four lake commits → four small files in one partition
            stores.cold.write_bars(make_bars(start=f"2024-01-0{day} 14:30", periods=20))
        stores.hot.upsert_bars(make_bars(start="2024-01-08 14:30", periods=20))
    finally:
        stores.close()
    out = maintenance(gaps_lookback_days=5, interval="1m")
    assert out["tier"]["rows_moved"] == 20
    assert out["compact"]["files_before"] == 5 and out["compact"]["files_after"] == 1
    assert out["vacuum"]["files_removed"] >= 5 and out["vacuum"]["retention_hours"] == 0
    stores = open_stores(load_settings())
    try:
        got = stores.cold.read_bars(["AAPL"], "1m")
        assert len(got) == 100 and got["ts"].is_unique and stores.hot.count_bars() == 0
        assert [p.files for p in stores.cold.partitions()] == [1]
        assert got["ts"].min() == pd.Timestamp("2024-01-02 14:30", tz="UTC")
    finally:
        stores.close()
