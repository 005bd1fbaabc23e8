"""`completeness` is reusable outside the flows (e.g. `marketpipe status`): it reads hot ∪ cold."""

from __future__ import annotations

from datetime import date

import pandas as pd

from marketpipe.calendar import expected_bar_starts
from marketpipe.ingest_plan import incremental_start
from marketpipe.run_reports import completeness
from marketpipe.settings import Settings
from marketpipe.storage import open_stores
from tests.history.test_incremental_repair import _bars, _write_both_tiers


def test_completeness_reads_both_tiers_and_reports_freshness(tmp_path):
    stores = open_stores(Settings(data_dir=tmp_path / "d"))
    try:
        exp = expected_bar_starts("1d", date(2024, 7, 1), date(2024, 7, 31))
        _write_both_tiers(
            stores, _bars("AAPL", "1d", exp[:-2]), pd.Timestamp("2024-07-15", tz="UTC")
        )
        now = pd.Timestamp("2024-08-01 12:00", tz="UTC")
        (row,) = completeness(
            stores, None, ["AAPL"], date(2024, 7, 1), date(2024, 7, 31), "1d", now
        )
        assert (row["expected"], row["present"], row["missing"]) == (len(exp), len(exp) - 2, 2)
        assert row["last_bar"] == exp[-3].isoformat()
        assert row["last_closed_session"] == "2024-07-31" and row["fresh"] is False
        # incremental start: watermark 2024-07-26 (Fri) minus 3 sessions
        stores.hot.set_watermark("polygon", "AAPL", "1d", pd.Timestamp("2024-07-26", tz="UTC"))
        assert incremental_start(stores, "polygon", "AAPL", "1d", date(2024, 1, 1)) == date(
            2024, 7, 23
        )
        assert incremental_start(stores, "polygon", "MSFT", "1d", date(2024, 1, 1)) == date(
            2024, 1, 1
        )
    finally:
        stores.close()
