"""The adapter contract every source passes: synthetic, replay, yahoo, polygon.

* canonical columns and dtypes (`marketpipe.bars.BAR_DTYPES`), `ts` = UTC bar start
  (daily: session date at 00:00 UTC);
* the Bars contract holds on what the adapter returns (local OHLC envelope check, plus
  `marketpipe.contract.validate_bars` once that module is merged);
* a known symbol without bars → `FetchResult.empty_symbols`; an unknown one → `UnknownSymbolError`
  (synthetic invents bars for any valid symbol, so it has no unknown symbols);
* `is_retryable` is False for the unknown-symbol error.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pytest

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES, INTERVAL_OFFSETS
from marketpipe.errors import UnknownSymbolError, is_retryable
from marketpipe.providers import BarsProvider, BarsQuery, get_provider
from marketpipe.ratelimit import RateLimiter
from marketpipe.settings import Settings
from tests.providers.conftest import DATA, POLYGON_KEY, yahoo_session


@dataclass
class Case:
    provider: BarsProvider
    bars: BarsQuery
    empty: BarsQuery
    unknown: BarsQuery | None


def Q(symbol: str, interval: str, start: str, end: str) -> BarsQuery:  # noqa: N802
    return BarsQuery((symbol,), interval, date.fromisoformat(start), date.fromisoformat(end))


def synthetic_case(request) -> Case:
    prov = get_provider("synthetic", Settings())
    return Case(
        prov,
        Q("AAPL", "1d", "2024-01-02", "2024-01-12"),
        Q("AAPL", "1d", "2024-01-06", "2024-01-07"),
        None,
    )


def replay_case(request) -> Case:
    # a file with a symbol column (one-symbol files take their symbol from the file name / query)
    prov = get_provider("replay", Settings(), replay_path=DATA / "replay" / "multi_bad_row.csv")
    return Case(
        prov,
        Q("MSFT", "1d", "2024-01-01", "2024-01-31"),
        Q("AAPL", "1d", "2024-02-01", "2024-02-02"),
        Q("TSLA", "1d", "2024-01-01", "2024-01-31"),
    )


def yahoo_case(request) -> Case:
    fake = request.getfixturevalue("fake_yahoo")
    fake.add("AAPL", "chart_AAPL_1d_split_dividend.json")
    fake.add("MSFT", "chart_AAPL_1m_weekend.json")
    prov = get_provider(
        "yahoo",
        Settings(),
        session=yahoo_session(fake),
        limiter=RateLimiter(100, 1),
        today=lambda: date(2025, 2, 10),
    )
    return Case(
        prov,
        Q("AAPL", "1d", "2020-08-31", "2020-11-06"),
        Q("MSFT", "1m", "2025-02-01", "2025-02-02"),
        Q("NOPE", "1d", "2020-08-31", "2020-11-06"),
    )


def polygon_case(request) -> Case:
    server = request.getfixturevalue("polygon_server")
    server.add_file(
        "/v2/aggs/ticker/AAPL/range/1/day/2023-01-03/2023-01-09", "polygon/aggs_AAPL_1d_page1.json"
    )
    for page in (2, 3):
        server.add_file(
            f"/v2/aggs/ticker/AAPL/range/1/day/cursor/next?cursor=page{page}",
            f"polygon/aggs_AAPL_1d_page{page}.json",
        )
    for sym in ("AAPL", "ZZZZ"):
        server.add_file(
            f"/v2/aggs/ticker/{sym}/range/1/day/2023-01-07/2023-01-08", "polygon/aggs_empty.json"
        )
    server.add_file("/v3/reference/tickers/AAPL", "polygon/ticker_AAPL.json")
    settings = Settings(polygon_base_url=server.url)
    prov = get_provider("polygon", settings, api_key=POLYGON_KEY, limiter=RateLimiter(100, 1))
    return Case(
        prov,
        Q("AAPL", "1d", "2023-01-03", "2023-01-09"),
        Q("AAPL", "1d", "2023-01-07", "2023-01-08"),
        Q("ZZZZ", "1d", "2023-01-07", "2023-01-08"),
    )


BUILDERS: dict[str, Callable] = {
    "synthetic": synthetic_case,
    "replay": replay_case,
    "yahoo": yahoo_case,
    "polygon": polygon_case,
}


@pytest.fixture(params=list(BUILDERS))
def case(request) -> Case:
    return BUILDERS[request.param](request)


def check_ohlc(bars: pd.DataFrame) -> None:
    """Minimal local Bars check: positive finite prices inside the high/low envelope, volume ≥ 0."""
    prices = bars[["open", "high", "low", "close"]]
    assert prices.notna().all().all() and (prices > 0).all().all()
    assert (bars["high"] >= bars[["open", "close", "low"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["volume"] >= 0).all()
    assert not bars.duplicated(["symbol", "interval", "ts"]).any()


def test_canonical_columns_dtypes_and_utc_bar_start(case: Case):
    bars = case.provider.fetch(case.bars).bars
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert {c: str(bars[c].dtype) for c in BAR_COLUMNS} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in BAR_DTYPES.items()
    }
    assert len(bars) > 0
    assert set(bars["symbol"]) == set(case.bars.symbols) and set(bars["interval"]) == {
        case.bars.interval
    }
    step = INTERVAL_OFFSETS[case.bars.interval]
    assert (bars["ts"] == bars["ts"].dt.floor(step)).all()  # bar start, aligned (daily: 00:00 UTC)
    dates = bars["ts"].dt.date
    assert dates.min() >= case.bars.start and dates.max() <= case.bars.end
    assert bars["source"].eq(case.provider.name).all()


def test_bars_contract_holds(case: Case):
    bars = case.provider.fetch(case.bars).bars
    check_ohlc(bars)
    if importlib.util.find_spec("marketpipe.contract") is not None:
        from marketpipe.contract import validate_bars

        result = validate_bars(bars)
        assert len(result.quarantine) == 0 and len(result.valid) == len(bars)


def test_empty_vs_unknown_symbol(case: Case):
    res = case.provider.fetch(case.empty)
    assert res.bars.empty and list(res.bars.columns) == list(BAR_COLUMNS)
    assert res.empty_symbols == list(case.empty.symbols)
    if case.unknown is None:  # synthetic: every valid symbol has (invented) bars
        return
    with pytest.raises(UnknownSymbolError) as info:
        case.provider.fetch(case.unknown)
    assert not is_retryable(info.value) and case.unknown.symbols[0] in str(info.value)


def test_extract_then_transform_equals_fetch(case: Case):
    raw = case.provider.extract(case.bars)
    direct = case.provider.transform(raw, case.bars).bars
    pd.testing.assert_frame_equal(direct, case.provider.fetch(case.bars).bars)
