"""Symbol × session coverage: the one place that compares stored bars with the bars the calendar
expects (Prefect-free). Everything that reports "how complete is the data" derives from it:

- `window_coverage(bars, quarantine, symbols, interval, start, end, now)` → one row per symbol and
  session in a fixed window: `symbol, interval, session (date), expected, present, quarantined`.
  *expected*: bars complete by `now` (`calendar.expected_per_session`); *present*: distinct stored
  bars at expected starts; *quarantined*: quarantine rows of that symbol and session.
- `completeness_rows(...)` (per symbol totals + freshness vs the last closed session: the flows'
  `*-completeness` artifacts), `coverage_states(...)` (the coverage picture's cell states),
- `series_coverage(bars, sessions, now)` → per stored `(symbol, interval)` series, every session
  from its first to its last bar: `expected`, `present` (bars starting in regular hours) and
  `last_end`, from which `processing.quality` scores sessions.

Session membership, bar starts and counts come from `marketpipe.calendar`; nothing here knows
an exchange's hours.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from marketpipe.bars import INTERVAL_OFFSETS
from marketpipe.calendar import (
    bar_schedule,
    expected_per_session,
    session_date,
    session_dates,
    session_labels,
    session_schedule,
    sessions,
)

COVERAGE_COLUMNS = ("symbol", "interval", "session", "expected", "present", "quarantined")
STATES = ("present", "partial", "quarantined", "missing")


# ---------------------------------------------------------------- a fixed window
def _per_symbol_session(frame: pd.DataFrame, interval: str) -> pd.Series:
    """Row counts keyed by (symbol, session date)."""
    if frame is None or len(frame) == 0:
        return pd.Series(dtype="int64")
    days = session_dates(frame["ts"], interval).astype(object)
    key = pd.MultiIndex.from_arrays([frame["symbol"].astype(str).to_numpy(), days])
    return pd.Series(1, index=key).groupby(level=[0, 1]).sum()


def _valid_ts(frame: pd.DataFrame | None, symbols: list[str]) -> pd.DataFrame | None:
    if frame is None or len(frame) == 0:
        return None
    f = frame.loc[frame["symbol"].astype(str).isin(symbols), ["symbol", "ts"]]
    ts = pd.to_datetime(f["ts"], utc=True, errors="coerce")
    return f.assign(ts=ts)[ts.notna()]


def window_coverage(
    bars: pd.DataFrame,
    quarantine: pd.DataFrame | None,
    symbols: Iterable[str],
    interval: str,
    start: dt.date,
    end: dt.date,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Coverage of `[start, end]` (session dates, inclusive): one row per symbol × session."""
    symbols = list(dict.fromkeys(str(s) for s in symbols))
    schedule = bar_schedule(interval, start, end)
    if now is not None:
        schedule = schedule[(schedule["end"] <= pd.Timestamp(now).tz_convert("UTC")).to_numpy()]
    labels = sessions(start, end)
    expected = schedule.groupby("session").size().reindex(labels, fill_value=0)
    days = [d.date() for d in labels]
    grid = pd.MultiIndex.from_product([symbols, days], names=["symbol", "session"])
    out = pd.DataFrame(index=grid).reset_index()
    out.insert(1, "interval", interval)
    out["expected"] = np.tile(expected.to_numpy(), len(symbols)).astype("int64")

    have = _valid_ts(bars, symbols)
    if have is not None and len(have):
        have = have.drop_duplicates(["symbol", "ts"])
        wanted = pd.DatetimeIndex(schedule["ts"]).as_unit("us").asi8
        have = have[np.isin(pd.DatetimeIndex(have["ts"]).as_unit("us").asi8, wanted)]
    present = _per_symbol_session(have, interval)
    quarantined = _per_symbol_session(_valid_ts(quarantine, symbols), interval)
    key = pd.MultiIndex.from_frame(out[["symbol", "session"]])
    out["present"] = present.reindex(key, fill_value=0).to_numpy().astype("int64")
    out["quarantined"] = quarantined.reindex(key, fill_value=0).to_numpy().astype("int64")
    return out[list(COVERAGE_COLUMNS)]


def completeness_rows(
    coverage: pd.DataFrame,
    last_bars: dict[str, pd.Timestamp | None],
    quarantined: dict[str, int],
    interval: str,
    last_closed: dt.date,
) -> list[dict]:
    """Per symbol: expected, present, missing, quarantined, last bar vs the last closed session."""
    totals = coverage.groupby("symbol", sort=False)[["expected", "present"]].sum()
    rows = []
    for sym in dict.fromkeys(coverage["symbol"]) if len(coverage) else last_bars:
        exp = int(totals.loc[sym, "expected"]) if sym in totals.index else 0
        pres = int(totals.loc[sym, "present"]) if sym in totals.index else 0
        last = last_bars.get(sym)
        last_session = session_date(last, interval) if last is not None else None
        rows.append(
            {
                "symbol": sym,
                "interval": interval,
                "expected": exp,
                "present": pres,
                "missing": exp - pres,
                "quarantined": int(quarantined.get(sym, 0)),
                "last_bar": last.isoformat() if last is not None else None,
                "last_closed_session": str(last_closed),
                "fresh": bool(last_session is not None and last_session >= last_closed),
            }
        )
    return rows


def coverage_states(coverage: pd.DataFrame, symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """symbols × sessions (with expected bars) of `present | partial | quarantined | missing`.

    *present*: every expected bar is stored; *quarantined*: bars are missing and rows for the
    session sit in quarantine; *partial*: some are stored; *missing*: none.
    """
    symbols = list(dict.fromkeys(symbols if symbols is not None else coverage["symbol"]))
    cov = coverage[coverage["expected"] > 0]
    days = list(dict.fromkeys(cov["session"]))
    matrix = pd.DataFrame("missing", index=pd.Index(symbols, name="symbol"), columns=days)
    if cov.empty:
        return matrix
    state = np.select(
        [
            cov["present"] >= cov["expected"],
            cov["quarantined"] > 0,
            cov["present"] > 0,
        ],
        ["present", "quarantined", "partial"],
        "missing",
    )
    wide = (
        pd.DataFrame({"symbol": cov["symbol"], "session": cov["session"], "state": state})
        .pivot(index="symbol", columns="session", values="state")
        .reindex(index=symbols, columns=days)
    )
    return wide.fillna("missing").rename_axis(index="symbol", columns=None)


def coverage_matrix(
    bars: pd.DataFrame,
    quarantine: pd.DataFrame | None,
    symbols: Iterable[str],
    interval: str,
    start: dt.date,
    end: dt.date,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """`coverage_states` of `window_coverage`: the coverage picture's cells."""
    symbols = list(dict.fromkeys(symbols))
    frame = window_coverage(bars, quarantine, symbols, interval, start, end, now=now)
    return coverage_states(frame, symbols)


# ---------------------------------------------------------------- stored series
def series_coverage(
    bars: pd.DataFrame, sessions_: list[dt.date] | None, now: pd.Timestamp
) -> pd.DataFrame:
    """Per `(symbol, interval)` in `bars`, every session from its first to its last bar's session
    (plus `sessions_`): `symbol, interval, session (naive datetime64), present, last_end`.

    present counts distinct bars starting within the session's regular hours (daily bars always);
    last_end is the end of the session's last bar (start + interval, a daily bar's session close).
    """
    b = bars[["symbol", "interval", "ts"]].drop_duplicates()
    b = b.assign(session=session_labels(b["ts"], b["interval"]))
    b["end"] = _bar_ends(b)
    b["regular"] = _in_regular_hours(b)
    present = b.groupby(["symbol", "interval", "session"], as_index=False).agg(
        present=("regular", "sum"), last_end=("end", "max")
    )
    grid = _session_grid(present, sessions_)
    out = grid.merge(present, how="left", on=["symbol", "interval", "session"])
    out["present"] = out["present"].fillna(0).astype("int64")
    return out


def calendar_expected(interval: str, session: dt.date, now: pd.Timestamp | None = None) -> int:
    """Bars the calendar expects for `interval` in `session`, counting only bars ended by `now`."""
    counts = expected_per_session(interval, session, session, now=now)
    return int(counts.iloc[0]) if len(counts) else 0


def session_closes(days: pd.Series) -> pd.Series:
    """Close (UTC) of each naive session date; non-sessions get their date's midnight UTC."""
    if days.empty:
        return pd.Series(pd.NaT, index=days.index, dtype="datetime64[ns, UTC]")
    sched = session_schedule(days.min(), days.max())["close"]
    closes = sched.reindex(days.to_numpy()).set_axis(days.index)
    return closes.fillna(days.dt.tz_localize("UTC"))


def _bar_ends(b: pd.DataFrame) -> pd.Series:
    end = b["ts"] + b["interval"].map(INTERVAL_OFFSETS).astype("timedelta64[us]")
    daily = (b["interval"] == "1d").to_numpy()
    if daily.any():
        closes = session_closes(b.loc[daily, "session"])
        end.loc[daily] = closes.fillna(end.loc[daily])
    return end


def _us(ts: pd.Series) -> np.ndarray:
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.to_numpy().astype("datetime64[us]").view(np.int64)


def _in_regular_hours(b: pd.DataFrame) -> np.ndarray:
    """Daily bars always; intraday bars when their start lies in the session's `[open, close)`."""
    days = b["session"]
    if days.empty:
        return np.zeros(0, dtype=bool)
    sched = session_schedule(days.min(), days.max())
    opens = sched["open"].reindex(days.to_numpy())
    closes = sched["close"].reindex(days.to_numpy())
    ts = _us(b["ts"])
    inside = opens.notna().to_numpy() & (ts >= _us(opens)) & (ts < _us(closes))
    return (b["interval"] == "1d").to_numpy() | inside


def _session_grid(present: pd.DataFrame, extra_sessions: list[dt.date] | None) -> pd.DataFrame:
    parts = []
    extra = pd.DatetimeIndex(pd.to_datetime(list(extra_sessions or ())))
    for (sym, ivl), grp in present.groupby(["symbol", "interval"], sort=True):  # per series
        days = pd.DatetimeIndex(grp["session"])
        days = days.union(sessions(days.min(), days.max())).union(extra)
        parts.append(pd.DataFrame({"symbol": sym, "interval": ivl, "session": days}))
    if not parts:
        frame = pd.DataFrame({c: pd.Series(dtype="str") for c in ("symbol", "interval")})
        return frame.assign(session=pd.Series(dtype="datetime64[ns]"))
    grid = pd.concat(parts, ignore_index=True)
    return grid.assign(session=grid["session"].astype("datetime64[ns]"))
