"""Data-quality score per `(symbol, interval, session)`.

Columns: `symbol, interval, session (datetime.date), expected, present, missing, quarantined,
outliers, staleness_s, score, computed_at`.

Definitions
-----------
* session: the XNYS session of a bar (exchange-local date for intraday bars, UTC date for `1d`).
  Scored sessions: for every `(symbol, interval)` in `bars`, each calendar session from its first to
  its last bar's session, plus `sessions` when given (so wholly missing sessions show up).
* expected: `expected[(interval, session)]` from a mapping, `expected(interval, session)` from a
  callable, or, when `None`, from the calendar: intraday bars whose whole span `[start, start+step)`
  lies in `[open, min(close, now))` with starts aligned to the open, plus a shorter last bar when
  the session length is not a multiple of the interval (e.g. 1h: 15:30-16:00); for `1d`, 1 once
  the session has closed by `now`, else 0.
* present: distinct bars in the session (intraday: only bars starting within regular hours);
  missing = max(expected - present, 0).
* quarantined: rows rejected by the contract for the session (`quarantined_counts`).
* outliers: distinct flagged bars (from `flags`, else the bars' non-empty `outlier_flags`).
* staleness_s: only for each series' latest scored session, unless that session is complete and
  closed: `now - end of the latest bar at or before that session` (0 when no bar exists yet or
  when negative); 0 for every other session.

Score (in [0, 1])::

    completeness = min(present, expected) / expected          (1 when expected == 0)
    clean_share  = 1 - quarantined / (present + quarantined)  (1 when both are 0)
    outlier_free = 1 - outliers / present                     (1 when present == 0)
    freshness    = 1 if staleness_s <= grace else grace / staleness_s,  grace = 2 x interval
    score        = completeness * clean_share * outlier_free * freshness
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from marketpipe.bars import INTERVAL_OFFSETS, QUALITY_COLUMNS
from marketpipe.processing._calendar import schedule, session_dates
from marketpipe.processing._window import to_us

Expected = Mapping[tuple[str, dt.date], int] | Callable[[str, dt.date], int] | None


def calendar_expected(interval: str, session: dt.date, now: pd.Timestamp | None = None) -> int:
    """Bars the calendar expects for `interval` in `session`, counting only bars ended by `now`."""
    sched = schedule(session, session)
    if sched.empty:
        return 0
    open_, close = sched["open"].iloc[0], sched["close"].iloc[0]
    limit = close if now is None else min(close, pd.Timestamp(now))
    if interval == "1d":
        return int(limit >= close)
    step = INTERVAL_OFFSETS[interval]
    if limit <= open_:
        return 0
    full = (limit - open_) // step
    partial_end = open_ + ((close - open_) // step) * step  # start of a short last bar, if any
    short_last = partial_end < close and limit >= close
    return int(full + short_last)


def _expected_lookup(expected: Expected, now: pd.Timestamp) -> Callable[[str, dt.date], int]:
    if expected is None:
        return lambda interval, session: calendar_expected(interval, session, now)
    if callable(expected):
        return expected
    return lambda interval, session: int(expected.get((interval, session), 0))


def _counts_frame(counts, name: str) -> pd.DataFrame:
    """Mapping `{(symbol, interval, session): n}` or a frame with those columns -> frame."""
    cols = ["symbol", "interval", "session", name]
    if counts is None or len(counts) == 0:
        frame = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        return frame.astype({"session": "datetime64[ns]", name: "int64"})
    if isinstance(counts, pd.DataFrame):
        frame = counts.rename(columns={c: name for c in ("quarantined", "count", "n")})[cols]
    else:
        frame = pd.DataFrame([(*k, int(v)) for k, v in counts.items()], columns=cols)
    return frame.assign(session=pd.to_datetime(frame["session"]).astype("datetime64[ns]"))


def count_quarantined(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantine rows (`symbol, interval, ts, ...`) -> `symbol, interval, session, quarantined`."""
    q = quarantine.dropna(subset=["ts"])
    ts = pd.to_datetime(q["ts"], utc=True)
    session = session_dates(ts, q["interval"])
    frame = pd.DataFrame({"symbol": q["symbol"], "interval": q["interval"], "session": session})
    out = frame.groupby(["symbol", "interval", "session"], as_index=False).size()
    out["session"] = out["session"].dt.date
    return out.rename(columns={"size": "quarantined"})


def quality_scores(
    bars: pd.DataFrame,
    expected: Expected = None,
    quarantined_counts=None,
    flags: pd.DataFrame | None = None,
    now: pd.Timestamp | None = None,
    sessions: list[dt.date] | None = None,
) -> pd.DataFrame:
    """Score every `(symbol, interval, session)`; see the module docstring for the formula."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    b = bars[["symbol", "interval", "ts"]].drop_duplicates()
    day = session_dates(b["ts"], b["interval"]).astype("datetime64[ns]")
    b = b.assign(session=day)  # naive datetime64 internally, `datetime.date` on output
    b["end"] = _bar_ends(b)

    b["regular"] = _in_regular_hours(b)
    present = b.groupby(["symbol", "interval", "session"], as_index=False).agg(
        present=("regular", "sum"), last_end=("end", "max")
    )
    grid = _session_grid(present, sessions)
    out = grid.merge(present, how="left", on=["symbol", "interval", "session"])
    out["present"] = out["present"].fillna(0).astype("int64")

    out_flags = _outlier_counts(bars, flags)
    quar = _counts_frame(quarantined_counts, "quarantined")
    for extra, col in ((out_flags, "outliers"), (quar, "quarantined")):
        out = out.merge(extra, how="left", on=["symbol", "interval", "session"])
        out[col] = out[col].fillna(0).astype("int64")

    lookup = _expected_lookup(expected, now)
    pairs = out[["interval", "session"]].drop_duplicates()
    exp = [int(lookup(i, s.date())) for i, s in pairs.itertuples(index=False)]  # per session
    pairs = pairs.assign(expected=exp)
    out = out.merge(pairs, how="left", on=["interval", "session"])
    out["missing"] = (out["expected"] - out["present"]).clip(lower=0)

    out = out.sort_values(["symbol", "interval", "session"], kind="mergesort")
    out["last_end"] = out.groupby(["symbol", "interval"])["last_end"].ffill()
    latest = ~out.duplicated(["symbol", "interval"], keep="last")
    closes = _session_closes(out["session"])
    complete = (closes <= now).to_numpy() & (out["missing"] == 0).to_numpy()
    age = (now - out["last_end"]).dt.total_seconds().fillna(0.0).clip(lower=0.0)
    out["staleness_s"] = np.where(latest & ~complete, age, 0.0)

    exp_n, pres = out["expected"].to_numpy(float), out["present"].to_numpy(float)
    quar_n, outl = out["quarantined"].to_numpy(float), out["outliers"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        completeness = np.where(exp_n > 0, np.minimum(pres, exp_n) / exp_n, 1.0)
        clean_share = np.where(pres + quar_n > 0, 1.0 - quar_n / (pres + quar_n), 1.0)
        outlier_free = np.where(pres > 0, 1.0 - np.minimum(outl, pres) / pres, 1.0)
        grace = 2.0 * out["interval"].map(INTERVAL_OFFSETS).dt.total_seconds().to_numpy()
        stale = out["staleness_s"].to_numpy()
        freshness = np.where(stale <= grace, 1.0, grace / stale)
    out["score"] = np.clip(completeness * clean_share * outlier_free * freshness, 0.0, 1.0)
    out["computed_at"] = now
    out["session"] = out["session"].dt.date
    return out[list(QUALITY_COLUMNS)].reset_index(drop=True)


def _bar_ends(b: pd.DataFrame) -> pd.Series:
    """Bar end: start + interval for intraday bars, the session's close for daily bars."""
    end = b["ts"] + b["interval"].map(INTERVAL_OFFSETS).astype("timedelta64[us]")
    daily = (b["interval"] == "1d").to_numpy()
    if daily.any():
        closes = _session_closes(b.loc[daily, "session"])
        end.loc[daily] = closes.fillna(end.loc[daily])
    return end


def _in_regular_hours(b: pd.DataFrame) -> np.ndarray:
    """Daily bars always; intraday bars when their start lies in the session's `[open, close)`."""
    days = b["session"]
    if days.empty:
        return np.zeros(0, dtype=bool)
    sched = schedule(days.min(), days.max())
    opens = sched["open"].reindex(days.to_numpy())
    closes = sched["close"].reindex(days.to_numpy())
    ts = to_us(b["ts"])
    inside = opens.notna().to_numpy() & (ts >= to_us(opens)) & (ts < to_us(closes))
    return (b["interval"] == "1d").to_numpy() | inside


def _session_closes(days: pd.Series) -> pd.Series:
    """Close (UTC) of each naive session date; non-sessions get their date's midnight UTC."""
    if days.empty:
        return pd.Series(pd.NaT, index=days.index, dtype="datetime64[ns, UTC]")
    sched = schedule(days.min(), days.max())["close"]
    closes = sched.reindex(days.to_numpy()).set_axis(days.index)
    return closes.fillna(days.dt.tz_localize("UTC"))


def _session_grid(present: pd.DataFrame, sessions: list[dt.date] | None) -> pd.DataFrame:
    """Every calendar session between each series' first and last session, plus `sessions`."""
    parts = []
    extra = pd.DatetimeIndex(pd.to_datetime(list(sessions or ())))
    for (sym, ivl), grp in present.groupby(["symbol", "interval"], sort=True):  # per series
        days = pd.DatetimeIndex(grp["session"])
        days = days.union(schedule(days.min(), days.max()).index).union(extra)
        parts.append(pd.DataFrame({"symbol": sym, "interval": ivl, "session": days}))
    if not parts:
        frame = pd.DataFrame({c: pd.Series(dtype="str") for c in ("symbol", "interval")})
        return frame.assign(session=pd.Series(dtype="datetime64[ns]"))
    grid = pd.concat(parts, ignore_index=True)
    return grid.assign(session=grid["session"].astype("datetime64[ns]"))


def _outlier_counts(bars: pd.DataFrame, flags: pd.DataFrame | None) -> pd.DataFrame:
    if flags is not None:
        src = flags[["symbol", "interval", "ts"]]
    elif "outlier_flags" in bars.columns:
        src = bars.loc[bars["outlier_flags"].fillna("") != "", ["symbol", "interval", "ts"]]
    else:
        src = bars.iloc[:0][["symbol", "interval", "ts"]]
    src = src.drop_duplicates()
    src = src.assign(session=session_dates(src["ts"], src["interval"]).astype("datetime64[ns]"))
    return (
        src.groupby(["symbol", "interval", "session"], as_index=False)
        .size()
        .rename(columns={"size": "outliers"})
    )
