"""The canonical bars frame: column names, dtypes and helpers every layer shares.

`ts` is the bar *start* in UTC. Prices are raw (unadjusted). Vendor field names never appear here.
`session` is the exchange session date of the bar (a date, no time zone): the XNYS-local
(America/New_York) date of an intraday bar's start, the UTC date of a daily bar's `ts` (daily bars
are keyed at 00:00 UTC of their session date). It is derived from `ts` and `interval` by
`conform_bars` (the value of `marketpipe.calendar.session_dates`), never taken from input, so it
cannot disagree with `ts`; every bars table stores it so that day-level SQL needs no time zones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

BAR_KEY: tuple[str, ...] = ("symbol", "interval", "ts")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
BAR_COLUMNS: tuple[str, ...] = (
    "symbol",
    "interval",
    "ts",
    "session",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trades",
    "source",
)
DERIVED_COLUMNS: tuple[str, ...] = ("session",)  # computed from ts + interval, never input
# may be absent from an input frame (nulls, or derived, are filled in)
OPTIONAL_COLUMNS: tuple[str, ...] = ("vwap", "trades", *DERIVED_COLUMNS)
TS_DTYPE = "datetime64[us, UTC]"
SESSION_DTYPE = "date32[day][pyarrow]"  # Arrow date32 (lake, ADBC), SQL DATE (hot store)
EXCHANGE_TZ = "America/New_York"
BAR_DTYPES: dict[str, str] = {
    "symbol": "str",
    "interval": "str",
    "ts": TS_DTYPE,
    "session": SESSION_DTYPE,
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "vwap": "float64",
    "trades": "Int64",
    "source": "str",
}
INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "1h", "1d")  # what providers are asked for
# bars the real-time aggregator builds (windows that divide a minute); stored like any other
SUB_MINUTE_INTERVALS: tuple[str, ...] = tuple(
    f"{s}s" for s in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
)
STORED_INTERVALS: tuple[str, ...] = SUB_MINUTE_INTERVALS + INTERVALS
# every rejected row, whatever rejected it (contract, adapter, real-time lateness)
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "interval",
    "ts",
    "source",
    "reason",
    "detail",
    "payload",
    "run_id",
    "quarantined_at",
)
# processing output: one quality row per (symbol, interval, session)
QUALITY_COLUMNS: tuple[str, ...] = (
    "symbol",
    "interval",
    "session",
    "expected",
    "present",
    "missing",
    "quarantined",
    "outliers",
    "staleness_s",
    "score",
    "computed_at",
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def interval_offset(interval: str) -> pd.Timedelta:
    """The length of an interval name `<n><s|m|h|d>` (`1s`, `30m`, `1h`, `1d`); ValueError else."""
    text = str(interval)
    n, unit = text[:-1], text[-1:]
    if not n.isdigit() or int(n) <= 0 or unit not in _UNITS:
        raise ValueError(f"not an interval: {text[:20]!r}")
    return pd.Timedelta(**{_UNITS[unit]: int(n)})


# every stored interval's length (sub-minute bars included: they are first-class everywhere)
INTERVAL_OFFSETS: dict[str, pd.Timedelta] = {i: interval_offset(i) for i in STORED_INTERVALS}


_DAY_US = 86_400_000_000
_FIVE_HOURS_US = 5 * 3_600_000_000


def session_column(ts: pd.Series, interval: pd.Series | str) -> pd.Series:
    """The `session` of each bar (`SESSION_DTYPE`), vectorised; equals
    `marketpipe.calendar.session_dates(ts, interval)` per interval.

    Fast path: a UTC instant at or after 05:00 UTC has the same New York date as its UTC date
    (New York is 4 or 5 hours behind), so only earlier instants of intraday bars are converted.
    """
    us = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("us").asi8
    nat = us == np.iinfo(np.int64).min
    day = np.floor_divide(us, _DAY_US)
    if isinstance(interval, str):
        intraday = np.full(len(day), interval != "1d")
    else:
        intraday = np.asarray(interval != "1d", dtype=bool)
    early = intraday & ~nat & ((us - day * _DAY_US) < _FIVE_HOURS_US)
    if early.any():
        local = pd.DatetimeIndex(us[early].astype("datetime64[us]")).tz_localize("UTC")
        local = local.tz_convert(EXCHANGE_TZ).tz_localize(None)
        day[early] = local.as_unit("us").asi8 // _DAY_US
    values = pa.array(day.astype(np.int32), mask=nat, type=pa.int32()).cast(pa.date32())
    return pd.Series(values, index=ts.index, dtype=pd.ArrowDtype(pa.date32()))


def keys_unique(bars: pd.DataFrame) -> bool:
    """True when no (symbol, interval, ts) repeats, proven in one vectorised pass for the usual
    shape (each symbol-interval one run, ts increasing inside it); False = not proven."""
    if len(bars) < 2:
        return True
    ts = pd.DatetimeIndex(bars["ts"]).asi8
    sym, iv = pa.array(bars["symbol"].array), pa.array(bars["interval"].array)
    change = pc.or_(
        pc.not_equal(sym.slice(1), sym.slice(0, len(sym) - 1)),
        pc.not_equal(iv.slice(1), iv.slice(0, len(iv) - 1)),
    ).to_numpy(zero_copy_only=False)
    if not (change | (ts[1:] > ts[:-1])).all():
        return False
    starts = np.r_[0, np.flatnonzero(change) + 1]
    if len(starts) > 100_000:
        return False
    runs = pa.table({"s": sym.take(pa.array(starts)), "i": iv.take(pa.array(starts))})
    return runs.group_by(["s", "i"]).aggregate([]).num_rows == len(starts)


def empty_bars() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=BAR_DTYPES[c]) for c in BAR_COLUMNS})


_TS = pd.Series(dtype=TS_DTYPE).dtype
_DTYPES = {c: pd.Series(dtype=t).dtype for c, t in BAR_DTYPES.items()}


def conform_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Return `df` with exactly the canonical columns, in order, cast to canonical dtypes.

    Optional columns (`vwap`, `trades`) are added as nulls when absent; `session` is (re)computed
    from `ts` and `interval`. Raises `KeyError` naming the first missing required column. Values
    must already be clean; use the contract for that.
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise KeyError(f"bars frame lacks column(s) {', '.join(missing)}")
    cols: dict[str, pd.Series] = {}
    for col in BAR_COLUMNS:
        if col == "session":
            continue
        if col in df.columns:
            s = df[col].reset_index(drop=True)
        else:
            s = pd.Series(pd.NA if col == "trades" else float("nan"), index=range(len(df)))
        if col == "ts":
            if s.dtype != _TS:
                s = pd.to_datetime(s, utc=True).astype(TS_DTYPE)
        elif s.dtype != _DTYPES[col]:
            s = s.astype(BAR_DTYPES[col])
        cols[col] = s
    cols["session"] = session_column(cols["ts"], cols["interval"])
    # one frame from whole columns (setting them one by one costs a block insert each)
    return pd.DataFrame({c: cols[c] for c in BAR_COLUMNS}, copy=False)
