"""Scheduling end to end on the production-shaped server (`make server`: Prefect on PostgreSQL).

1. `python -m deployments.bootstrap` (what `make deploy` runs) against the live server; then the
   server's scheduler creates SCHEDULED runs for every deployment prefect.yaml schedules, within a
   bound, and the server log holds no ERROR / traceback / "database is locked".
2. A deployment scheduled a minute ahead is picked up by a real `prefect worker start --pool
   marketpipe` subprocess and completes, writing bars into the store of the `marketpipe-hot`
   block (the worker has no store settings); after the block changes, the next deployment run
   writes to the new store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.ops.conftest import ROOT, project_env

pytestmark = pytest.mark.slow


def _scheduled_deployments() -> set[str]:
    from deployments.bootstrap import load_prefect_yaml

    return {
        d["name"]
        for d in load_prefect_yaml()["deployments"]
        if any(s.get("active", True) for s in d.get("schedules") or [])
    }


@pytest.fixture(scope="module")
def deployed(live_server, tmp_path_factory):
    data = tmp_path_factory.mktemp("mp-data")
    env = project_env(
        PREFECT_API_URL=live_server.api_url,
        MARKETPIPE_DATA_DIR=str(data),
        # not the data dir's default file: a run writing here read the marketpipe-hot block
        MARKETPIPE_HOT_URL=f"sqlite:///{data / 'block-hot.db'}",
        MARKETPIPE_COLD_URL=str(data / "block-lake"),
    )
    env.pop("MARKETPIPE_METRICS_PORT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "deployments.bootstrap"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env, proc.stdout


def _runs_by_deployment(client, state: str | None = "SCHEDULED") -> dict[str, list]:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    deps = {d.id: d.name for d in client.read_deployments()}
    flt = None
    if state:
        flt = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[state])))
    out: dict[str, list] = {}
    for run in client.read_flow_runs(flow_run_filter=flt, limit=200):
        if run.deployment_id in deps:
            out.setdefault(deps[run.deployment_id], []).append(run)
    return out


def test_scheduler_creates_runs_for_every_scheduled_deployment(live_server, deployed):
    from prefect.client.orchestration import get_client

    _, out = deployed
    wanted = _scheduled_deployments()
    assert wanted == {"daily-ingestion", "nightly-maintenance", "realtime-session", "health-check"}
    for name in wanted:
        assert f"/{name}: " in out  # bootstrap reported the deployment

    deadline = time.monotonic() + 60  # the scheduler loops every 2 s here
    with get_client(sync_client=True) as client:
        while True:
            runs = _runs_by_deployment(client)
            if wanted <= set(runs) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert wanted <= set(runs), f"scheduled runs only for {sorted(runs)}"
    now = datetime.now(UTC)
    for name in wanted:
        assert all(r.expected_start_time > now - timedelta(minutes=1) for r in runs[name])
    assert "historical-backfill" not in runs and "processing" not in runs  # unscheduled
    assert live_server.error_lines() == []


def test_a_run_scheduled_a_minute_ahead_completes_on_a_worker(live_server, deployed):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.deployments import run_deployment

    from blocks.hot import hot_store_connector

    env, _ = deployed
    today = pd.Timestamp.now(tz="UTC").normalize()
    params = {
        "symbols": ["AAPL", "MSFT"],
        "start": str((today - pd.Timedelta(days=20)).date()),
        "end": str(today.date()),
        "skip_non_sessions": False,
    }
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("pipeline/daily-ingestion")
        # the schedule's own parameters (Prefect 3 schedules carry them) override the deployment's
        client.create_deployment_schedules(
            dep.id,
            [(IntervalSchedule(interval=timedelta(days=1), anchor_date=at), True)],
            parameters=params,
        )

    # the worker has no store settings of its own: deployment runs load them from the blocks
    worker_env = {
        k: v for k, v in env.items() if k not in ("MARKETPIPE_HOT_URL", "MARKETPIPE_COLD_URL")
    }
    log = live_server.log.parent / "worker.log"
    with log.open("w") as fh:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "marketpipe"],
            cwd=ROOT,
            env=worker_env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        run = _wait_for_run_at(dep.id, at, deadline_s=300)
        assert run is not None and run.state.is_completed(), log.read_text()[-4000:]
        assert run.parameters["symbols"] == ["AAPL", "MSFT"]
        assert run.expected_start_time == at
        assert _symbols_in(env["MARKETPIPE_HOT_URL"]) == {"AAPL", "MSFT"}  # the block's store

        # change the block: the next deployment run writes where it now points
        changed = f"sqlite:///{Path(env['MARKETPIPE_DATA_DIR']) / 'changed-hot.db'}"
        hot_store_connector(changed).save("marketpipe-hot", overwrite=True)
        second = run_deployment(
            "pipeline/daily-ingestion", parameters=params | {"symbols": ["SPY"]}, timeout=0
        )
        done = _wait_final(second.id, deadline_s=300)
        assert done is not None and done.state.is_completed(), log.read_text()[-4000:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # how a worker is stopped (README)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert _symbols_in(changed) == {"SPY"}
    assert _symbols_in(env["MARKETPIPE_HOT_URL"]) == {"AAPL", "MSFT"}
    assert live_server.error_lines() == []


def _symbols_in(url: str) -> set[str]:
    from marketpipe.storage.hot import SqlHotStore

    hot = SqlHotStore(url)
    try:
        return set(hot.stats()["symbol"])
    finally:
        hot.dispose()


def _wait_final(flow_run_id, deadline_s: float):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + deadline_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(flow_run_id)
            if run.state.is_final():
                return run
            time.sleep(1)
    return None


def _wait_for_run_at(deployment_id, at: datetime, deadline_s: float):
    """The deployment's run expected at `at`, once it is final (or None at the deadline)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + deadline_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            mine = [r for r in runs if r.expected_start_time == at]
            if mine and mine[0].state.is_final():
                return mine[0]
            time.sleep(1)
    return None
