"""The job_runs lifecycle for flows not yet on the run scope (`flows/maintenance.py`).

New flows use `flows._publish.flow_run(job)`, whose `run.job(params)` is this same lifecycle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pandas as pd

from flows._publish import current_flow_run_id, publish_table
from marketpipe.run_scope import RunScope
from marketpipe.storage import Stores

__all__ = ["current_flow_run_id", "job_run", "publish_table"]


@contextlib.contextmanager
def job_run(stores: Stores, job: str, params: dict, flow_run_id: str) -> Iterator[dict]:
    """Record a `job_runs` row: started now, then success with counts or failure with the error.

    Yields a dict the flow fills with counts; it becomes the row's `counts`.
    """
    scope = RunScope(job, None, stores, flow_run_id, pd.Timestamp.now(tz="UTC"))
    with scope.job(params) as counts:
        yield counts
