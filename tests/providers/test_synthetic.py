"""The synthetic provider: deterministic, calendar-exact, composable ranges, contract-clean output."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import BAR_COLUMNS
from marketpipe.calendar import expected_bar_starts
from marketpipe.contract import validate_bars
from marketpipe.providers import BarsQuery, get_provider
from marketpipe.providers.synthetic import SyntheticProvider

NOW = pd.Timestamp("2025-01-01T00:00:00Z")


def fetch(symbols, interval, start, end, seed=0, now=NOW) -> pd.DataFrame:
    query = BarsQuery(tuple(symbols), interval, start, end)
    return SyntheticProvider(seed=seed, now=now).fetch(query).bars


def test_same_seed_same_frame_and_different_seed_different_frame():
    a = fetch(["AAPL", "MSFT"], "5m", date(2024, 3, 4), date(2024, 3, 8), seed=7)
    b = fetch(["AAPL", "MSFT"], "5m", date(2024, 3, 4), date(2024, 3, 8), seed=7)
    c = fetch(["AAPL", "MSFT"], "5m", date(2024, 3, 4), date(2024, 3, 8), seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(c) == 2 * 5 * 78
    assert (a["ts"] == c["ts"]).all()
    assert not np.allclose(a["close"], c["close"])


def test_symbols_differ_and_do_not_depend_on_each_other():
    both = fetch(["AAPL", "MSFT"], "1h", date(2024, 3, 4), date(2024, 3, 4))
    alone = fetch(["MSFT"], "1h", date(2024, 3, 4), date(2024, 3, 4))
    msft = both[both["symbol"] == "MSFT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(msft, alone)
    assert not np.allclose(both["close"].iloc[:7], both["close"].iloc[7:])


def test_known_values_are_stable_across_processes():
    """Pinned figures: a change here means every stored synthetic fixture changes too."""
    bars = fetch(["AAPL"], "1d", date(2024, 1, 2), date(2024, 1, 3), seed=0)
    assert bars["ts"].tolist() == [
        pd.Timestamp("2024-01-02T00:00:00Z"),
        pd.Timestamp("2024-01-03T00:00:00Z"),
    ]
    assert bars["close"].round(4).tolist() == pytest.approx(PINNED_AAPL_1D_CLOSES)


@pytest.mark.parametrize(
    "interval, start, end",
    [
        ("1m", date(2024, 7, 1), date(2024, 7, 8)),  # July 4 holiday, July 3 early close
        ("5m", date(2024, 11, 25), date(2024, 11, 29)),  # Thanksgiving, day-after early close
        ("15m", date(2024, 3, 6), date(2024, 3, 13)),  # DST change on 2024-03-10
        ("1h", date(2024, 3, 6), date(2024, 3, 13)),
        ("1d", date(2023, 12, 20), date(2024, 1, 10)),  # Christmas, New Year
    ],
)
def test_bars_exist_exactly_at_expected_starts(interval, start, end):
    bars = fetch(["AAPL", "BRK.B"], interval, start, end)
    expected = expected_bar_starts(interval, start, end)
    for _, group in bars.groupby("symbol"):
        assert list(group["ts"]) == list(expected)
    assert len(bars) == 2 * len(expected) > 0


def test_calendar_edges_in_the_output():
    bars = fetch(["AAPL"], "1m", date(2024, 7, 3), date(2024, 7, 5))
    days = bars["ts"].dt.tz_convert("America/New_York").dt.date
    assert sorted(set(days)) == [date(2024, 7, 3), date(2024, 7, 5)]
    assert bars.loc[days == date(2024, 7, 3), "ts"].max() == pd.Timestamp("2024-07-03T16:59:00Z")
    dst = fetch(["AAPL"], "1h", date(2024, 3, 8), date(2024, 3, 11))
    assert dst["ts"].min() == pd.Timestamp("2024-03-08T14:30:00Z")
    assert (dst["ts"] == pd.Timestamp("2024-03-11T13:30:00Z")).any()


def test_sub_range_equals_slice_of_larger_query():
    big = fetch(["AAPL", "^GSPC"], "15m", date(2024, 1, 1), date(2024, 3, 31), seed=3)
    small = fetch(["AAPL", "^GSPC"], "15m", date(2024, 2, 12), date(2024, 2, 20), seed=3)
    lo = pd.Timestamp("2024-02-12T00:00:00Z")
    hi = pd.Timestamp("2024-02-21T00:00:00Z")
    piece = big[(big["ts"] >= lo) & (big["ts"] < hi)].reset_index(drop=True)
    pd.testing.assert_frame_equal(small, piece)


def test_never_a_bar_after_now_and_a_partial_session_is_a_prefix():
    now = pd.Timestamp("2024-11-27T15:02:10Z")
    partial = fetch(["AAPL"], "1m", date(2024, 11, 26), date(2024, 11, 29), now=now)
    full = fetch(["AAPL"], "1m", date(2024, 11, 26), date(2024, 11, 29))
    assert partial["ts"].max() == pd.Timestamp("2024-11-27T15:01:00Z")
    assert (partial["ts"] + pd.Timedelta(minutes=1) <= now).all()
    pd.testing.assert_frame_equal(partial, full.iloc[: len(partial)])
    assert len(partial) == 390 + 32


def test_ohlc_consistent_and_output_passes_contract():
    bars = fetch(["AAPL", "MSFT", "EURUSD=X"], "1m", date(2024, 1, 1), date(2024, 2, 29))
    assert list(bars.columns) == list(BAR_COLUMNS)
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["low"] > 0).all()
    assert bars["vwap"].between(bars["low"], bars["high"]).all()
    assert (bars["volume"] >= 1).all() and (bars["trades"] >= 1).all()
    assert str(bars["trades"].dtype) == "Int64"
    # plausible minute returns: well under 1% typical moves
    returns = np.log(bars["close"] / bars["open"])
    assert 0.0002 < returns.std() < 0.003
    result = validate_bars(bars, now=NOW)
    assert result.quarantine.empty and len(result.valid) == len(bars)


def test_empty_range_reports_empty_symbols_and_registry_builds_it():
    provider = get_provider("synthetic", seed=5)
    assert isinstance(provider, SyntheticProvider) and provider.seed == 5
    result = provider.fetch(BarsQuery(("AAPL",), "1d", date(2024, 7, 4), date(2024, 7, 4)))
    assert result.bars.empty and result.empty_symbols == ["AAPL"] and result.requests == 0
    assert list(result.bars.columns) == list(BAR_COLUMNS)


def test_large_query_is_vectorised_enough():
    import time

    symbols = [f"SYM{i}" for i in range(20)]
    started = time.perf_counter()
    bars = fetch(symbols, "1m", date(2024, 1, 1), date(2024, 6, 30))
    elapsed = time.perf_counter() - started
    assert len(bars) == 20 * len(expected_bar_starts("1m", date(2024, 1, 1), date(2024, 6, 30)))
    assert elapsed < 30  # generous bound on a loaded 2-core box; ~1M bars/s when idle


PINNED_AAPL_1D_CLOSES: list[float] = [410.3875, 414.321]
