"""The Bars contract's rules: one vectorised check per reason code (True = the row passes).

NaN never fails a rule (the parse step owns missing and unreadable values). The checks are run by
pandera, as `pandera.Check`s of the schema `marketpipe.contract` builds; see that module for what
each code means and how a frame is checked.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from marketpipe.bars import PRICE_COLUMNS, STORED_INTERVALS
from marketpipe.calendar import bar_start_flags
from marketpipe.contract_parse import REQUIRED_COLUMNS
from marketpipe.errors import ContractError
from marketpipe.symbols import is_valid_symbol

VWAP_PRICE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "vwap")
COUNT_COLUMNS: tuple[str, ...] = ("volume", "trades")
MAX_PRICE = 1e9
MAX_VOLUME = 1e15
EXCHANGE = "XNYS"


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


def check_bad_interval(df: pd.DataFrame, memo: FrameMemo | None = None) -> pd.Series:
    codes, uniques = _intervals(df, memo)
    good = np.fromiter((u in STORED_INTERVALS for u in uniques), dtype=bool, count=len(uniques))
    # NaN (code -1) passes: missing intervals are `missing_value`
    return pd.Series(np.append(good, True)[codes], index=df.index)


def check_out_of_range(df: pd.DataFrame) -> pd.Series:
    """Finite values beyond the magnitude bounds (inf is `*_not_finite`, NaN is not mine)."""
    price = _fails_any(df, VWAP_PRICE_COLUMNS, lambda v: np.isfinite(v) & (v > MAX_PRICE))
    count = _fails_any(df, COUNT_COLUMNS, lambda v: np.isfinite(v) & (v > MAX_VOLUME))
    return price & count


class FrameMemo:
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


def _cached(memo: FrameMemo | None, df: pd.DataFrame, key: str, compute: Callable[[], object]):
    return compute() if memo is None else memo.get(df, key, compute)


def _intervals(df: pd.DataFrame, memo: FrameMemo | None = None) -> tuple[np.ndarray, pd.Index]:
    return _cached(memo, df, "intervals", lambda: pd.factorize(df["interval"]))


def _session_flags(
    df: pd.DataFrame, memo: FrameMemo | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(not_a_session, misaligned) failure masks, computed per distinct interval."""
    return _cached(memo, df, "sessions", lambda: _compute_session_flags(df, memo))


def _compute_session_flags(df: pd.DataFrame, memo: FrameMemo | None) -> tuple[np.ndarray, ...]:
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


def check_not_a_session(df: pd.DataFrame, memo: FrameMemo | None = None) -> pd.Series:
    return pd.Series(~_session_flags(df, memo)[0], index=df.index)


def check_misaligned(df: pd.DataFrame, memo: FrameMemo | None = None) -> pd.Series:
    return pd.Series(~_session_flags(df, memo)[1], index=df.index)


def make_future_bar_check(now: pd.Timestamp | None = None) -> Callable[[pd.DataFrame], pd.Series]:
    """`now=None` means wall-clock time when the check runs."""

    def check_future_bar(df: pd.DataFrame) -> pd.Series:
        limit = utc_now() if now is None else as_utc(now)
        return ~(df["ts"] > limit).fillna(False).astype(bool)

    return check_future_bar


def rule_functions(
    now: pd.Timestamp | None = None, memo: FrameMemo | None = None
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


def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ContractError(f"now={ts} is naive; pass a time-zone-aware timestamp")
    return ts.tz_convert("UTC")
