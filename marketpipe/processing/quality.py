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
from marketpipe.calendar import session_labels
from marketpipe.coverage import calendar_expected, series_coverage, session_closes

__all__ = ["calendar_expected", "count_quarantined", "quality_scores"]

Expected = Mapping[tuple[str, dt.date], int] | Callable[[str, dt.date], int] | None


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
    session = session_labels(ts, q["interval"])
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
    # naive datetime64 sessions internally, `datetime.date` on output
    out = series_coverage(bars, sessions, now)

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
    closes = session_closes(out["session"])
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


def _outlier_counts(bars: pd.DataFrame, flags: pd.DataFrame | None) -> pd.DataFrame:
    if flags is not None:
        src = flags[["symbol", "interval", "ts"]]
    elif "outlier_flags" in bars.columns:
        src = bars.loc[bars["outlier_flags"].fillna("") != "", ["symbol", "interval", "ts"]]
    else:
        src = bars.iloc[:0][["symbol", "interval", "ts"]]
    src = src.drop_duplicates()
    src = src.assign(session=session_labels(src["ts"], src["interval"]))
    return (
        src.groupby(["symbol", "interval", "session"], as_index=False)
        .size()
        .rename(columns={"size": "outliers"})
    )
