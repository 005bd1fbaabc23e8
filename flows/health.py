"""The `health-check` flow (deployment `health-check`): score the pipeline, emit alert events.

Reads the stores (and, if reachable, the exporter's metrics) and emits one Prefect event per
alert (`marketpipe.alerts`); the automations `make deploy` creates notify a person.
"""

from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger
from prefect.events import emit_event

from marketpipe.alerts import evaluate
from marketpipe.health import Thresholds, live_stages, scrape, store_health
from marketpipe.settings import load_settings
from marketpipe.storage import open_stores


@flow(name="health-check", log_prints=True)
def health_check(metrics_urls: list[str] | None = None, sample_s: float = 5.0) -> dict:
    """Health score + alerts; `metrics_urls` (e.g. the exporter's) add live thresholds."""
    settings = load_settings()
    thresholds = Thresholds.from_settings(settings)
    live = None
    if metrics_urls:
        import time

        prev, _ = scrape(metrics_urls)
        t0 = time.monotonic()
        time.sleep(sample_s)  # the rates' sampling window
        cur, _ = scrape(metrics_urls)
        live = live_stages(prev, cur, time.monotonic() - t0) if cur else None
    stores = open_stores(settings)
    try:
        health = store_health(stores, thresholds, now=pd.Timestamp.now(tz="UTC"), live=live)
    finally:
        stores.close()
    alerts = evaluate(health, thresholds, live, health.stale_symbols)
    logger = get_run_logger()
    for a in alerts:
        emit_event(
            event=a.event,
            resource={"prefect.resource.id": a.resource_id, "prefect.resource.name": a.message},
            payload=a.payload | {"message": a.message},
        )
        logger.warning("alert %s: %s", a.event, a.message)
    logger.info(health.line())
    return {"health": health.to_dict(), "alerts": [a.message for a in alerts]}
