"""fetch_with_fallback: per symbol, the first source with bars wins; `source` records it."""

from __future__ import annotations

from datetime import date

import pytest

from marketpipe.errors import FatalError, RetryableError, UnknownSymbolError
from marketpipe.providers import BarsQuery, get_provider
from marketpipe.providers.base import BaseProvider, FetchResult
from marketpipe.providers.fallback import fetch_with_fallback
from tests.providers.conftest import DATA


class Failing(BaseProvider):
    def __init__(self, name: str, exc: Exception | None = None):
        self.name, self.exc, self.calls = name, exc, 0

    def extract(self, query):
        self.calls += 1
        if self.exc:
            raise self.exc
        return None

    def transform(self, raw, query):
        return FetchResult(empty_symbols=list(query.symbols))


def q(*symbols, start="2024-01-01", end="2024-01-31") -> BarsQuery:
    return BarsQuery(symbols, "1d", date.fromisoformat(start), date.fromisoformat(end))


def replay(source="replay"):
    return get_provider("replay", replay_path=DATA / "replay" / "multi_bad_row.csv", source=source)


def test_falls_back_on_fatal_and_on_no_data_per_symbol():
    down = Failing("polygon", FatalError("not authorised", provider="polygon"))
    res = fetch_with_fallback([down, Failing("yahoo"), replay()], q("AAPL", "MSFT"))
    assert set(res.bars["source"]) == {"replay"} and sorted(set(res.bars["symbol"])) == [
        "AAPL",
        "MSFT",
    ]
    assert down.calls == 2 and len(res.rejected) == 2


def test_first_source_with_bars_wins_and_is_recorded():
    res = fetch_with_fallback([replay("primary"), replay("secondary")], q("MSFT"))
    assert res.bars["source"].unique().tolist() == ["primary"]


def test_known_empty_everywhere_is_empty_symbol():
    res = fetch_with_fallback(
        [Failing("a", UnknownSymbolError("?", provider="a")), replay()],
        q("AAPL", start="2024-02-01", end="2024-02-02"),
    )
    assert res.bars.empty and res.empty_symbols == ["AAPL"]


def test_all_unknown_raises_unknown_and_mixed_raises_fatal():
    with pytest.raises(UnknownSymbolError, match="TSLA"):
        fetch_with_fallback(
            [Failing("a", UnknownSymbolError("?", provider="a")), replay()], q("TSLA")
        )
    with pytest.raises(FatalError, match="no source could serve"):
        fetch_with_fallback([Failing("a", FatalError("bad", provider="a")), replay()], q("TSLA"))


def test_retryable_is_not_swallowed():
    with pytest.raises(RetryableError):
        fetch_with_fallback(
            [Failing("a", RetryableError("429", provider="a")), replay()], q("AAPL")
        )
