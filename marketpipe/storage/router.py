"""The storage router: which rows go hot (PostgreSQL/SQLite) and which go cold (Parquet lake).

`plan_writes` is pure: the same rows, `now` and `hot_days` always give the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from marketpipe.bars import empty_bars


@dataclass(frozen=True)
class WritePlan:
    """Rows split by tier; `cutoff` is the first instant that is still hot."""

    hot: pd.DataFrame
    cold: pd.DataFrame
    cutoff: pd.Timestamp

    @property
    def rows(self) -> int:
        return len(self.hot) + len(self.cold)


def hot_cutoff(now: pd.Timestamp, hot_days: int) -> pd.Timestamp:
    """Rows with `ts >= now - hot_days` are hot."""
    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    return now - pd.Timedelta(days=hot_days)


def plan_writes(bars: pd.DataFrame, now: pd.Timestamp, hot_days: int) -> WritePlan:
    """Send rows with `ts >= now - hot_days` hot and older rows cold. Every row lands in exactly one."""
    if hot_days < 0:
        raise ValueError("hot_days must be >= 0")
    cutoff = hot_cutoff(now, hot_days)
    if bars.empty:
        return WritePlan(hot=empty_bars(), cold=empty_bars(), cutoff=cutoff)
    is_hot = (bars["ts"] >= cutoff).to_numpy()
    return WritePlan(
        hot=bars.loc[is_hot].reset_index(drop=True),
        cold=bars.loc[~is_hot].reset_index(drop=True),
        cutoff=cutoff,
    )
