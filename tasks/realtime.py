"""Real-time flush task: one Prefect task run per micro-batch (never per tick)."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from marketpipe.realtime.sink import BarSink, default_flush


@task(name="flush-bars", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[0.2, 1, 2])
def flush_batch(sink: BarSink, bars: pd.DataFrame, quarantine: pd.DataFrame) -> tuple[int, int]:
    return default_flush(sink, bars, quarantine)
