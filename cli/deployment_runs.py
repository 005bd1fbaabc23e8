"""Run a stage through a Prefect deployment: `marketpipe run --deployment NAME [--watch]`.

`trigger_deployment` resolves the deployment by its name whatever its flow (`daily-ingestion` →
`pipeline/daily-ingestion`, `historical-backfill` → `historical/historical-backfill`), creates a
flow run with the given parameters (`run_deployment(..., timeout=0)`: a worker picks it up), and
with `watch` follows it, printing each state change; the exit code is 0 for Completed, else 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from marketpipe.errors import ConfigError

TERMINAL_OK = "COMPLETED"
# A run asked for by hand is meant to run: the schedule-only gates are off unless asked for.
MANUAL_DEFAULTS = {"skip_non_sessions": False}


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def resolve_deployment(client, name: str):
    """The deployment called `name` ('flow/deployment' or just 'deployment'); ConfigError if none
    or ambiguous."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.exceptions import ObjectNotFound

    if "/" in name:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise ConfigError(f"--deployment: no deployment {name!r} (run `make deploy`)") from None
    found = client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
    )
    if not found:
        raise ConfigError(f"--deployment: no deployment named {name!r} (run `make deploy`)")
    if len(found) > 1:
        flows = {f.id: f.name for f in client.read_flows()}
        names = ", ".join(sorted(f"{flows.get(d.flow_id, '?')}/{d.name}" for d in found))
        raise ConfigError(f"--deployment: {name!r} is ambiguous ({names}); use FLOW/NAME")
    return found[0]


def deployment_parameters(deployment, params: dict[str, Any], warn: Callable[[str], None]) -> dict:
    """`params` without unset values and without names the deployment's flow does not take."""
    props = (deployment.parameter_openapi_schema or {}).get("properties") or {}
    out = {}
    for key, value in params.items():
        if value is None:
            continue  # the deployment's (or flow's) default applies
        if props and key not in props:
            if key in MANUAL_DEFAULTS and value == MANUAL_DEFAULTS[key]:
                continue
            warn(f"deployment {deployment.name!r} takes no parameter {key!r}; not sent")
            continue
        out[key] = _jsonable(value)
    return out


def trigger_deployment(
    name: str,
    params: dict[str, Any],
    watch: bool,
    *,
    poll_seconds: float = 2.0,
    timeout: float | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Create a run of deployment `name` with `params`; follow it when `watch`.

    Returns the exit code: 0 when triggered (no watch) or the run Completed; 1 when it ended in
    any other state (Failed, Crashed, Cancelled …) or `timeout` seconds passed.
    """
    import sys

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    def warn(msg: str) -> None:
        print(f"marketpipe: warning: {msg}", file=sys.stderr)

    with get_client(sync_client=True) as client:
        deployment = resolve_deployment(client, name)
        flow_name = client.read_flow(deployment.flow_id).name
    full = f"{flow_name}/{deployment.name}"
    parameters = deployment_parameters(deployment, {**MANUAL_DEFAULTS, **params}, warn)
    run = run_deployment(full, parameters=parameters, timeout=0, as_subflow=False)
    echo(f"{full}: flow run {run.name} ({run.id}) {run.state.name if run.state else 'Scheduled'}")
    if not watch:
        return 0
    return watch_flow_run(run.id, poll_seconds=poll_seconds, timeout=timeout, echo=echo)


def watch_flow_run(
    flow_run_id,
    *,
    poll_seconds: float = 2.0,
    timeout: float | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Poll a flow run until it is final, printing state changes; 0 if Completed else 1."""
    from prefect.client.orchestration import get_client

    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            state = run.state
            label = (state.name, state.type.value) if state else ("?", "?")
            if label != last:
                msg = f" — {state.message.splitlines()[0][:200]}" if state and state.message else ""
                stamp = state.timestamp.strftime("%H:%M:%S") if state else ""
                echo(f"  {stamp} {run.name}: {label[0]}{msg}")
                last = label
            if state is not None and state.is_final():
                return 0 if state.type.value == TERMINAL_OK else 1
            if deadline is not None and time.monotonic() > deadline:
                echo(f"  gave up waiting after {timeout:.0f} s; run {run.id} is {label[0]}")
                return 1
            time.sleep(poll_seconds)
