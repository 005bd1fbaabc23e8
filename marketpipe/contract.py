"""The Bars contract: the pandera schema `BarsSchema` and `validate_bars`, which splits a frame into
valid rows and quarantine rows, one per rejected input row, every failed check named by its code.

pandera is the engine: `validate_bars` runs the schema lazily (`validate(lazy=True)`, every check
on every row) and reads each failed check's row mask from the `SchemaErrors` it raises, so a
quarantine row lists every code it failed. Each check is one vectorised dataframe-level
`pandera.Check` named by its reason code (`n_failure_cases` caps only pandera's message; the full
mask is `SchemaError.check_output`).

How a frame is checked
----------------------
1. Shape: a frame without a required column raises `ContractError` naming it (nothing is written).
2. Parse step (`marketpipe.contract_parse`): numbers, timestamps and text are read without
   crashing; `missing_value`, `not_numeric`, `bad_timestamp` are recorded there.
3. Row rules (the schema's checks) run on the parsed frame. A value the parse step rejected is
   NaN/NaT there, and every rule treats NaN as "not my failure", so one broken cell yields one reason.
   - values: `price_not_finite`, `price_not_positive`, `volume_not_finite`, `volume_negative`, and
     `out_of_range` — a finite price (`open/high/low/close/vwap`) above `MAX_PRICE` (1e9) or a
     `volume` / `trades` above `MAX_VOLUME` (1e15). The bounds sit far above any real quote (the
     dearest US share trades below 1e6; a KRW-priced bitcoin near 1.5e8) and far below where
     derived values overflow (price x volume <= 1e24, squared prices <= 1e18).
   - the OHLC envelope: `high_lt_open_close`, `low_gt_open_close`, `high_lt_low`.
   - keys: `future_bar` (starts after `now`), `bad_symbol`, `bad_interval`.
   - sessions (`marketpipe.calendar.bar_start_flags`, XNYS): `not_a_session` — an intraday bar
     outside every session's `[open, close)`, or a daily bar whose session date is not a session;
     `misaligned` — inside a session but not `open + k x interval` (`1h` bars start 09:30, 10:30, …
     ET; sub-minute bars on whole seconds of their width), or a daily bar not stamped 00:00 UTC. A
     daily timestamp is mapped to its session by the exchange-local date (00:00 UTC itself means
     that UTC date), so `2024-01-03T20:00-05:00` is the 2024-01-03 session but `misaligned`, and a
     `+09:00` local-midnight stamp is never moved to the session before.
4. `duplicate_key` runs last (a second pandera schema), over rows that passed every other rule:
   the first *good* occurrence of a `(symbol, interval, ts)` key is kept and later ones are
   quarantined, so a broken first copy never causes a good later copy to be lost.

`float NaN` cannot be told apart from "missing" in a float column, so NaN prices are
`missing_value`; `price_not_finite` / `volume_not_finite` are for ±inf.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa

from marketpipe.bars import (
    BAR_KEY,
    PRICE_COLUMNS,
    QUARANTINE_COLUMNS,
    STORED_INTERVALS,
    TS_DTYPE,
    conform_bars,
)
from marketpipe.calendar import bar_start_flags
from marketpipe.contract_parse import PARSE_CODES, REQUIRED_COLUMNS, parse_bars
from marketpipe.errors import ContractError
from marketpipe.quarantine import empty_quarantine, quarantine_rows
from marketpipe.symbols import SYMBOL_PATTERN, is_valid_symbol

__all__ = [
    "BarsSchema",
    "MAX_PRICE",
    "MAX_VOLUME",
    "QUARANTINE_COLUMNS",
    "REASON_CODES",
    "RULE_CODES",
    "ValidationResult",
    "build_bars_schema",
    "empty_quarantine",
    "validate_bars",
]

VWAP_PRICE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "vwap")
COUNT_COLUMNS: tuple[str, ...] = ("volume", "trades")
MAX_PRICE = 1e9
MAX_VOLUME = 1e15
EXCHANGE = "XNYS"
N_FAILURE_CASES = 10  # per check, in pandera's message only

RULE_CODES: tuple[str, ...] = (
    "price_not_finite",
    "price_not_positive",
    "volume_not_finite",
    "volume_negative",
    "out_of_range",
    "high_lt_open_close",
    "low_gt_open_close",
    "high_lt_low",
    "future_bar",
    "bad_symbol",
    "bad_interval",
    "not_a_session",
    "misaligned",
    "duplicate_key",
)
REASON_CODES: tuple[str, ...] = (*PARSE_CODES, *RULE_CODES)

DETAILS: dict[str, str] = {
    "missing_value": "a required field is empty",
    "not_numeric": "a numeric field is not a number",
    "bad_timestamp": "ts is unparseable, numeric or naive (needs a UTC offset)",
    "price_not_finite": "a price (open/high/low/close/vwap) is infinite",
    "price_not_positive": "a price (open/high/low/close/vwap) is <= 0",
    "volume_not_finite": "volume or trades is infinite",
    "volume_negative": "volume or trades is negative",
    "out_of_range": f"a price is above {MAX_PRICE:g} or volume/trades above {MAX_VOLUME:g}",
    "high_lt_open_close": "high < max(open, close)",
    "low_gt_open_close": "low > min(open, close)",
    "high_lt_low": "high < low",
    "future_bar": "bar starts after now",
    "bad_symbol": f"symbol is not {SYMBOL_PATTERN} (ASCII, <=32 chars, no '..' or '//')",
    "bad_interval": f"interval is not one of {', '.join(STORED_INTERVALS)}",
    "not_a_session": f"bar is outside every {EXCHANGE} session (daily: by exchange-local date)",
    "misaligned": "ts is not a bar start of its interval (open + k x interval; daily: 00:00 UTC)",
    "duplicate_key": "(symbol, interval, ts) repeats an earlier row",
}


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


def check_bad_interval(df: pd.DataFrame, memo: _FrameMemo | None = None) -> pd.Series:
    codes, uniques = _intervals(df, memo)
    good = np.fromiter((u in STORED_INTERVALS for u in uniques), dtype=bool, count=len(uniques))
    # NaN (code -1) passes: missing intervals are `missing_value`
    return pd.Series(np.append(good, True)[codes], index=df.index)


def check_out_of_range(df: pd.DataFrame) -> pd.Series:
    """Finite values beyond the magnitude bounds (inf is `*_not_finite`, NaN is not mine)."""
    price = _fails_any(df, VWAP_PRICE_COLUMNS, lambda v: np.isfinite(v) & (v > MAX_PRICE))
    count = _fails_any(df, COUNT_COLUMNS, lambda v: np.isfinite(v) & (v > MAX_VOLUME))
    return price & count


class _FrameMemo:
    """Work several checks share within one validation, done once per frame: the interval
    column's factorisation and the session flags. Keyed by a weak reference to the frame pandera
    hands to each check; one memo serves one `validate_bars` call (never shared across threads)."""

    def __init__(self) -> None:
        self._ref: weakref.ref | None = None
        self._values: dict[str, object] = {}

    def get(self, df: pd.DataFrame, key: str, compute: Callable[[], object]):
        if self._ref is None or self._ref() is not df:
            self._ref, self._values = weakref.ref(df), {}
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]


def _cached(memo: _FrameMemo | None, df: pd.DataFrame, key: str, compute: Callable[[], object]):
    return compute() if memo is None else memo.get(df, key, compute)


def _intervals(df: pd.DataFrame, memo: _FrameMemo | None = None) -> tuple[np.ndarray, pd.Index]:
    return _cached(memo, df, "intervals", lambda: pd.factorize(df["interval"]))


def _session_flags(
    df: pd.DataFrame, memo: _FrameMemo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(not_a_session, misaligned) failure masks, computed per distinct interval."""
    return _cached(memo, df, "sessions", lambda: _compute_session_flags(df, memo))


def _compute_session_flags(df: pd.DataFrame, memo: _FrameMemo | None) -> tuple[np.ndarray, ...]:
    n = len(df)
    outside, misaligned = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    codes, intervals = _intervals(df, memo)
    ts = df["ts"]
    for k, interval in enumerate(intervals):
        if interval not in STORED_INTERVALS:
            continue  # bad_interval's failure
        rows = None if len(intervals) == 1 and codes.min() == 0 else np.flatnonzero(codes == k)
        part = ts if rows is None else ts.iloc[rows]
        in_session, aligned = bar_start_flags(part, interval, EXCHANGE)
        bad_place = ~in_session
        bad_start = ~aligned & (in_session | (interval == "1d"))
        if rows is None:
            outside, misaligned = bad_place, bad_start
        else:
            outside[rows], misaligned[rows] = bad_place, bad_start
    return outside, misaligned


def check_not_a_session(df: pd.DataFrame, memo: _FrameMemo | None = None) -> pd.Series:
    return pd.Series(~_session_flags(df, memo)[0], index=df.index)


def check_misaligned(df: pd.DataFrame, memo: _FrameMemo | None = None) -> pd.Series:
    return pd.Series(~_session_flags(df, memo)[1], index=df.index)


def make_future_bar_check(now: pd.Timestamp | None = None) -> Callable[[pd.DataFrame], pd.Series]:
    """`now=None` means wall-clock time when the check runs."""

    def check_future_bar(df: pd.DataFrame) -> pd.Series:
        limit = _utc_now() if now is None else _as_utc(now)
        return ~(df["ts"] > limit).fillna(False).astype(bool)

    return check_future_bar


def rule_functions(
    now: pd.Timestamp | None = None, memo: _FrameMemo | None = None
) -> dict[str, Callable]:
    """Reason code -> vectorised check (True = row passes). Order = evaluation order."""
    return {
        "missing_value": check_missing_value,
        "price_not_finite": check_price_not_finite,
        "price_not_positive": check_price_not_positive,
        "volume_not_finite": check_volume_not_finite,
        "volume_negative": check_volume_negative,
        "out_of_range": check_out_of_range,
        "high_lt_open_close": check_high_lt_open_close,
        "low_gt_open_close": check_low_gt_open_close,
        "high_lt_low": check_high_lt_low,
        "future_bar": make_future_bar_check(now),
        "bad_symbol": check_bad_symbol,
        "bad_interval": partial(check_bad_interval, memo=memo),
        "not_a_session": partial(check_not_a_session, memo=memo),
        "misaligned": partial(check_misaligned, memo=memo),
        "duplicate_key": check_duplicate_key,
    }


_COLUMNS: dict[str, tuple[object, bool]] = {  # name -> (dtype, required)
    "symbol": (str, True),
    "interval": (str, True),
    "ts": (TS_DTYPE, True),
    "open": ("float64", True),
    "high": ("float64", True),
    "low": ("float64", True),
    "close": ("float64", True),
    "volume": ("float64", True),
    "vwap": ("float64", False),
    "trades": ("Int64", False),
    "source": (str, True),
}


def _schema(
    checks: dict[str, Callable],
    name: str,
    columns: tuple[str, ...] = tuple(_COLUMNS),
    dtypes: dict[str, object] | None = None,
) -> pa.DataFrameSchema:
    """Columns are nullable at the dtype level because nulls are reported by the named
    `missing_value` check (required columns only), not by pandera's generic `not_nullable`.
    `ignore_na=False`: each rule decides about NaN itself (and pandera's NaN pass costs a scan)."""
    spec = {
        col: pa.Column((dtypes or {}).get(col, dtype), nullable=True, required=required)
        for col, (dtype, required) in _COLUMNS.items()
        if col in columns
    }
    return pa.DataFrameSchema(
        spec,
        checks=[
            pa.Check(
                fn, name=code, element_wise=False, ignore_na=False, n_failure_cases=N_FAILURE_CASES
            )
            for code, fn in checks.items()
        ],
        name=name,
        strict=False,
    )


def build_bars_schema(now: pd.Timestamp | None = None) -> pa.DataFrameSchema:
    """The pandera schema for canonical bars, every check named by its reason code (for frames
    that are already parsed; `validate_bars` runs the same checks, the key check last)."""
    return _schema(rule_functions(now), "Bars")


BarsSchema: pa.DataFrameSchema = build_bars_schema()
Bars = BarsSchema
# what `validate_bars` runs: the row rules (missing values are the parse step's), then the key
_ROW_RULES = tuple(c for c in rule_functions() if c not in ("missing_value", "duplicate_key"))
_KEY_SCHEMA = _schema({"duplicate_key": check_duplicate_key}, "BarsKey", BAR_KEY)


def _row_schema(now: pd.Timestamp) -> pa.DataFrameSchema:
    """Built per call (~1 ms), with its own memo, so concurrent validations share nothing."""
    rules = rule_functions(now, _FrameMemo())
    # the parse step keeps `trades` float64 (an infinite count is volume_not_finite, not a crash)
    checks = {code: rules[code] for code in _ROW_RULES}
    return _schema(checks, "BarsRows", dtypes={"trades": "float64"})


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Run `schema` lazily; {check name: failed-row mask over `frame`} for every failed check."""
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        out: dict[str, np.ndarray] = {}
        for err in exc.schema_errors:
            name = getattr(err.check, "name", None)
            if name not in RULE_CODES or err.check_output is None:  # dtype, shape: a bug here
                raise ContractError(f"bars frame failed the Bars schema: {err}") from None
            out[name] = ~err.check_output.to_numpy(dtype=bool)
        return out
    return {}


# --------------------------------------------------------------------------- validate
def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ContractError(f"now={ts} is naive; pass a time-zone-aware timestamp")
    return ts.tz_convert("UTC")


def validate_bars(
    df: pd.DataFrame, now: pd.Timestamp | None = None, run_id: str | None = None
) -> ValidationResult:
    """Split `df` into canonical valid rows and quarantine rows (`len(valid)+len(quarantine)==len(df)`).

    Lazy: every rule runs on every row and each quarantine row names all the rules it failed.
    `now` (tz-aware; default wall clock) bounds `future_bar`. Raises `ContractError` if a required
    column is missing.
    """
    now_utc = _utc_now() if now is None else _as_utc(now)
    frame, masks = parse_bars(df)
    failed: dict[str, np.ndarray] = dict(masks)
    for code in _ROW_RULES:
        failed[code] = np.zeros(len(frame), dtype=bool)
    failed.update(_failures(_row_schema(now_utc), frame))
    any_failed = np.logical_or.reduce(list(failed.values()))
    ok_pos = np.flatnonzero(~any_failed)
    dup = np.zeros(len(frame), dtype=bool)
    if len(ok_pos):
        keys = frame[list(BAR_KEY)]
        candidates = keys.iloc[ok_pos] if len(ok_pos) < len(frame) else keys
        found = _failures(_KEY_SCHEMA, candidates).get("duplicate_key")
        if found is not None:
            dup[ok_pos] = found
    failed["duplicate_key"] = dup
    any_failed |= dup

    valid_pos = np.flatnonzero(~any_failed)
    valid_frame = frame if len(valid_pos) == len(frame) else frame.iloc[valid_pos]
    valid = conform_bars(valid_frame)
    bad_pos = np.flatnonzero(any_failed)
    quarantine = quarantine_rows(df, frame, failed, DETAILS, bad_pos, run_id, now_utc)
    return ValidationResult(valid, quarantine)
