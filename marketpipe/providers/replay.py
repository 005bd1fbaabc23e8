"""Replay source: bars from a local Parquet or CSV file, filtered to the query.

The file is read with `marketpipe.importer_read.BarFile` (column projection, symbol/interval/ts
filters pushed down into Parquet, CSV streamed as text; shapes and timestamp rules there):
* canonical: `symbol, interval, ts, open, high, low, close, volume[, vwap, trades]`;
* the common download shape: `Date, Open, High, Low, Close, Volume[, Adj Close][, Ticker|Symbol]`;
* Polygon flat files (`ticker, …, window_start, transactions`).
`Adj Close` is ignored (bars are raw). Without a symbol column the file holds one symbol: the file
name's stem when it is one of the query's symbols, else the query's only symbol. Without an
interval column the file is taken to be in the query's interval. A row whose timestamp or a
price/volume cannot be parsed goes to `rejected` with reason `malformed`; the contract checks the
rest.

`marketpipe run --source replay` does not go through `fetch`: the ingestion flow streams the file
in bounded batches (`flows.importing.replay_ingestion`), by default every symbol and every date in
it; `fetch` serves the historical stage and direct callers, one query at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketpipe.errors import ConfigError, ContractError, UnknownSymbolError
from marketpipe.importer_read import BarFile, Selection
from marketpipe.input_columns import check_file_columns
from marketpipe.providers._frames import concat_bars, concat_rejected
from marketpipe.providers.base import BarsQuery, BaseProvider, FetchResult

NAME = "replay"


class ReplayProvider(BaseProvider):
    """Bars read from `replay_path` (.parquet/.pq or .csv/.csv.gz)."""

    name = NAME

    def __init__(self, replay_path: str | Path | None = None, *, source: str = NAME, **_: Any):
        if not replay_path:
            raise ConfigError(
                "replay source needs a file: pass --replay-path FILE (Parquet or CSV)"
            )
        self.path = Path(replay_path)
        self.source = source

    def open(self) -> BarFile:
        if not self.path.is_file():
            raise ConfigError(f"replay file not found: {self.path}")
        check_file_columns(self.path, f"replay file {self.path.name}")
        try:
            return BarFile(str(self.path))
        except ContractError as exc:
            raise ContractError(f"replay file {exc}") from None

    def check_symbols(self, bar_file: BarFile, symbols: tuple[str, ...] | None) -> None:
        """UnknownSymbolError for the first asked-for symbol the file does not hold."""
        if not symbols:
            return
        known = set(bar_file.symbols() or [self.symbol_for(bar_file, symbols)])
        unknown = [s for s in symbols if s not in known]
        if unknown:
            raise UnknownSymbolError(
                f"not in replay file {self.path.name}", provider=NAME, symbol=unknown[0]
            )

    def extract(self, query: BarsQuery) -> BarFile:
        return self.open()

    def symbol_for(self, bar_file: BarFile, symbols: tuple[str, ...] | None) -> str | None:
        """The symbol of a file without a symbol column (None when it has one)."""
        if "symbol" in bar_file.columns:
            return None
        stem = self.path.name.split(".")[0].upper()
        if symbols and stem not in symbols and len(symbols) == 1:
            return symbols[0]
        return stem

    def transform(self, raw: BarFile, query: BarsQuery) -> FetchResult:
        wanted = tuple(s.upper() for s in query.symbols)
        symbol = self.symbol_for(raw, wanted)
        self.check_symbols(raw, wanted)
        selection = Selection(wanted, query.interval, query.start, query.end)
        bars, rejected = [], []
        for batch in raw.batches(selection, symbol=symbol, source=self.source):
            bars.append(batch.bars)
            rejected.append(batch.rejected)
        result = FetchResult(bars=concat_bars(bars), rejected=concat_rejected(rejected))
        if len(result.bars):
            result.bars = result.bars.sort_values(["symbol", "ts"], ignore_index=True)
        served = set(result.bars["symbol"])
        result.empty_symbols = [s for s in wanted if s not in served]
        return result


def file_symbols(path: str | Path) -> list[str] | None:
    """The symbols a replay file holds (None when it has no symbol column)."""
    return BarFile(str(path)).symbols()
