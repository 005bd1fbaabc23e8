"""Helpers every flow uses: the run id, job_runs lifecycle and artifact publishing."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.context import get_run_context

from marketpipe import metrics
from marketpipe.storage import Stores


def current_flow_run_id() -> str:
    """The Prefect flow run id (or a fresh uuid outside a run)."""
    with contextlib.suppress(Exception):
        ctx = get_run_context()
        run = getattr(ctx, "flow_run", None)
        if run is not None:
            return str(run.id)
    return str(uuid.uuid4())


@contextlib.contextmanager
def job_run(stores: Stores, job: str, params: dict, flow_run_id: str) -> Iterator[dict]:
    """Record a `job_runs` row: started now, then success with counts or failure with the error.

    Yields a dict the flow fills with counts; it becomes the row's `counts`.
    """
    counts: dict = {}
    job_id = stores.hot.start_job(job, params, flow_run_id=flow_run_id)
    counts["_job_id"] = job_id
    try:
        with metrics.track_job(job):
            yield counts
    except BaseException as exc:
        counts.pop("_job_id", None)
        status = "cancelled" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
        stores.hot.finish_job(job_id, status, counts, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    counts.pop("_job_id", None)
    stores.hot.finish_job(job_id, "success", counts, error=None)


def publish_table(key: str, rows: list[dict], description: str) -> None:
    """A table artifact (JSON-safe values only); logged, never fatal to the run."""
    try:
        create_table_artifact(table=rows, key=key, description=description)
    except Exception as exc:  # artifact storage problems must not fail a data run
        get_run_logger().warning("could not publish artifact %s: %s", key, exc)
