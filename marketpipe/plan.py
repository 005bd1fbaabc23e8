"""`--dry-run`: what a run would do, checked but not executed (no store is opened, no request made)."""

from __future__ import annotations

from datetime import date

import pandas as pd

from marketpipe.calendar import expected_bar_starts
from marketpipe.errors import ConfigError
from marketpipe.ingest import default_range
from marketpipe.providers import PROVIDER_NAMES
from marketpipe.providers.base import BarsQuery
from marketpipe.settings import Settings
from marketpipe.storage.router import hot_cutoff


def describe_plan(
    settings: Settings,
    stages: list[str],
    mode: str,
    symbols: list[str] | None,
    start: date | None,
    end: date | None,
    interval: str,
    source: str,
    replay_path: str | None,
) -> str:
    """Validate the parameters and describe the plan; raises ConfigError on anything invalid."""
    for name in source.split(","):
        if name not in PROVIDER_NAMES:
            raise ConfigError(f"--source: unknown source {name!r}; use {', '.join(PROVIDER_NAMES)}")
    if "replay" in source.split(",") and not replay_path:
        raise ConfigError("--source replay needs --replay-path FILE")
    today = pd.Timestamp.now(tz="UTC").date()
    start = start or default_range(today)[0]
    end = end or today
    syms = symbols or ["AAPL", "MSFT", "SPY"]
    query = BarsQuery(symbols=tuple(syms), interval=interval, start=start, end=end)
    expected = expected_bar_starts(interval, query.start, query.end)
    cutoff = hot_cutoff(pd.Timestamp.now(tz="UTC"), settings.hot_days)
    hot = int((expected >= cutoff).sum())
    lines = [
        f"dry run: stages={','.join(stages)} mode={mode} source={source} interval={interval}",
        f"  symbols: {', '.join(syms)}",
        f"  range: {start}..{end} → {len(expected)} expected bars per symbol "
        f"({hot} hot, {len(expected) - hot} cold; hot cutoff {cutoff:%Y-%m-%d %H:%M} UTC)",
        f"  hot store: {settings.hot_url_masked}",
        f"  cold lake: {settings.cold_url_resolved}",
        "  nothing was fetched or written",
    ]
    return "\n".join(lines)
