"""Ingestion tasks: one task per request chunk (a symbol group and date range), never per row."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from marketpipe import ingest
from marketpipe.providers import fetch_from
from marketpipe.providers.base import BarsQuery, FetchResult
from marketpipe.settings import Settings
from marketpipe.storage import Stores
from tasks.policy import RETRYING, STORE_RETRYING
from tasks.ratelimits import reserve_slots


@task(name="fetch", task_run_name="fetch-{source}-{label}", cache_policy=NO_CACHE, **RETRYING)
def fetch_chunk(
    source: str, query: BarsQuery, settings: Settings, label: str, options: dict | None = None
) -> FetchResult:
    reserve_slots(source, len(query.symbols), settings)
    return fetch_from(source, query, settings, options)


@task(name="validate", task_run_name="validate-{label}", cache_policy=NO_CACHE)
def check_chunk(
    result: FetchResult, now: pd.Timestamp, run_id: str, label: str
) -> ingest.CheckedBatch:
    return ingest.check_batch(result, now=now, run_id=run_id)


@task(name="store", task_run_name="store-{label}", cache_policy=NO_CACHE, **STORE_RETRYING)
def store_chunk(
    stores: Stores,
    batch: ingest.CheckedBatch,
    now: pd.Timestamp,
    hot_days: int,
    symbols: tuple[str, ...],
    label: str,
    watermark_source: str | None = None,
) -> ingest.StoredBatch:
    return ingest.store_batch(stores, batch, now, hot_days, symbols, watermark_source)
