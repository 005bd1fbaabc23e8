"""The Bars contract's parse step: turn a raw frame into a checkable one without crashing.

`parse_bars(df)` returns a copy with numbers as float64, `ts` as UTC and text as `str`, plus one
boolean mask per parse-step reason code:

- `missing_value`: a required field is null / NaN / NaT / None (optional `vwap`, `trades` may be).
- `not_numeric`: a numeric field holds something `pd.to_numeric` cannot read (text, objects), or
  `trades` is not a whole number.
- `bad_timestamp`: `ts` cannot be parsed, is a bare number (epoch units are ambiguous), or is
  **naive**. Naive timestamps are rejected, not assumed UTC: a naive time is ambiguous (exchange
  time? UTC?) and guessing would silently shift bars by hours. Time-zone-aware values in any
  zone are converted to UTC. Strings must carry an offset or `Z` (ISO 8601).

A rejected cell becomes NaN/NaT in the parsed frame, and every pandera rule treats NaN as "not my
failure", so one broken cell yields exactly one reason. This step lives outside pandera because
pandera's `coerce` fails a whole column on one bad cell; what it finds is reported beside the
schema's failures, under the same reason-code scheme.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd

from marketpipe.bars import BAR_COLUMNS, OPTIONAL_COLUMNS, PRICE_COLUMNS, TS_DTYPE
from marketpipe.errors import ContractError

__all__ = ["NUMERIC_COLUMNS", "PARSE_CODES", "REQUIRED_COLUMNS", "parse_bars"]

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in BAR_COLUMNS if c not in OPTIONAL_COLUMNS)
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume", "vwap", "trades")
PARSE_CODES: tuple[str, ...] = ("missing_value", "not_numeric", "bad_timestamp")

# a time of day followed by an explicit offset: "...T14:30:00Z", "... 09:30-05:00", "...T15:32+0100"
_UTC_OFFSET_RE = r"[Tt ]\d{2}(?::\d{2}){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_UTC_OFFSET = re.compile(_UTC_OFFSET_RE)


def _coerce_numeric(s: pd.Series, integral: bool) -> tuple[pd.Series, np.ndarray]:
    """Float64 values (NaN where rejected) and the `not_numeric` mask (nulls are not bad here).

    Booleans are not numbers here; text that `pd.to_numeric` reads ("101.5", "1e3") is accepted.
    """
    if pd.api.types.is_bool_dtype(s):
        values = np.full(len(s), np.nan)
        bad = s.notna().to_numpy()
    elif pd.api.types.is_numeric_dtype(s):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        bad = np.zeros(len(s), dtype=bool)
    else:
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        bad = s.notna().to_numpy() & np.isnan(values)
    if integral:  # trades: a whole number (inf is left to volume_not_finite)
        finite = np.isfinite(values)
        bad |= finite & (values != np.floor(np.where(finite, values, 0.0)))
    if bad.any():
        values = np.where(bad, np.nan, values)
    return pd.Series(values, index=s.index), bad


def _coerce_ts(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """UTC timestamps (NaT where rejected) and the `bad_timestamp` mask (nulls are not bad here)."""
    present = s.notna().to_numpy()
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").astype(TS_DTYPE), np.zeros(len(s), dtype=bool)
    if pd.api.types.is_datetime64_dtype(s) or pd.api.types.is_numeric_dtype(s):
        # naive datetimes and bare epoch numbers are ambiguous: reject every present value
        return pd.Series(pd.NaT, index=s.index, dtype=TS_DTYPE), present
    if pd.api.types.is_object_dtype(s) and pd.api.types.infer_dtype(s, skipna=True) == "string":
        s = s.astype("str")
    if pd.api.types.is_string_dtype(s) and not pd.api.types.is_object_dtype(s):
        aware = s.str.contains(_UTC_OFFSET_RE, regex=True, na=False).to_numpy()
        parsed = pd.to_datetime(s.where(aware), utc=True, errors="coerce", format="ISO8601")
    else:  # object: mixed Python values
        parsed, aware = _coerce_ts_objects(s)
    parsed = parsed.astype(TS_DTYPE)
    bad = present & (~aware | parsed.isna().to_numpy())
    return parsed.where(~bad), bad


def _coerce_ts_objects(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Slow path for object columns holding mixed values (datetimes, strings, numbers)."""
    values = s.to_numpy(dtype=object)
    out = np.full(len(values), None, dtype=object)
    aware = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if isinstance(v, str) and not _UTC_OFFSET.search(v):
            continue  # naive text
        if not isinstance(v, str | datetime):
            continue  # numbers, dates without a time, other objects
        try:
            t = pd.Timestamp(v)
        except (ValueError, TypeError, OverflowError):
            continue
        if t.tzinfo is not None:
            out[i], aware[i] = t.tz_convert("UTC"), True
    parsed = pd.to_datetime(pd.Series(out, index=s.index), utc=True, errors="coerce")
    return parsed, aware


def parse_bars(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A checkable copy of `df` (numbers float64, ts UTC, text str; a fresh `RangeIndex`, so row
    labels are positions) and the parse-step failure masks. Raises `ContractError` naming a
    missing required column."""
    missing_cols = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing_cols:
        raise ContractError(f"bars frame lacks required column(s): {', '.join(missing_cols)}")
    n = len(df)
    missing = np.zeros(n, dtype=bool)
    not_numeric = np.zeros(n, dtype=bool)
    out: dict[str, pd.Series] = {}
    for col in REQUIRED_COLUMNS:
        missing |= df[col].isna().to_numpy()
    for col in ("symbol", "interval", "source"):
        s = df[col]
        out[col] = s if s.dtype == "str" else s.astype("str")
    for col in NUMERIC_COLUMNS:
        if col not in df.columns:
            continue
        values, bad = _coerce_numeric(df[col], integral=(col == "trades"))
        out[col] = values
        not_numeric |= bad
    out["ts"], bad_ts = _coerce_ts(df["ts"])
    frame = pd.DataFrame({c: out[c] for c in BAR_COLUMNS if c in out}, index=df.index)
    frame.index = pd.RangeIndex(n)
    return frame, {"missing_value": missing, "not_numeric": not_numeric, "bad_timestamp": bad_ts}
