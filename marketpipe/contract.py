"""The Bars contract: a pandera schema plus `validate_bars`, which splits a frame into valid rows
and quarantine rows, one per rejected input row, every failed check named by its reason code.

How a frame is checked
----------------------
1. Shape: a frame without a required column raises `ContractError` naming it (nothing is written).
2. Pre-step (`_coerce`) turns a raw frame into a checkable one without crashing and records:
   - `missing_value`: a required field is null / NaN / NaT / None (optional `vwap`, `trades` may be).
   - `not_numeric`: a numeric field holds something `pd.to_numeric` cannot read (text, objects), or
     `trades` is not a whole number.
   - `bad_timestamp`: `ts` cannot be parsed, is a bare number (epoch units are ambiguous), or is
     **naive**. Naive timestamps are rejected, not assumed UTC: a naive time is ambiguous (exchange
     time? UTC?) and guessing would silently shift bars by hours. Time-zone-aware values in any
     zone are converted to UTC. Strings must carry an offset or `Z` (ISO 8601).
3. Rules (`BarsSchema` checks, one vectorised dataframe-level check per reason code) run on the
   coerced frame. A value the pre-step already rejected is NaN/NaT there, and every rule treats
   NaN as "not my failure", so one broken cell yields exactly one reason.
4. `duplicate_key` runs last, over rows that passed every other rule: the first *good* occurrence of a
   `(symbol, interval, ts)` key is kept and later ones are quarantined, so a broken first copy never
   causes a good later copy to be lost.

`float NaN` cannot be told apart from "missing" in a float column, so NaN prices are
`missing_value`; `price_not_finite` / `volume_not_finite` are for ±inf.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

from marketpipe.bars import (
    BAR_COLUMNS,
    BAR_KEY,
    OPTIONAL_COLUMNS,
    PRICE_COLUMNS,
    QUARANTINE_COLUMNS,
    STORED_INTERVALS,
    TS_DTYPE,
    conform_bars,
)
from marketpipe.errors import ContractError
from marketpipe.symbols import SYMBOL_PATTERN, is_valid_symbol

__all__ = [
    "BarsSchema",
    "QUARANTINE_COLUMNS",
    "REASON_CODES",
    "RULE_CODES",
    "ValidationResult",
    "build_bars_schema",
    "empty_quarantine",
    "validate_bars",
]

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in BAR_COLUMNS if c not in OPTIONAL_COLUMNS)
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume", "vwap", "trades")
VWAP_PRICE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "vwap")
COUNT_COLUMNS: tuple[str, ...] = ("volume", "trades")

PRESTEP_CODES: tuple[str, ...] = ("missing_value", "not_numeric", "bad_timestamp")
RULE_CODES: tuple[str, ...] = (
    "price_not_finite",
    "price_not_positive",
    "volume_not_finite",
    "volume_negative",
    "high_lt_open_close",
    "low_gt_open_close",
    "high_lt_low",
    "future_bar",
    "bad_symbol",
    "bad_interval",
    "duplicate_key",
)
REASON_CODES: tuple[str, ...] = (*PRESTEP_CODES, *RULE_CODES)

DETAILS: dict[str, str] = {
    "missing_value": "a required field is empty",
    "not_numeric": "a numeric field is not a number",
    "bad_timestamp": "ts is unparseable, numeric or naive (needs a UTC offset)",
    "price_not_finite": "a price (open/high/low/close/vwap) is infinite",
    "price_not_positive": "a price (open/high/low/close/vwap) is <= 0",
    "volume_not_finite": "volume or trades is infinite",
    "volume_negative": "volume or trades is negative",
    "high_lt_open_close": "high < max(open, close)",
    "low_gt_open_close": "low > min(open, close)",
    "high_lt_low": "high < low",
    "future_bar": "bar starts after now",
    "bad_symbol": f"symbol is not {SYMBOL_PATTERN} (ASCII, <=32 chars, no '..' or '//')",
    "bad_interval": f"interval is not one of {', '.join(STORED_INTERVALS)}",
    "duplicate_key": "(symbol, interval, ts) repeats an earlier row",
}

# a time of day followed by an explicit offset: "...T14:30:00Z", "... 09:30-05:00", "...T15:32+0100"
_UTC_OFFSET_RE = r"[Tt ]\d{2}(?::\d{2}){0,2}(?:[.,]\d+)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_UTC_OFFSET = re.compile(_UTC_OFFSET_RE)


class ValidationResult(NamedTuple):
    valid: pd.DataFrame
    quarantine: pd.DataFrame


# --------------------------------------------------------------------------- rules
# Each rule returns a boolean Series that is True where the row PASSES. NaN never fails a rule
# (the pre-step owns missing and unreadable values), so comparisons are written as ~(failure).


def _present(df: pd.DataFrame, cols: tuple[str, ...]) -> list[str]:
    return [c for c in cols if c in df.columns]


def _fails_any(df: pd.DataFrame, cols: tuple[str, ...], fails: Callable) -> pd.Series:
    bad = np.zeros(len(df), dtype=bool)
    for col in _present(df, cols):
        values = df[col].to_numpy(dtype="float64", na_value=np.nan)
        bad |= fails(values)
    return pd.Series(~bad, index=df.index)


def _arr(df: pd.DataFrame, col: str) -> np.ndarray:
    """Finite values as float64; NaN for missing and ±inf (those are other rules' failures)."""
    values = df[col].to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isinf(values), np.nan, values)


def check_missing_value(df: pd.DataFrame) -> pd.Series:
    return ~df[list(REQUIRED_COLUMNS)].isna().any(axis=1)


def check_price_not_finite(df: pd.DataFrame) -> pd.Series:
    return _fails_any(df, VWAP_PRICE_COLUMNS, np.isinf)


def check_price_not_positive(df: pd.DataFrame) -> pd.Series:
    return _fails_any(df, VWAP_PRICE_COLUMNS, lambda v: v <= 0)


def check_volume_not_finite(df: pd.DataFrame) -> pd.Series:
    return _fails_any(df, COUNT_COLUMNS, np.isinf)


def check_volume_negative(df: pd.DataFrame) -> pd.Series:
    return _fails_any(df, COUNT_COLUMNS, lambda v: v < 0)


def check_high_lt_open_close(df: pd.DataFrame) -> pd.Series:
    high = _arr(df, "high")
    return pd.Series(~((high < _arr(df, "open")) | (high < _arr(df, "close"))), index=df.index)


def check_low_gt_open_close(df: pd.DataFrame) -> pd.Series:
    low = _arr(df, "low")
    return pd.Series(~((low > _arr(df, "open")) | (low > _arr(df, "close"))), index=df.index)


def check_high_lt_low(df: pd.DataFrame) -> pd.Series:
    return pd.Series(~(_arr(df, "high") < _arr(df, "low")), index=df.index)


def check_duplicate_key(df: pd.DataFrame) -> pd.Series:
    """Later repeats of a (symbol, interval, ts) key fail; the first occurrence passes."""
    symbol, _ = pd.factorize(df["symbol"])
    interval, intervals = pd.factorize(df["interval"])
    ts = pd.DatetimeIndex(df["ts"]).as_unit("us").asi8
    name_key = symbol.astype(np.int64) * (len(intervals) + 1) + interval
    dup = _duplicated_pairs(name_key, ts)
    return pd.Series(~dup, index=df.index)


def _duplicated_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`duplicated(keep='first')` of (a, b) int64 pairs; packs them into one int64 when they fit."""
    if len(a) == 0:
        return np.zeros(0, dtype=bool)
    b_min, b_span = int(b.min()), int(b.max()) - int(b.min()) + 1
    if b_span * (int(a.max()) + 2) < 2**62:
        key = a * b_span + (b - b_min)
        if bool(np.all(key[1:] > key[:-1])):  # sorted unique keys (the usual provider order)
            return np.zeros(len(key), dtype=bool)
        # stable sort (timsort: near-linear on the mostly sorted frames providers return); within
        # a run of equal keys the first in input order comes first, the rest are duplicates
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        dup = np.zeros(len(key), dtype=bool)
        dup[order[1:][ordered[1:] == ordered[:-1]]] = True
        return dup
    return pd.DataFrame({"a": a, "b": b}).duplicated(keep="first").to_numpy()


def _by_unique(s: pd.Series, ok: Callable[[object], bool]) -> pd.Series:
    """Apply a scalar predicate once per distinct value (symbols repeat a lot), then broadcast."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    good = np.fromiter((ok(u) for u in uniques), dtype=bool, count=len(uniques))
    # NaN (code -1) passes: missing symbols are `missing_value`
    return pd.Series(np.append(good, True)[codes], index=s.index)


def check_bad_symbol(df: pd.DataFrame) -> pd.Series:
    return _by_unique(df["symbol"], is_valid_symbol)


def check_bad_interval(df: pd.DataFrame) -> pd.Series:
    return _by_unique(df["interval"], lambda v: v in STORED_INTERVALS)


def make_future_bar_check(now: pd.Timestamp | None = None) -> Callable[[pd.DataFrame], pd.Series]:
    """`now=None` means wall-clock time when the check runs."""

    def check_future_bar(df: pd.DataFrame) -> pd.Series:
        limit = _utc_now() if now is None else _as_utc(now)
        return ~(df["ts"] > limit).fillna(False).astype(bool)

    return check_future_bar


def rule_functions(now: pd.Timestamp | None = None) -> dict[str, Callable]:
    """Reason code -> vectorised check (True = row passes). Order = evaluation order."""
    return {
        "missing_value": check_missing_value,
        "price_not_finite": check_price_not_finite,
        "price_not_positive": check_price_not_positive,
        "volume_not_finite": check_volume_not_finite,
        "volume_negative": check_volume_negative,
        "high_lt_open_close": check_high_lt_open_close,
        "low_gt_open_close": check_low_gt_open_close,
        "high_lt_low": check_high_lt_low,
        "future_bar": make_future_bar_check(now),
        "bad_symbol": check_bad_symbol,
        "bad_interval": check_bad_interval,
        "duplicate_key": check_duplicate_key,
    }


def build_bars_schema(now: pd.Timestamp | None = None) -> pa.DataFrameSchema:
    """The pandera schema for canonical bars; each check is named by its reason code.

    Columns are nullable at the dtype level because nulls are reported by the named
    `missing_value` check (required columns only), not by pandera's generic `not_nullable`.
    """
    columns = {
        "symbol": pa.Column(str, nullable=True),
        "interval": pa.Column(str, nullable=True),
        "ts": pa.Column(TS_DTYPE, nullable=True),
        "open": pa.Column("float64", nullable=True),
        "high": pa.Column("float64", nullable=True),
        "low": pa.Column("float64", nullable=True),
        "close": pa.Column("float64", nullable=True),
        "volume": pa.Column("float64", nullable=True),
        "vwap": pa.Column("float64", nullable=True, required=False),
        "trades": pa.Column("Int64", nullable=True, required=False),
        "source": pa.Column(str, nullable=True),
    }
    checks = [
        pa.Check(fn, name=code, element_wise=False) for code, fn in rule_functions(now).items()
    ]
    return pa.DataFrameSchema(columns, checks=checks, name="Bars", strict=False)


BarsSchema: pa.DataFrameSchema = build_bars_schema()
Bars = BarsSchema


# --------------------------------------------------------------------------- pre-step
def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ContractError(f"now={ts} is naive; pass a time-zone-aware timestamp")
    return ts.tz_convert("UTC")


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
    return pd.Series(np.where(bad, np.nan, values), index=s.index), bad


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


def _coerce(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A checkable copy of `df` (numbers float64, ts UTC, text str) and the pre-step failure masks."""
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
    return frame, {"missing_value": missing, "not_numeric": not_numeric, "bad_timestamp": bad_ts}


# --------------------------------------------------------------------------- validate
@lru_cache(maxsize=1)
def _empty_quarantine_template() -> pd.DataFrame:
    dtypes = dict.fromkeys(QUARANTINE_COLUMNS, "str")
    dtypes["ts"] = dtypes["quarantined_at"] = TS_DTYPE
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def empty_quarantine() -> pd.DataFrame:
    """A zero-row quarantine frame with the canonical columns and dtypes."""
    return _empty_quarantine_template().copy()


def validate_bars(
    df: pd.DataFrame, now: pd.Timestamp | None = None, run_id: str | None = None
) -> ValidationResult:
    """Split `df` into canonical valid rows and quarantine rows (`len(valid)+len(quarantine)==len(df)`).

    Lazy: every rule runs on every row and each quarantine row names all the rules it failed.
    `now` (tz-aware; default wall clock) bounds `future_bar`. Raises `ContractError` if a required
    column is missing.
    """
    now_utc = _utc_now() if now is None else _as_utc(now)
    frame, masks = _coerce(df)
    failed: dict[str, np.ndarray] = dict(masks)
    rules = rule_functions(now_utc)
    for code, rule in rules.items():
        if code in ("missing_value", "duplicate_key"):
            continue  # missing is owned by the pre-step; duplicates are judged on good rows only
        failed[code] = ~rule(frame).to_numpy(dtype=bool)
    any_failed = np.logical_or.reduce(list(failed.values()))
    ok_pos = np.flatnonzero(~any_failed)
    dup = np.zeros(len(frame), dtype=bool)
    if len(ok_pos):
        keys = frame[list(BAR_KEY)]
        candidates = keys.iloc[ok_pos] if len(ok_pos) < len(frame) else keys
        dup[ok_pos] = ~rules["duplicate_key"](candidates).to_numpy(dtype=bool)
    failed["duplicate_key"] = dup
    any_failed |= dup

    valid_pos = np.flatnonzero(~any_failed)
    valid_frame = frame if len(valid_pos) == len(frame) else frame.iloc[valid_pos]
    valid = conform_bars(valid_frame)
    bad_pos = np.flatnonzero(any_failed)
    quarantine = _quarantine_rows(df, frame, failed, bad_pos, run_id, now_utc)
    return ValidationResult(valid, quarantine)


def _quarantine_rows(
    raw: pd.DataFrame,
    frame: pd.DataFrame,
    failed: dict[str, np.ndarray],
    pos: np.ndarray,
    run_id: str | None,
    now: pd.Timestamp,
) -> pd.DataFrame:
    if len(pos) == 0:
        return empty_quarantine()
    codes = sorted(failed)
    # encode each row's failed-check set as a bit pattern, then render text once per distinct set
    bits = np.zeros(len(pos), dtype=np.int64)
    for i, code in enumerate(codes):
        bits |= failed[code][pos].astype(np.int64) << i
    patterns, inverse = np.unique(bits, return_inverse=True)
    reasons, details = [], []
    for p in patterns:
        names = [c for i, c in enumerate(codes) if (int(p) >> i) & 1]
        reasons.append(",".join(names))
        details.append("; ".join(DETAILS[c] for c in names))
    out = frame[["symbol", "interval", "ts", "source"]].iloc[pos].reset_index(drop=True)
    n = len(pos)
    out["reason"] = pd.array(np.asarray(reasons, dtype=object)[inverse], dtype="str")
    out["detail"] = pd.array(np.asarray(details, dtype=object)[inverse], dtype="str")
    out["payload"] = pd.array(_payloads(raw.iloc[pos]), dtype="str")
    out["run_id"] = pd.array([run_id] * n, dtype="str")
    stamp = np.full(n, now.tz_convert(None).floor("us").to_datetime64(), dtype="datetime64[us]")
    out["quarantined_at"] = pd.DatetimeIndex(stamp).tz_localize("UTC")
    return out


def _payloads(raw: pd.DataFrame) -> list[str]:
    """Each original row as one JSON object; values JSON cannot hold (inf, timestamps) as strings.

    Built column-wise with pyarrow string kernels; `DataFrame.to_json` is slow on timestamps.
    """
    parts: list[pa_arrow.Array | str] = []
    for i, col in enumerate(raw.columns):
        parts.append(("{" if i == 0 else ",") + json.dumps(str(col)) + ":")
        parts.append(_json_column(raw[col]))
    if not parts:
        return ["{}"] * len(raw)
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "").to_pylist()


def _json_column(s: pd.Series) -> pa_arrow.Array:
    """JSON text of every value of one column (never null: JSON `null` instead)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s):
        return _json_timestamps(s)
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return pa_arrow.array(np.where(s.to_numpy(dtype=bool), "true", "false"))
    if pd.api.types.is_integer_dtype(s):
        values = pa_arrow.array(s.astype("Int64").to_numpy(dtype=object, na_value=None))
        return pc.fill_null(pc.cast(values, pa_arrow.string()), "null")
    if pd.api.types.is_float_dtype(s):
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        text = pc.cast(pa_arrow.array(v), pa_arrow.string())
        for mask, literal in ((np.isnan(v), "null"), (np.isposinf(v), '"inf"')):
            if mask.any():
                text = pc.if_else(pa_arrow.array(mask), literal, text)
        if np.isneginf(v).any():
            text = pc.if_else(pa_arrow.array(np.isneginf(v)), '"-inf"', text)
        return text
    # text and mixed objects: encode each distinct value once
    try:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
    except TypeError:  # unhashable values
        return pa_arrow.array([json.dumps(_json_safe(v), ensure_ascii=False) for v in s])
    encoded = [json.dumps(_json_safe(u), ensure_ascii=False) for u in uniques] + ["null"]
    return pa_arrow.array(np.asarray(encoded, dtype=object)[codes])


def _json_timestamps(s: pd.Series) -> pa_arrow.Array:
    """Quoted ISO 8601 text per timestamp (tz-aware as UTC with `Z`), `null` for NaT."""
    index = pd.DatetimeIndex(s)
    aware = index.tz is not None
    values = index.as_unit("us").asi8.view("datetime64[us]")  # tz-aware asi8 is UTC
    text = pa_arrow.array(np.datetime_as_string(values, unit="us"))
    quoted = pc.binary_join_element_wise('"', text, 'Z"' if aware else '"', "")
    return pc.if_else(pa_arrow.array(np.isnat(values)), "null", quoted)


def _json_safe(v: object) -> object:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else (None if np.isnan(v) else str(float(v)))
    if isinstance(v, str):
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
