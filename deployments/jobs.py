"""A Prefect deployment for each scheduled job of `marketpipe.yaml` (`python -m deployments.jobs`,
run by `make deploy` after the bootstrap).

Each deployment is `job/job-{name}`: the `job` flow (flows/jobs.py) with the job's name, profile
and the absolute path of the jobs file as parameters, the job's cron schedule in its time zone,
on the `marketpipe` process work pool. Re-running updates them in place (same ids).
"""

from __future__ import annotations

import argparse
import sys

WORK_POOL = "marketpipe"


def deployment_name(job: str) -> str:
    return f"job-{job}"


def job_deployments(config: str | None = None, profile: str | None = None) -> list:
    """The RunnerDeployment objects (not yet applied) for every scheduled job."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.jobs import run_job
    from marketpipe.jobs import scheduled_jobs

    path, spec, names = scheduled_jobs(config)
    out = []
    for name in names:
        job = spec.jobs[name]
        chosen = profile or job.profile or spec.default_profile
        out.append(
            run_job.to_deployment(
                name=deployment_name(name),
                schedules=[Cron(job.schedule, timezone=job.timezone)],
                parameters={"job": name, "profile": chosen, "config": str(path.resolve())},
                description=job.description or f"marketpipe job {name!r} ({path.name})",
                tags=["marketpipe", "job", name],
                work_pool_name=WORK_POOL,
                job_variables={"env": {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}},
                entrypoint_type=EntrypointType.MODULE_PATH,  # the worker imports flows.jobs
            )
        )
    return out


def deploy_jobs(config: str | None = None, profile: str | None = None) -> dict[str, str]:
    """Create or update the job deployments; {flow/deployment: id}."""
    ids = {}
    for deployment in job_deployments(config, profile):
        ids[f"job/{deployment.name}"] = str(deployment.apply(work_pool_name=WORK_POOL))
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.jobs", description=__doc__)
    parser.add_argument("--config", help="Jobs file (default ./marketpipe.yaml).")
    parser.add_argument("--profile", help="Profile for every job (default: each job's own).")
    args = parser.parse_args(argv)
    from marketpipe.errors import MarketpipeError
    from marketpipe.jobs import config_path

    if not config_path(args.config).is_file():
        print(f"jobs: no {config_path(args.config)}; no job deployments")
        return 0
    try:
        ids = deploy_jobs(args.config, args.profile)
    except MarketpipeError as exc:
        print(f"jobs: error: {exc}", file=sys.stderr)
        return 1
    for name, id_ in ids.items():
        print(f"  deployment {name}: {id_}")
    if not ids:
        print("jobs: no scheduled jobs; no job deployments")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
