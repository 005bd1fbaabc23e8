"""Pipeline status without Prefect: last runs, freshness, rows per tier, quarantine counts.

`compute_status(stores, now=…)` reads the hot store's `job_runs`/`bars`/`quarantine` tables and the
cold lake's partitions and returns a JSON-safe dict; `marketpipe status` prints it. Data is *stale*
when a symbol's newest daily bar is older than the last closed XNYS session (intraday intervals are
reported but do not make the status stale).

Also here: `non_session_reason(now)`, the check a scheduled daily run uses to skip days that are not
XNYS sessions (weekends are excluded by its cron, holidays are not).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pandas as pd

from marketpipe.calendar import exchange_date

DAILY = "1d"


# ---------------------------------------------------------------- schedule gate
def session_day(now: datetime | pd.Timestamp | None = None) -> date:
    """The exchange-local date of `now` (default: wall clock), e.g. the day a 17:30 NY run is for."""
    return exchange_date(now)


def non_session_reason(
    now: datetime | pd.Timestamp | date | None = None, exchange: str = "XNYS"
) -> str | None:
    """None when `now`'s exchange-local day is a session; else a one-line reason to skip the run."""
    from marketpipe.calendar import is_session

    day = now if isinstance(now, date) and not isinstance(now, datetime) else session_day(now)
    if is_session(day, exchange):
        return None
    return f"{day.isoformat()} ({day:%A}) is not an {exchange} session: nothing to ingest"


# ---------------------------------------------------------------- status
def _iso(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp | datetime):
        ts = pd.Timestamp(value)
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return ts.tz_convert("UTC").isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def json_safe(value: Any) -> Any:
    """Recursively turn timestamps, numpy scalars, NaN etc. into JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if hasattr(value, "item") and not isinstance(value, pd.Timestamp):  # numpy scalar
        return json_safe(value.item())
    return _iso(value)


def last_runs(jobs: Iterable[dict]) -> list[dict]:
    """The newest `job_runs` row per job (input newest first, as `recent_jobs` returns it)."""
    seen: dict[str, dict] = {}
    for job in jobs:
        name = str(job.get("job"))
        if name in seen:
            continue
        seen[name] = {
            "job": name,
            "status": job.get("status"),
            "started_at": _iso(job.get("started_at")),
            "finished_at": _iso(job.get("finished_at")),
            "flow_run_id": job.get("flow_run_id"),
            "counts": json_safe(job.get("counts") or {}),
            "chunks_done": json_safe(job.get("chunks_done")),
            "chunks_total": json_safe(job.get("chunks_total")),
            "error": (str(job["error"]).splitlines() or [""])[0][:300]
            if job.get("error")
            else None,
        }
    return sorted(seen.values(), key=lambda j: j["job"])


def freshness(
    last_bars: dict[tuple[str, str], pd.Timestamp | None],
    expected_session: date,
    symbols: Iterable[str] | None = None,
    interval: str = DAILY,
) -> list[dict]:
    """Per symbol: newest bar of `interval` vs the last closed session.

    `last_bars` maps (symbol, interval) → newest bar start (UTC). Daily bars are stamped at the
    session date's midnight UTC, so a daily bar is fresh when its date ≥ `expected_session`.
    Symbols in `symbols` without any bar are reported as missing (stale).
    """
    wanted = sorted(
        set(symbols) if symbols is not None else {s for s, i in last_bars if i == interval}
    )
    out = []
    for sym in wanted:
        last = last_bars.get((sym, interval))
        if last is None or pd.isna(last):
            out.append(
                {
                    "symbol": sym,
                    "interval": interval,
                    "last_bar": None,
                    "expected_session": expected_session.isoformat(),
                    "sessions_behind": None,
                    "stale": True,
                }
            )
            continue
        last = pd.Timestamp(last)
        last = last.tz_localize("UTC") if last.tzinfo is None else last.tz_convert("UTC")
        last_day = last.date()
        behind = _sessions_behind(last_day, expected_session)
        out.append(
            {
                "symbol": sym,
                "interval": interval,
                "last_bar": last.isoformat(),
                "expected_session": expected_session.isoformat(),
                "sessions_behind": behind,
                "stale": last_day < expected_session if interval == DAILY else None,
            }
        )
    return out


def _sessions_behind(last_day: date, expected: date) -> int:
    if last_day >= expected:
        return 0
    from marketpipe.calendar import sessions

    got = sessions(pd.Timestamp(last_day) + pd.Timedelta(days=1), pd.Timestamp(expected))
    return int(len(got))


def newest_bars(stores) -> tuple[dict[tuple[str, str], pd.Timestamp], dict[str, dict[str, int]]]:
    """({(symbol, interval): newest ts over hot ∪ cold}, {tier: {interval: rows}})."""
    newest: dict[tuple[str, str], pd.Timestamp] = {}
    tiers: dict[str, dict[str, int]] = {"hot": {}, "cold": {}}
    stats = stores.hot.stats()
    for row in stats.itertuples(index=False):
        key = (str(row.symbol), str(row.interval))
        tiers["hot"][key[1]] = tiers["hot"].get(key[1], 0) + int(row.rows)
        if not pd.isna(row.max_ts):
            newest[key] = _later(newest.get(key), pd.Timestamp(row.max_ts))
    newest_year: dict[tuple[str, str], int] = {}
    for part in stores.cold.partitions():
        key = (str(part.symbol), str(part.interval))
        tiers["cold"][key[1]] = tiers["cold"].get(key[1], 0) + int(part.rows)
        newest_year[key] = max(newest_year.get(key, part.year), part.year)
    for (sym, interval), year in newest_year.items():
        # hot rows are always newer than cold ones; only read the lake for symbols not in hot
        if (sym, interval) in newest:
            continue
        keys = stores.cold.partition_keys(interval, sym, year)
        if len(keys):
            newest[(sym, interval)] = _later(None, pd.Timestamp(keys.max()))
    return newest, tiers


def _later(a: pd.Timestamp | None, b: pd.Timestamp) -> pd.Timestamp:
    b = b.tz_localize("UTC") if b.tzinfo is None else b.tz_convert("UTC")
    return b if a is None or b > a else a


def compute_status(
    stores,
    now: datetime | pd.Timestamp | None = None,
    symbols: Iterable[str] | None = None,
    jobs_limit: int = 200,
) -> dict:
    """Everything `marketpipe status` shows, JSON-safe. `stale` is True when any daily series lags.

    `symbols` (default: every symbol with daily bars in either tier) are the ones checked for
    freshness; a requested symbol without data counts as stale.
    """
    from marketpipe.calendar import last_closed_session

    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    expected = last_closed_session(now_ts)
    newest, tiers = newest_bars(stores)
    syms = list(symbols) if symbols is not None else None
    fresh = freshness(newest, expected, syms, DAILY)
    intraday = sorted({i for _, i in newest if i != DAILY})
    for interval in intraday:
        wanted = [s for s, i in newest if i == interval and (syms is None or s in syms)]
        fresh += freshness(newest, expected, wanted, interval)
    quarantine_symbols = sorted({f["symbol"] for f in fresh})
    quarantine = {
        "total": int(stores.hot.count_quarantine()),
        "by_symbol": {s: int(stores.hot.count_quarantine(symbols=[s])) for s in quarantine_symbols},
    }
    stale = [f["symbol"] for f in fresh if f["stale"]]
    return json_safe(
        {
            "now": now_ts.tz_convert("UTC").isoformat(),
            "last_closed_session": expected.isoformat(),
            "stale": bool(stale),
            "stale_symbols": stale,
            "last_runs": last_runs(stores.hot.recent_jobs(jobs_limit)),
            "freshness": fresh,
            "rows": {
                "hot": tiers["hot"],
                "cold": tiers["cold"],
                "total": sum(tiers["hot"].values()) + sum(tiers["cold"].values()),
            },
            "quarantine": quarantine,
        }
    )


def format_status(status: dict) -> str:
    """A human-readable report of `compute_status` output."""
    lines = [
        f"status at {status['now']} (last closed XNYS session {status['last_closed_session']}): "
        + ("STALE " + ", ".join(status["stale_symbols"]) if status["stale"] else "fresh")
    ]
    lines.append("last runs:")
    if not status["last_runs"]:
        lines.append("  (none)")
    for run in status["last_runs"]:
        when = run["finished_at"] or run["started_at"] or "?"
        err = f"  error: {run['error']}" if run["error"] else ""
        lines.append(f"  {run['job']:<12} {run['status']:<10} {when}{err}")
    lines.append("freshness:")
    if not status["freshness"]:
        lines.append("  (no data)")
    for f in status["freshness"]:
        flag = {True: "STALE", False: "ok", None: "-"}[f["stale"]]
        behind = "" if not f["sessions_behind"] else f" ({f['sessions_behind']} sessions behind)"
        lines.append(
            f"  {f['symbol']:<8} {f['interval']:<4} last bar {f['last_bar'] or 'none'}  "
            f"{flag}{behind}"
        )
    rows = status["rows"]
    for tier in ("hot", "cold"):
        per = ", ".join(f"{k}: {v}" for k, v in sorted(rows[tier].items())) or "0"
        lines.append(f"rows {tier}: {per}")
    q = status["quarantine"]
    per = ", ".join(f"{k}: {v}" for k, v in q["by_symbol"].items() if v)
    lines.append(f"quarantined rows: {q['total']}" + (f" ({per})" if per else ""))
    return "\n".join(lines)
