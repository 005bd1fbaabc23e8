"""Replay source: bars from a local Parquet or CSV file, filtered to the query.

Accepted shapes (column names matched case-insensitively, spaces → `_`):
* canonical: `symbol, interval, ts, open, high, low, close, volume[, vwap, trades]`;
* the common download shape: `Date, Open, High, Low, Close, Volume[, Adj Close][, Ticker|Symbol]`.
`Adj Close` is ignored (bars are raw). Without a symbol column the file holds one symbol: the file
name's stem when it is one of the query's symbols, else the query's only symbol. Without an
interval column the file is taken to be in the query's interval. Naive timestamps are UTC; daily
rows are stamped at the session date's 00:00 UTC. A row whose timestamp or a price/volume cannot
be parsed goes to `rejected` with reason `malformed`; the contract checks the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from marketpipe.errors import ConfigError, ContractError, UnknownSymbolError
from marketpipe.input_columns import check_file_columns
from marketpipe.providers._frames import bars_frame, in_range, rejected_frame, to_json_text
from marketpipe.providers.base import BarsQuery, BaseProvider, FetchResult

NAME = "replay"
REQUIRED = ("ts", "open", "high", "low", "close", "volume")
NUMERIC = ("open", "high", "low", "close", "volume", "vwap", "trades")
_ALIASES = {"date": "ts", "datetime": "ts", "timestamp": "ts", "time": "ts", "ticker": "symbol"}


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

    def extract(self, query: BarsQuery) -> pd.DataFrame:
        """The file as read (CSV as text, so a bad value reaches `transform` unchanged)."""
        if not self.path.is_file():
            raise ConfigError(f"replay file not found: {self.path}")
        name = self.path.name.lower()
        check_file_columns(self.path, f"replay file {self.path.name}")
        try:
            if name.endswith((".parquet", ".pq")):
                return pd.read_parquet(self.path)
            if name.endswith((".csv", ".csv.gz", ".txt")):
                return pd.read_csv(self.path, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"replay file {self.path} cannot be read: {exc}") from None
        raise ConfigError(f"replay file {self.path}: use a .parquet or .csv file")

    def transform(self, raw: pd.DataFrame, query: BarsQuery) -> FetchResult:
        df = _normalise_columns(raw)
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            shown = ["Date" if c == "ts" else c for c in missing]
            raise ContractError(
                f"replay file {self.path.name} lacks column(s) {', '.join(shown)} "
                "(want Date/ts, Open, High, Low, Close, Volume)"
            )
        if "symbol" not in df.columns:
            stem = self.path.name.split(".")[0].upper()
            only = query.symbols[0] if len(query.symbols) == 1 else stem
            df["symbol"] = stem if stem in query.symbols else only
        df["symbol"] = df["symbol"].astype("str").str.strip().str.upper()
        known = set(df["symbol"])
        unknown = [s for s in query.symbols if s.upper() not in known]
        if unknown:
            raise UnknownSymbolError(
                f"not in replay file {self.path.name}", provider=NAME, symbol=unknown[0]
            )
        df = df[df["symbol"].isin([s.upper() for s in query.symbols])]
        if "interval" in df.columns:
            df = df[df["interval"].astype("str") == query.interval]
        good, bad = _parse_rows(df, query.interval, self.source)
        frames = [
            in_range(
                bars_frame(g, symbol=sym, interval=query.interval, source=self.source),
                query.start,
                query.end,
            )
            for sym, g in good.items()
        ]
        bars = (
            pd.concat([f for f in frames if len(f)], ignore_index=True)
            if any(len(f) for f in frames)
            else None
        )
        result = FetchResult(rejected=rejected_frame(bad), requests=0)
        if bars is not None:
            result.bars = bars.sort_values(["symbol", "ts"], ignore_index=True)
        served = set(result.bars["symbol"])
        result.empty_symbols = [s for s in query.symbols if s.upper() not in served]
        return result


def _normalise_columns(raw: pd.DataFrame) -> pd.DataFrame:
    df = (
        raw.reset_index()
        if raw.index.name and raw.index.name.lower() in ("date", "ts", "datetime")
        else raw
    )
    cols = {c: str(c).strip().lower().replace(" ", "_") for c in df.columns}
    df = df.rename(columns=cols)
    df = df.rename(
        columns={
            c: _ALIASES[c] for c in df.columns if c in _ALIASES and _ALIASES[c] not in df.columns
        }
    )
    return df.drop(columns=[c for c in ("adj_close", "source") if c in df.columns])


def _parse_rows(
    df: pd.DataFrame, interval: str, source: str
) -> tuple[dict[str, list[dict]], list[dict]]:
    ts = pd.to_datetime(df["ts"], utc=True, errors="coerce", format="mixed")
    if interval == "1d":
        ts = ts.dt.floor("D")
    nums = {c: pd.to_numeric(df[c], errors="coerce") for c in NUMERIC if c in df.columns}
    good: dict[str, list[dict]] = {}
    bad: list[dict] = []
    for i, (pos, row) in enumerate(df.iterrows()):
        problems = [c for c in REQUIRED if c != "ts" and pd.isna(nums[c].iloc[i])]
        if pd.isna(ts.iloc[i]):
            problems.insert(0, "ts")
        if problems:
            bad.append(
                {
                    "symbol": row["symbol"],
                    "interval": interval,
                    "ts": None if pd.isna(ts.iloc[i]) else ts.iloc[i],
                    "source": source,
                    "reason": "malformed",
                    "detail": f"unparseable or missing {', '.join(problems)} (row {pos})",
                    "payload": to_json_text(row.to_dict()),
                }
            )
            continue
        rec = {"ts": ts.iloc[i], **{c: nums[c].iloc[i] for c in nums}}
        good.setdefault(row["symbol"], []).append(rec)
    return good, bad
