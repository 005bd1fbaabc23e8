"""The `job` flow: run a named job of `marketpipe.yaml` (what the job deployments run).

A deployment takes the job's name (and profile) as parameters; the job is resolved when the run
starts, so editing the jobs file changes the next run without re-deploying.
"""

from __future__ import annotations

from prefect import flow

from flows.pipeline import pipeline
from marketpipe.api import check_run, overrides_applied
from marketpipe.jobs import job_run_parameters


@flow(name="job", log_prints=True)
def run_job(job: str, profile: str | None = None, config: str | None = None) -> dict:
    """Run job `job` of the jobs file `config` (default ./marketpipe.yaml) with `profile`."""
    params, overrides = job_run_parameters(job, profile, config)
    with overrides_applied(overrides) as settings:
        params = check_run(settings, **params)
        return pipeline(**params)
