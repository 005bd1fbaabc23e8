"""Frame builders shared by adapters: canonical bars, rejected rows, corporate actions, timestamps."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pandas as pd

from marketpipe.bars import (
    BAR_COLUMNS,
    BAR_DTYPES,
    QUARANTINE_COLUMNS,
    TS_DTYPE,
    conform_bars,
    empty_bars,
)
from marketpipe.calendar import EXCHANGE_TZ, daily_bar_start, session_dates  # noqa: F401

# (EXCHANGE_TZ is re-exported: the adapters map vendor stamps in exchange time)
# an adapter's rejects: quarantine rows before the run stamps them
REJECTED_COLUMNS: tuple[str, ...] = tuple(
    c for c in QUARANTINE_COLUMNS if c not in ("run_id", "quarantined_at")
)
CORPORATE_ACTION_COLUMNS: tuple[str, ...] = ("symbol", "ex_date", "kind", "value", "source")


def to_json_text(payload: Any) -> str:
    """The row as JSON text (values that are not JSON-safe become strings)."""
    return json.dumps(payload, default=str, sort_keys=True)


def rejected_frame(rows: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Rows an adapter could not map, in the `REJECTED_COLUMNS` shape (`ts` may be null)."""
    rows = list(rows)
    if not rows:  # the usual case: skip the per-column conversions (~20 ms a call)
        return _EMPTY_REJECTED.copy()
    df = pd.DataFrame(rows, columns=list(REJECTED_COLUMNS))
    df["ts"] = pd.to_datetime(df["ts"], utc=True, errors="coerce").astype(TS_DTYPE)
    for col in ("symbol", "interval", "source", "reason", "detail", "payload"):
        df[col] = df[col].astype("str")
    return df


_EMPTY_REJECTED = pd.DataFrame(
    {c: pd.Series(dtype=TS_DTYPE if c == "ts" else "str") for c in REJECTED_COLUMNS}
)


def corporate_actions_frame(rows: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """`symbol, ex_date (datetime.date), kind ('split'|'dividend'), value (float), source`."""
    rows = list(rows)
    if not rows:  # the usual case (most chunks carry no event): no per-call frame building
        return _EMPTY_ACTIONS.copy()
    df = pd.DataFrame(rows, columns=list(CORPORATE_ACTION_COLUMNS))
    df["ex_date"] = pd.Series([_as_date(v) for v in df["ex_date"]], index=df.index, dtype="object")
    df["value"] = df["value"].astype("float64")
    for col in ("symbol", "kind", "source"):
        df[col] = df[col].astype("str")
    return df.sort_values(["symbol", "ex_date", "kind"], ignore_index=True)


_EMPTY_ACTIONS = pd.DataFrame(
    {
        "symbol": pd.Series(dtype="str"),
        "ex_date": pd.Series(dtype="object"),
        "kind": pd.Series(dtype="str"),
        "value": pd.Series(dtype="float64"),
        "source": pd.Series(dtype="str"),
    }
)[list(CORPORATE_ACTION_COLUMNS)]


def _as_date(v: Any) -> date:
    return pd.Timestamp(v).date()


session_midnight_utc = daily_bar_start  # daily bars: the exchange date of a UTC instant, 00:00 UTC


def exchange_dates(ts_utc: pd.Series, interval: str) -> pd.Series:
    """The session date (`datetime.date`) of each bar, aligned with `ts_utc` (range filtering)."""
    return pd.Series(session_dates(ts_utc, interval).astype(object), index=ts_utc.index)


def bars_frame(
    records: list[dict[str, Any]] | pd.DataFrame, *, symbol: str, interval: str, source: str
) -> pd.DataFrame:
    """Canonical bars from mapped records or a mapped frame (columns: ts (UTC), open, high, low,
    close, volume[, vwap, trades])."""
    if len(records) == 0:
        return empty_bars()
    if isinstance(records, pd.DataFrame):
        df = records.reset_index(drop=True)
    else:
        df = pd.DataFrame.from_records(records)
    df["symbol"] = symbol
    df["interval"] = interval
    df["source"] = source
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    if "trades" in df.columns:
        trades = pd.array(df["trades"], dtype="Float64").round()
        # beyond int64 a cast wraps around (1e30 became -2**63, then "volume_negative"): an
        # impossible trade count is treated as not reported (trades is optional)
        trades[(abs(trades) >= 2.0**63).fillna(False).to_numpy(dtype=bool)] = pd.NA
        df["trades"] = trades.astype("Int64")
    return conform_bars(df[[c for c in BAR_COLUMNS if c in df.columns]])


def concat_bars(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_bars()
    if len(frames) == 1 and _is_canonical(frames[0]):
        return frames[0].reset_index(drop=True)  # already conformed (by `bars_frame`)
    return conform_bars(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))


_CANONICAL_DTYPES = [pd.Series(dtype=BAR_DTYPES[c]).dtype for c in BAR_COLUMNS]


def _is_canonical(df: pd.DataFrame) -> bool:
    return list(df.columns) == list(BAR_COLUMNS) and list(df.dtypes) == _CANONICAL_DTYPES


def concat_rejected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else rejected_frame()


def in_range(df: pd.DataFrame, start: date, end: date) -> pd.DataFrame:
    """Rows of a canonical frame whose session date lies in [start, end]."""
    if df.empty:
        return df
    d = exchange_dates(df["ts"], str(df["interval"].iloc[0]))
    return df[(d >= start) & (d <= end)].reset_index(drop=True)


def split_factor(when: date, splits: list[tuple[date, float]]) -> float:
    """Product of split ratios with ex-date after `when` (how much a later split shrank the price)."""
    factor = 1.0
    for ex_date, ratio in splits:
        if ex_date > when and ratio > 0:
            factor *= ratio
    return factor


def undo_split_adjustment(bars: pd.DataFrame, splits: list[tuple[date, float]]) -> pd.DataFrame:
    """Raw prices from split-adjusted ones: prices × factor, volume ÷ factor (factor per bar date)."""
    if bars.empty or not splits:
        return bars
    dates = exchange_dates(bars["ts"], str(bars["interval"].iloc[0]))
    factor = pd.Series([split_factor(d, splits) for d in dates], index=bars.index, dtype="float64")
    out = bars.copy()
    for col in ("open", "high", "low", "close", "vwap"):
        out[col] = out[col] * factor
    out["volume"] = (out["volume"] / factor).round()
    return out
