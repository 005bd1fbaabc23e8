"""End to end through a REAL process worker: bootstrap + deploy `daily-ingestion`, trigger it the
way `marketpipe run --deployment daily-ingestion --watch` does, and let
`prefect worker start --pool marketpipe --run-once` (a subprocess) execute it on SQLite + a tmp lake.

Needs the merged tree (stores, contract, synthetic provider, `skip_non_sessions` on `pipeline`).
"""

from __future__ import annotations

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


def _completed_events_covered(automation: str, timeout: float) -> dict[str, bool]:
    """{flow name: does the automation's trigger cover that flow run's Completed event}, once the
    Completed events of both the pipeline run and its ingestion subflow are recorded."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter
    from prefect.server.events.schemas.automations import EventTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        (auto,) = client.read_automations_by_name(automation)
        trigger = EventTrigger.model_validate(auto.trigger.model_dump(mode="json"))
        names = EventFilter(event=EventNameFilter(name=["prefect.flow-run.Completed"]))
        while True:
            events = client.read_events(filter=names, limit=50).events
            out = {}
            for ev in events:
                flow = next((r.name for r in ev.related if r.role == "flow"), None)
                server_event = ReceivedEvent.model_validate(ev.model_dump(mode="json"))
                out[flow] = trigger.covers(server_event)
            if {"pipeline", "ingestion"} <= set(out) or time.monotonic() > deadline:
                return out
            time.sleep(0.5)  # polling for events to be recorded, not proving an absence


@pytest.mark.slow
def test_daily_ingestion_runs_through_a_process_worker(prefect_server, embedded_env, tmp_path):
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
    watcher = threading.Thread(
        target=lambda: result.setdefault(
            "code",
            trigger_deployment(
                "daily-ingestion", params, watch=True, poll_seconds=1, timeout=400, echo=echo
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
    # a second trigger could only come from another Completed event the trigger covers (e.g. the
    # ingestion subflow's, which carries the deployment too): check every one, no waiting
    covered = _completed_events_covered("processing-after-daily-ingestion", timeout=90)
    assert covered.get("ingestion") is False and covered.get("pipeline") is True, covered
    assert len(_wait_for_runs(report.deployments["pipeline/processing"], timeout=0)) == 1

    stores = open_stores(load_settings())
    try:
        jobs = stores.hot.recent_jobs(5)
        stats = stores.hot.stats()
    finally:
        stores.close()
    assert jobs and jobs[0]["job"] == "ingestion" and jobs[0]["status"] == "success"
    assert set(stats["symbol"]) == {"AAPL", "MSFT"}


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
