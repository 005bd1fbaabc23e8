"""Named jobs with two profiles (embedded and PostgreSQL + S3): validate, run and deploy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def mp(env, *args):
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


@pytest.fixture
def jobs_file(tmp_path, pg_url, s3_bucket, moto_server) -> Path:
    cold_url, _ = s3_bucket
    spec = {
        "universes": {"megacaps": ["AAPL", "MSFT"], "one": ["SPY"]},
        "jobs": {
            "daily": {
                "source": "synthetic",
                "universe": "megacaps",
                "interval": "1d",
                "stages": ["ingestion"],
                "schedule": "30 17 * * 1-5",
                "timezone": "America/New_York",
            },
            "spy-adhoc": {"symbols": ["SPY"], "interval": "1d"},
        },
        "profiles": {
            "dev": {"data_dir": "devdata", "hot_days": 20},
            "prod": {
                "hot_url": pg_url,
                "cold_url": cold_url,
                "s3_endpoint_url": moto_server,
                "hot_days": 5,
            },
        },
        "default_profile": "dev",
    }
    path = tmp_path / "marketpipe.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def env(tmp_path):
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETPIPE_", "POLYGON_"))}
    out["MARKETPIPE_DATA_DIR"] = str(tmp_path / "envdata")  # a profile's data_dir wins over it
    return out


def test_a_good_jobs_file_validates(env, jobs_file):
    res = mp(env, "validate", "--config", str(jobs_file))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == f"{jobs_file}: ok"


def test_each_problem_is_one_line(env, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "universes": {"u": ["AAPL"]},
                "jobs": {
                    "a": {"universe": "nosuch", "intervall": "1d"},
                    "b": {"symbols": ["MSFT"], "interval": "2m", "schedule": "61 * * * *"},
                },
                "profiles": {
                    "down": {"hot_url": "postgresql+psycopg://postgres@127.0.0.1:9/x"},
                    "typo": {"hot_dayz": 3},
                },
            }
        )
    )
    res = mp(env, "validate", "--config", str(bad))
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.strip().splitlines()
    assert any("jobs.a.intervall: unknown key" in line for line in lines), lines
    assert any("jobs.b.interval" in line and "'2m'" in line for line in lines), lines
    assert any("jobs.b.schedule" in line and "minute" in line for line in lines), lines
    assert lines[-1] == f"{bad}: 3 problem(s)"
    # structure fixed: now the semantic problems show, one line each
    bad.write_text(
        yaml.safe_dump(
            {
                "universes": {"u": ["AAPL"]},
                "jobs": {"a": {"universe": "nosuch"}},
                "profiles": {
                    "down": {"hot_url": "postgresql+psycopg://postgres@127.0.0.1:9/x"},
                    "typo": {"hot_dayz": 3},
                    "neg": {"hot_days": -1},
                },
            }
        )
    )
    res = mp(env, "validate", "--config", str(bad))
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 1
    assert any("jobs.a.universe: unknown universe 'nosuch'" in line for line in lines), lines
    assert any("profiles.typo: unknown setting 'hot_dayz'" in line for line in lines), lines
    assert any("profiles.neg: MARKETPIPE_HOT_DAYS" in line for line in lines), lines
    # only the semantic problems are reported while there are any; then the stores
    bad.write_text(
        yaml.safe_dump(
            {"profiles": {"down": {"hot_url": "postgresql+psycopg://postgres@127.0.0.1:9/x"}}}
        )
    )
    res = mp(env, "validate", "--config", str(bad))
    assert res.returncode == 1
    assert "profiles.down: hot store" in res.stdout and "not reachable" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_unknown_job_or_profile_is_bad_input(env, jobs_file):
    res = mp(env, "run", "--job", "nosuch", "--config", str(jobs_file))
    assert res.returncode == 2 and "unknown job 'nosuch'" in res.stderr
    res = mp(env, "run", "--job", "daily", "--profile", "qa", "--config", str(jobs_file))
    assert res.returncode == 2 and "unknown profile 'qa'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = mp(env, "run", "--job", "daily", "--symbols", "IBM", "--config", str(jobs_file))
    assert res.returncode == 2 and "drop --symbols" in res.stderr


def test_dry_run_of_a_job(env, jobs_file):
    res = mp(env, "run", "--job", "daily", "--dry-run", "--config", str(jobs_file))
    assert res.returncode == 0, res.stderr
    assert "job daily" in res.stdout and "symbols: AAPL, MSFT" in res.stdout
    assert str(jobs_file.parent / "devdata") in res.stdout  # the default profile's stores
    assert not (jobs_file.parent / "devdata").exists()


def test_job_runs_on_both_profiles(env, jobs_file, prefect_server):
    from prefect.settings import PREFECT_API_URL

    import marketpipe as mp_api

    env = dict(env, PREFECT_API_URL=PREFECT_API_URL.value())
    spec = yaml.safe_load(jobs_file.read_text())
    for profile in ("dev", "prod"):
        res = mp(env, "run", "--job", "daily", "--profile", profile, "--config", str(jobs_file))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "AAPL" in res.stdout and "MSFT" in res.stdout
    dev = {"data_dir": str(jobs_file.parent / "devdata")}
    prod = spec["profiles"]["prod"]
    for overrides in (dev, prod):
        got = mp_api.sql("SELECT DISTINCT symbol FROM bars ORDER BY 1", overrides=overrides)
        assert list(got["symbol"]) == ["AAPL", "MSFT"]
    # hot_days differs per profile: 20 days hot on dev, 5 on prod
    n_hot = mp_api.sql("SELECT count(*) AS n FROM bars", overrides=dev)["n"].iloc[0]
    assert n_hot > 0
    assert not Path(env["MARKETPIPE_DATA_DIR"]).exists()  # the profile's stores were used


def test_scheduled_jobs_become_deployments(jobs_file, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    from deployments.jobs import deploy_jobs, job_deployments

    built = job_deployments(str(jobs_file))
    assert [d.name for d in built] == ["job-daily"]  # spy-adhoc has no schedule
    (d,) = built
    assert d.parameters == {"job": "daily", "profile": "dev", "config": str(jobs_file.resolve())}
    assert d.schedules[0].schedule.cron == "30 17 * * 1-5"
    assert d.schedules[0].schedule.timezone == "America/New_York"
    assert d.entrypoint == "flows.jobs.run_job"

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool("marketpipe")
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name="marketpipe", type="process"))
    ids = deploy_jobs(str(jobs_file))
    assert list(ids) == ["job/job-daily"]
    assert deploy_jobs(str(jobs_file)) == ids  # re-deploying keeps the id
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("job/job-daily")
    assert dep.parameters["job"] == "daily" and dep.work_pool_name == "marketpipe"
    assert dep.schedules and dep.schedules[0].schedule.cron == "30 17 * * 1-5"


def test_job_flow_runs_a_job(jobs_file, prefect_server):
    from flows.jobs import run_job

    reports = run_job(job="spy-adhoc", profile="dev", config=str(jobs_file))
    assert [r["symbol"] for r in reports["ingestion"]["rows"]] == ["SPY"]
