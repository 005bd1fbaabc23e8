"""End to end through a REAL process worker: bootstrap + deploy `daily-ingestion`, trigger it the
way `marketpipe run --deployment daily-ingestion --watch` does, and let
`prefect worker start --pool marketpipe --run-once` (a subprocess) execute it on SQLite + a tmp lake.

Needs the merged tree (stores, contract, synthetic provider, `skip_non_sessions` on `pipeline`).
"""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from marketpipe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedded_env(tmp_path, monkeypatch, sqlite_url):
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", sqlite_url)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    monkeypatch.delenv("MARKETPIPE_METRICS_PORT", raising=False)
    return tmp_path


def _worker(api_url: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "marketpipe"]
    cmd += ["--type", "process", "--run-once", "--limit", "1"]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )


def _wait_for_runs(deployment_id: str, timeout: float) -> list:
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            if runs or time.monotonic() > deadline:
                return runs
            time.sleep(1)


def test_daily_ingestion_runs_through_a_process_worker(live_server, embedded_env, tmp_path):
    # the production-shaped server on PostgreSQL (`make server`): on the session's SQLite test
    # server, a "database is locked" in the trigger service under CI load made Prefect evaluate
    # the Completed event twice and schedule two processing runs
    from prefect.settings import PREFECT_API_URL

    from cli.deployment_runs import trigger_deployment
    from deployments import bootstrap as bs
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    report = bs.bootstrap(load_settings(), names=["daily-ingestion", "processing"])
    assert set(report.deployments) == {"pipeline/daily-ingestion", "pipeline/processing"}
    again = bs.bootstrap(load_settings(), names=["daily-ingestion", "processing"])
    assert again.deployments == report.deployments  # re-deploy keeps the ids

    api_url = PREFECT_API_URL.value()
    today = pd.Timestamp.now(tz="UTC").date()
    params = {
        "stages": ["ingestion"],
        "symbols": ["AAPL", "MSFT"],
        "start": (pd.Timestamp(today) - pd.Timedelta(days=40)).date(),
        "end": today,
        "interval": "1d",
        "source": "synthetic",
        "replay_path": None,  # unset → not sent
    }  # skip_non_sessions: a manual trigger sends False, so this runs on weekends too
    lines: list[str] = []
    created = threading.Event()

    def echo(line: str) -> None:
        lines.append(line)
        created.set()

    result: dict = {}
    context = contextvars.copy_context()  # the thread talks to this test's server (settings)
    watcher = threading.Thread(
        target=lambda: result.setdefault(
            "code",
            context.run(
                trigger_deployment,
                "daily-ingestion",
                params,
                watch=True,
                poll_seconds=1,
                timeout=400,
                echo=echo,
            ),
        ),
        daemon=True,
    )
    watcher.start()
    assert created.wait(60), "the flow run was not created"
    log = tmp_path / "worker.log"
    worker = _worker(api_url, log)
    try:
        worker.wait(timeout=420)
    finally:
        if worker.poll() is None:
            worker.kill()
    watcher.join(timeout=120)
    output = "\n".join(lines)
    assert result.get("code") == 0, output + "\n--- worker log ---\n" + log.read_text()[-4000:]
    assert lines[0].startswith("pipeline/daily-ingestion: flow run ")
    assert any("Running" in line for line in lines) and "Completed" in lines[-1]

    # the deployment trigger: a completed daily-ingestion run schedules a `processing` run
    processing_runs = _wait_for_runs(report.deployments["pipeline/processing"], timeout=90)
    assert processing_runs, "no processing run was triggered by the completed daily-ingestion"
    assert processing_runs[0].parameters["stages"] == ["processing"]
    # of the Completed events of the run and its ingestion subflow, Prefect's own matcher must
    # accept exactly one (checked on the stored events: no sleep-and-count)
    matched = _trigger_matches(
        "processing-after-daily-ingestion", report.deployments["pipeline/daily-ingestion"]
    )
    assert matched == 1
    assert len(_wait_for_runs(report.deployments["pipeline/processing"], timeout=0)) == 1
    assert live_server.error_lines() == []

    stores = open_stores(load_settings())
    try:
        jobs = stores.hot.recent_jobs(5)
        stats = stores.hot.stats()
    finally:
        stores.close()
    assert jobs and jobs[0]["job"] == "ingestion" and jobs[0]["status"] == "success"
    assert set(stats["symbol"]) == {"AAPL", "MSFT"}


def _trigger_matches(automation: str, deployment_id: str, timeout: float = 90) -> int:
    """How many stored `prefect.flow-run.Completed` events of the deployment's runs AND of their
    subflows (waited for, all) the automation's trigger covers, by Prefect's server-side matcher."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        [auto] = client.read_automations_by_name(automation)
        trigger = EventTrigger.model_validate(auto.trigger.model_dump(mode="json"))
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        # not the runs the server's scheduler made for later dates (the deployment's schedule)
        parents = [r.id for r in runs if r.state_name != "Scheduled"]
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=parents)
            )
        )
        ids = [*parents, *(c.id for c in children)]
        assert len(ids) >= 2, "expected the run and its ingestion subflow"
        flt = EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.Completed"]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{i}" for i in ids]),
        )
        while True:
            events = client.read_events(flt, limit=50).events
            if len(events) >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(1)  # polling the event store with a deadline
    assert len(events) == len(ids), f"Completed events of {len(ids)} runs: {len(events)}"
    return sum(
        trigger.covers(ReceivedEvent.model_validate(e.model_dump(mode="json"))) for e in events
    )


def test_unknown_deployment_is_a_config_error(prefect_server):
    from cli.deployment_runs import trigger_deployment

    with pytest.raises(ConfigError, match="no deployment named 'nope'"):
        trigger_deployment("nope", {}, watch=False)
    with pytest.raises(ConfigError, match="no deployment 'pipeline/nope'"):
        trigger_deployment("pipeline/nope", {}, watch=False)


def test_parameters_sent_are_the_flows_own():
    from types import SimpleNamespace

    from cli.deployment_runs import deployment_parameters

    dep = SimpleNamespace(
        name="historical-backfill",
        parameter_openapi_schema={"properties": {"symbols": {}, "start": {}}},
    )
    warnings: list[str] = []
    got = deployment_parameters(
        dep,
        {"symbols": ("AAPL",), "start": pd.Timestamp("2024-01-02").date(), "mode": "batch"},
        warnings.append,
    )
    assert got == {"symbols": ["AAPL"], "start": "2024-01-02"}
    assert warnings == ["deployment 'historical-backfill' takes no parameter 'mode'; not sent"]
    # the manual-run default is dropped silently for flows without it
    assert deployment_parameters(dep, {"skip_non_sessions": False}, warnings.append) == {}
    assert len(warnings) == 1
