"""Stores filled the way the pipeline fills them (hot tail + cold history, overlapping), on the
embedded pair (SQLite + local lake) and the server pair (PostgreSQL + S3 on moto)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketpipe.providers import get_provider
from marketpipe.providers.base import BarsQuery
from marketpipe.settings import Settings
from marketpipe.storage import open_stores

SYMBOLS = ("AAPL", "MSFT")
START, END = date(2024, 1, 2), date(2024, 3, 28)
SPLIT_DAY = date(2024, 2, 15)


def synthetic(interval: str = "1d", start=START, end=END) -> pd.DataFrame:
    result = get_provider("synthetic").fetch(BarsQuery(SYMBOLS, interval, start, end))
    return result.bars


def fill(settings: Settings) -> dict:
    """Cold: everything; hot: from mid-February on, with other closes (hot must win)."""
    bars = synthetic("1d")
    hourly = synthetic("1h", date(2024, 3, 1), date(2024, 3, 8))
    hot_part = bars.loc[bars["ts"] >= pd.Timestamp(SPLIT_DAY, tz="UTC")].copy()
    hot_part["close"] = (
        hot_part[["open", "high", "low"]]
        .mean(axis=1)
        .clip(lower=hot_part["low"], upper=hot_part["high"])
    )
    hot_part["source"] = "hotsrc"
    stores = open_stores(settings)
    try:
        stores.cold.write_bars(bars)
        stores.cold.write_bars(hourly)
        stores.hot.upsert_bars(hot_part)
        stores.hot.upsert_corporate_actions(
            pd.DataFrame(
                {
                    "symbol": ["AAPL", "MSFT"],
                    "ex_date": [date(2024, 2, 1), date(2024, 3, 1)],
                    "kind": ["split", "dividend"],
                    "value": [4.0, 0.5],
                    "source": ["test", "test"],
                }
            )
        )
    finally:
        stores.close()
    return {"bars": bars, "hot": hot_part, "hourly": hourly}


@pytest.fixture
def embedded(tmp_path) -> dict:
    """Overrides for an embedded store pair, filled."""
    ov = {"data_dir": str(tmp_path / "data")}
    return {"overrides": ov, **fill(Settings(**ov))}


@pytest.fixture
def server(pg_url, s3_bucket, moto_server) -> dict:
    cold_url, _ = s3_bucket
    ov = {"hot_url": pg_url, "cold_url": cold_url, "s3_endpoint_url": moto_server}
    return {"overrides": ov, **fill(Settings(**ov))}


@pytest.fixture(params=["embedded", "server"])
def store_pair(request) -> dict:
    return request.getfixturevalue(request.param)
