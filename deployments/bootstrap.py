"""Idempotent bootstrap of a Prefect server for marketpipe (`python -m deployments.bootstrap`).

Run by `make deploy`. Every step creates what is missing and updates what differs, keeping ids:

1. block types: our `blocks` module (`prefect block register -m blocks`) + `SqlAlchemyConnector`;
2. block documents from settings: `marketpipe-hot` (SqlAlchemyConnector; the password goes into a
   SecretStr), `marketpipe-polygon` (ProviderCredentials), `marketpipe-lake` (LakeSettings) —
   what deployment runs load at flow start (`blocks/loader.py`; environment variables override);
3. the process work pool `marketpipe`;
4. global concurrency limits `provider-polygon` / `provider-yahoo`: limit = requests per window,
   slot decay = limit / window seconds (what `prefect.concurrency.sync.rate_limit` expects);
5. the automation that marks flow runs CRASHED when their heartbeats stop, and the alert
   automations + `marketpipe-alerts` notification block (`deployments/alerting.py`);
6. the deployments of `prefect.yaml` (`prefect --no-prompt deploy --all` in the project root).

Nothing secret is printed: block documents are reported by name only, the hot URL masked.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from blocks.loader import CREDENTIALS_BLOCK, HOT_BLOCK, LAKE_BLOCK
from marketpipe.providers.registry import network_provider_names
from tasks.ratelimits import gcl_name, provider_limit, upsert_provider_limit  # noqa: F401

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORK_POOL = "marketpipe"
WORK_POOL_TYPE = "process"
PROVIDERS = network_provider_names()  # a global concurrency limit per network provider
ZOMBIE_AUTOMATION = "marketpipe-crash-zombie-flow-runs"
# The worker's flow runs emit a heartbeat every 60 s (prefect.yaml job env); three missed → crashed.
HEARTBEAT_SECONDS = 60
ZOMBIE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


@dataclass
class BootstrapReport:
    block_types: list[str] = field(default_factory=list)
    blocks: dict[str, str] = field(default_factory=dict)  # name -> block document id
    work_pool: str | None = None  # id
    limits: dict[str, str] = field(default_factory=dict)  # name -> id
    automations: dict[str, str] = field(default_factory=dict)  # name -> id
    deployments: dict[str, str] = field(default_factory=dict)  # flow/name -> id
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"block types: {', '.join(self.block_types)}"]
        out += [f"block {name}: {id_}" for name, id_ in self.blocks.items()]
        out.append(f"work pool {WORK_POOL} ({WORK_POOL_TYPE}): {self.work_pool}")
        out += [f"concurrency limit {name}: {id_}" for name, id_ in self.limits.items()]
        out += [f"automation {name}: {id_}" for name, id_ in self.automations.items()]
        out += [f"deployment {name}: {id_}" for name, id_ in self.deployments.items()]
        return out + self.notes


# ---------------------------------------------------------------- pure helpers (unit-tested)
def zombie_automation():
    """The documented 'crash zombie flows' automation (docs: advanced/detect-zombie-flows).

    Proactive: after a run's heartbeat, expect another heartbeat or a terminal state within
    ZOMBIE_AFTER_SECONDS; if none arrives, change that flow run's state to CRASHED.
    """
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description="Mark marketpipe flow runs CRASHED when their heartbeats stop.",
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=ZOMBIE_AFTER_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=(
                    f"No heartbeat for {ZOMBIE_AFTER_SECONDS} s: the worker or machine running "
                    "this flow run is gone; marked crashed by marketpipe bootstrap's automation."
                ),
            )
        ],
    )


def block_classes() -> list[type]:
    """Every Block subclass exported by `blocks` (what `prefect block register -m blocks` sees)."""
    from prefect.blocks.core import Block

    import blocks

    out = []
    for name in getattr(blocks, "__all__", dir(blocks)):
        obj = getattr(blocks, name)
        if isinstance(obj, type) and issubclass(obj, Block) and obj is not Block:
            out.append(obj)
    return out


# ---------------------------------------------------------------- steps
def register_block_types(report: BootstrapReport) -> None:
    from prefect_sqlalchemy import SqlAlchemyConnector

    for cls in [*block_classes(), SqlAlchemyConnector]:
        cls.register_type_and_schema()
        report.block_types.append(cls.get_block_type_slug())


def save_blocks(settings, report: BootstrapReport) -> None:
    from blocks import LakeSettings, ProviderCredentials
    from blocks.hot import hot_store_connector

    hot = hot_store_connector(settings.hot_url_resolved)
    report.blocks[HOT_BLOCK] = str(hot.save(HOT_BLOCK, overwrite=True))
    lake = LakeSettings(
        cold_url=settings.cold_url_resolved,
        s3_endpoint_url=settings.s3_endpoint_url,
        hot_days=settings.hot_days,
    )
    report.blocks[LAKE_BLOCK] = str(lake.save(LAKE_BLOCK, overwrite=True))
    name = CREDENTIALS_BLOCK.format(provider="polygon")
    api_key = settings.polygon_api_key
    if api_key is None:  # keep a key someone stored in the block (UI/CLI) rather than wipe it
        api_key = _existing_secret(ProviderCredentials, name, "api_key")
    creds = ProviderCredentials(
        provider="polygon", api_key=api_key, base_url=settings.polygon_base_url
    )
    report.blocks[name] = str(creds.save(name, overwrite=True))


def _existing_secret(cls, name: str, field_name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return getattr(cls.load(name), field_name, None)
    except (ObjectNotFound, ValueError):
        return None


def ensure_work_pool(client, report: BootstrapReport) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    try:
        pool = client.read_work_pool(WORK_POOL)
    except ObjectNotFound:
        pool = client.create_work_pool(
            WorkPoolCreate(
                name=WORK_POOL,
                type=WORK_POOL_TYPE,
                description="marketpipe flows run as local processes (`prefect worker start`).",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )
    if pool.type != WORK_POOL_TYPE:
        raise SystemExit(
            f"work pool {WORK_POOL!r} exists with type {pool.type!r}, expected "
            f"{WORK_POOL_TYPE!r}; delete it (`prefect work-pool delete {WORK_POOL}`) and re-run"
        )
    report.work_pool = str(pool.id)


def ensure_provider_limits(client, settings, report: BootstrapReport) -> None:
    for provider in PROVIDERS:
        report.limits[gcl_name(provider)] = upsert_provider_limit(client, provider, settings)


def ensure_automation(client, report: BootstrapReport, desired=None) -> None:
    """Create or update one automation by name (default: the zombie one), keeping its id."""
    desired = desired or zombie_automation()
    existing = client.read_automations_by_name(desired.name)
    if existing:
        keep, *extra = existing
        for dup in extra:  # a crashed earlier bootstrap could have left a twin
            client.delete_automation(dup.id)
        client.update_automation(keep.id, desired)
        report.automations[desired.name] = str(keep.id)
    else:
        report.automations[desired.name] = str(client.create_automation(desired))


def ensure_alerts(client, settings, report: BootstrapReport) -> None:
    """The `marketpipe-alerts` notification block and the automations that use it."""
    from deployments.alerting import ALERT_BLOCK, alert_automations, save_alert_block

    block_id = save_alert_block(settings)
    if block_id is None:
        report.notes.append(
            "alerts: no notification block; set MARKETPIPE_ALERT_WEBHOOK_URL and re-run"
        )
        return
    report.blocks[ALERT_BLOCK] = block_id
    for automation in alert_automations(block_id):
        ensure_automation(client, report, automation)


def deploy(names: list[str] | None = None, project_root: Path = PROJECT_ROOT) -> None:
    """`prefect --no-prompt deploy --all` (or `--name X` …) in the project root, same API URL."""
    from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    cmd += [a for n in names for a in ("--name", n)] if names else ["--all"]
    env = dict(os.environ)
    if api_url := PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = api_url
    if (key := PREFECT_API_KEY.value()) is not None and "PREFECT_API_KEY" not in env:
        env["PREFECT_API_KEY"] = key.get_secret_value() if hasattr(key, "get_secret_value") else key
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(project_root), env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.run(cmd, cwd=project_root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"prefect deploy failed (exit {proc.returncode}):\n{tail}")


def read_deployments(client, names: list[str] | None = None) -> dict[str, str]:
    """{flow/deployment: id} for the deployments declared in prefect.yaml (those that exist)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    wanted = names or [d["name"] for d in load_prefect_yaml()["deployments"]]
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=wanted))
    )
    flows = {f.id: f.name for f in client.read_flows()}
    return {f"{flows.get(d.flow_id, '?')}/{d.name}": str(d.id) for d in found}


def load_prefect_yaml(path: Path | None = None) -> dict[str, Any]:
    import yaml

    with open(path or PROJECT_ROOT / "prefect.yaml") as fh:
        return yaml.safe_load(fh)


def bootstrap(
    settings=None, *, deploy_flows: bool = True, names: list[str] | None = None
) -> BootstrapReport:
    """Run every step against the Prefect API in the current settings; safe to re-run."""
    from prefect.client.orchestration import get_client

    from marketpipe.settings import load_settings

    settings = settings or load_settings()
    report = BootstrapReport()
    register_block_types(report)
    save_blocks(settings, report)
    with get_client(sync_client=True) as client:
        ensure_work_pool(client, report)
        ensure_provider_limits(client, settings, report)
        ensure_automation(client, report)
        ensure_alerts(client, settings, report)
    if deploy_flows:
        deploy(names)
        with get_client(sync_client=True) as client:
            report.deployments = read_deployments(client, names)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.bootstrap", description=__doc__)
    parser.add_argument("--no-deploy", action="store_true", help="Skip `prefect deploy`.")
    parser.add_argument(
        "--name", action="append", default=None, help="Deploy only this deployment (repeatable)."
    )
    args = parser.parse_args(argv)
    from marketpipe.errors import MarketpipeError
    from marketpipe.settings import load_settings

    try:
        settings = load_settings()
        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value()
        print(f"bootstrapping Prefect at {api or 'the local ephemeral API'} for marketpipe")
        print(f"  hot store {settings.hot_url_masked}, cold lake {settings.cold_url_resolved}")
        if not api:
            print(
                "bootstrap: warning: PREFECT_API_URL is not set; workers cannot reach an "
                "ephemeral API. Start `prefect server start` and export "
                "PREFECT_API_URL=http://127.0.0.1:4200/api first.",
                file=sys.stderr,
            )
        report = bootstrap(settings, deploy_flows=not args.no_deploy, names=args.name)
    except (MarketpipeError, RuntimeError) as exc:
        print(f"bootstrap: error: {exc}", file=sys.stderr)
        return 1
    for line in report.lines():
        print("  " + line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
