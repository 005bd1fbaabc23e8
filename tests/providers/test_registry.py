"""The provider registry: one record is all the pipeline needs to know a provider."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from marketpipe.backfill import request_profile
from marketpipe.errors import ConfigError
from marketpipe.processing.clean import DEFAULT_SOURCE_PRIORITY, dedupe_bars
from marketpipe.providers import (
    NETWORK_SOURCES,
    PROVIDER_NAMES,
    build_provider,
    fetch_from,
    source_names,
)
from marketpipe.providers.base import BarsQuery
from marketpipe.providers.registry import RECORDS, ProviderRecord
from marketpipe.settings import Settings


def test_the_four_providers_and_what_derives_from_their_records():
    assert PROVIDER_NAMES == ("synthetic", "replay", "yahoo", "polygon")
    assert NETWORK_SOURCES == ("polygon", "yahoo")
    assert DEFAULT_SOURCE_PRIORITY == ("polygon", "yahoo", "replay", "synthetic")
    s = Settings()
    assert s.rate_limit("polygon") == (5, 60.0) and s.rate_limit("yahoo") == (60, 60.0)
    assert Settings(polygon_rate_limit="100/s").rate_limit("polygon") == (100, 1.0)
    assert request_profile("polygon", "1d", s).max_bars_per_request == 50_000
    assert request_profile("replay", "1d").symbols_per_request == 50
    keyed = Settings(polygon_api_key="k")
    for name in ("synthetic", "yahoo", "polygon"):
        assert type(build_provider(name, keyed)).__name__.lower().startswith(name)
    with pytest.raises(ConfigError, match="use one of synthetic, replay, yahoo, polygon"):
        source_names("nope")


def test_a_new_provider_is_one_record(monkeypatch):
    """A record pointing at an adapter is enough: names, fetch, planning, rate, dedupe."""
    rec = ProviderRecord(
        "synthetic2",
        "marketpipe.providers.synthetic:SyntheticProvider",
        network=False,
        priority=5,
        default_rate_limit="7/min",
    )
    monkeypatch.setitem(RECORDS, rec.name, rec)
    assert source_names("synthetic2,synthetic") == ["synthetic2", "synthetic"]
    query = BarsQuery(("AAPL",), "1d", date(2024, 7, 1), date(2024, 7, 5))
    assert len(fetch_from("synthetic2", query).bars) == 4  # 2024-07-04 is a holiday
    assert request_profile("synthetic2", "1d").max_bars_per_request is None
    assert Settings().rate_limit("synthetic2") == (7, 60.0)
    bars = pd.DataFrame(
        {
            "symbol": "AAPL",
            "interval": "1d",
            "ts": pd.to_datetime(["2024-07-01"] * 2, utc=True),
            "source": ["polygon", "synthetic2"],
        }
    )
    kept, removed = dedupe_bars(bars)
    assert removed == 1 and kept["source"].tolist() == ["synthetic2"]
