"""Backfill task: a group of chunks (symbol group × session window) fetched, checked, stored, recorded."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from marketpipe.backfill import Chunk
from marketpipe.backfill_pipeline import run_chunks
from marketpipe.settings import Settings
from marketpipe.storage import Stores
from tasks.policy import RETRYING
from tasks.ratelimits import reserve_slots


@task(
    name="backfill-chunks",
    task_run_name="fetch-{source}-{label}",
    cache_policy=NO_CACHE,
    **RETRYING,
)
def backfill_chunks(
    stores: Stores,
    settings: Settings,
    source: str,
    interval: str,
    chunks: list[Chunk],
    job_key: str,
    now: pd.Timestamp,
    run_id: str,
    label: str,
    options: dict | None = None,
) -> list[dict]:
    # a group of chunks per task: requests overlap storage, task overhead is paid once per group
    reserve_slots(source, sum(c.requests for c in chunks), settings)
    return run_chunks(stores, settings, source, interval, chunks, job_key, now, run_id, options)
