"""Conversions between pandas frames and SQL parameter rows for the hot store."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from marketpipe.bars import (
    BAR_COLUMNS,
    BAR_DTYPES,
    DERIVED_COLUMNS,
    QUARANTINE_COLUMNS,
    TS_DTYPE,
    conform_bars,
    empty_bars,
)
from marketpipe.errors import ContractError

CORPORATE_ACTION_COLUMNS: tuple[str, ...] = ("symbol", "ex_date", "kind", "value", "source")
# bar columns a read fetches: the derived `session` is recomputed from ts by conform_bars
READ_COLUMNS: tuple[str, ...] = tuple(c for c in BAR_COLUMNS if c not in DERIVED_COLUMNS)


def utc_now() -> dt.datetime:
    """Now, tz-aware UTC, microsecond precision."""
    return dt.datetime.now(dt.UTC)


def as_symbols(symbols: str | Iterable[str] | None) -> list[str] | None:
    """A list of symbols from one symbol, an iterable, or None (= all)."""
    if symbols is None:
        return None
    if isinstance(symbols, str):
        return [symbols]
    return list(symbols)


def canonical_bars(df: pd.DataFrame) -> pd.DataFrame:
    """`df` as a canonical bars frame (no copy when it already is one)."""
    if tuple(df.columns) == BAR_COLUMNS and all(
        str(df[c].dtype) == BAR_DTYPES[c] for c in BAR_COLUMNS
    ):
        return df
    try:
        return conform_bars(df)
    except KeyError as exc:
        raise ContractError(str(exc.args[0]) if exc.args else str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise ContractError(f"bars frame cannot be cast to canonical dtypes: {exc}") from None


def to_records(df: pd.DataFrame, columns: Sequence[str]) -> list[dict]:
    """Rows of `df[columns]` as dicts of plain Python values, nulls as None."""
    part = df.loc[:, list(columns)]
    return part.astype(object).where(part.notna(), None).to_dict("records")


def to_utc(value) -> dt.datetime | None:
    """A tz-aware UTC datetime from a timestamp-like value, or None if it is not one."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if ts is pd.NaT or pd.isna(ts):
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def to_date(value) -> dt.date | None:
    """A calendar date from a date-like value (None for nulls)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return pd.Timestamp(value).date()


def json_text(value) -> str | None:
    """Text for a payload/params column: strings as they are, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return json.dumps(value, default=str, sort_keys=True)


def quarantine_records(df: pd.DataFrame, now: dt.datetime) -> list[dict]:
    """Quarantine rows ready to insert: missing columns filled, `ts` coerced or None."""
    rows = []
    for rec in df.astype(object).where(df.notna(), None).to_dict("records"):
        row = {c: rec.get(c) for c in QUARANTINE_COLUMNS}
        row["ts"] = to_utc(row["ts"])
        row["quarantined_at"] = to_utc(row["quarantined_at"]) or now
        row["payload"] = json_text(row["payload"])
        row["reason"] = str(row["reason"]) if row["reason"] is not None else "malformed"
        for col in ("symbol", "interval", "source", "detail", "run_id"):
            row[col] = None if row[col] is None else str(row[col])
        rows.append(row)
    return rows


def utc_column(values: Iterable) -> pd.Series:
    """A `datetime64[us, UTC]` series from driver datetimes (None → NaT)."""
    return pd.to_datetime(pd.Series(list(values), dtype=object), utc=True).astype(TS_DTYPE)


def epoch_us(ts: pd.Series) -> np.ndarray:
    """Integer microseconds since 1970-01-01 UTC of a tz-aware series (SQLite's ts storage)."""
    naive = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy(dtype="datetime64[us]").view("int64")


def from_epoch_us(values: Sequence) -> pd.Series:
    """`datetime64[us, UTC]` from integer epoch microseconds."""
    return pd.Series(pd.to_datetime(np.asarray(values, dtype="int64"), unit="us", utc=True)).astype(
        TS_DTYPE
    )


def nullable_list(s: pd.Series) -> list:
    """Plain Python values of a column with every null (NaN, NA, NaT) as None."""
    if not s.isna().any():  # the usual column: no object round trip
        return s.tolist()
    return s.astype(object).where(s.notna(), None).tolist()


def iso_dates(s: pd.Series) -> list:
    """A date column as ISO `YYYY-MM-DD` strings (SQLite's DATE format), nulls as None."""
    return pa.array(s.array).cast(pa.string()).to_pylist()


def sqlite_bar_rows(bars: pd.DataFrame, ingested_at: int) -> list[tuple]:
    """Parameter tuples in `BAR_COLUMNS` + ingested_at order, timestamps as epoch µs, the
    session date as ISO text."""
    columns = [
        epoch_us(bars[c]).tolist()
        if c == "ts"
        else iso_dates(bars[c])
        if c == "session"
        else nullable_list(bars[c])
        for c in BAR_COLUMNS
    ]
    columns.append([ingested_at] * len(bars))
    return list(zip(*columns, strict=True))


def bars_frame(rows: Sequence[Sequence], ts_epoch_us: bool) -> pd.DataFrame:
    """A canonical bars frame from result rows in `READ_COLUMNS` order.

    `ts_epoch_us`: the ts column holds SQLite's integer microseconds instead of datetimes.
    """
    if not rows:
        return empty_bars()
    data = dict(zip(READ_COLUMNS, zip(*rows, strict=True), strict=True))
    data["ts"] = from_epoch_us(data["ts"]) if ts_epoch_us else utc_column(data["ts"])
    data["trades"] = pd.array(list(data["trades"]), dtype="Int64")
    return conform_bars(
        pd.DataFrame({k: list(v) if isinstance(v, tuple) else v for k, v in data.items()})
    )
