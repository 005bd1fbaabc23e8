"""Processing task: one symbol group per task (never one per row)."""

from __future__ import annotations

from datetime import date

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from marketpipe.processing.stage import process_symbols
from marketpipe.storage import Stores
from tasks.policy import RETRYING


@task(name="process", task_run_name="process-{label}", cache_policy=NO_CACHE, **RETRYING)
def process_chunk(
    stores: Stores,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    now: pd.Timestamp,
    hot_days: int,
    label: str,
    resample_to: list[str] | None = None,
) -> dict:
    return process_symbols(
        stores, symbols, start, end, interval, now, hot_days, resample_to
    ).as_dict()
