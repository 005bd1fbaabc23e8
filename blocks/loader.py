"""Deployment runs read their stores and credentials from the blocks `make deploy` saved.

At flow start `load_settings()` asks the registered defaults source (`flows/__init__.py` registers
`deployment_block_defaults`): inside a flow run of a deployment it loads

| block | fields it sets |
|---|---|
| `marketpipe-hot` (SqlAlchemyConnector) | `hot_url` (password from the block's SecretStr) |
| `marketpipe-lake` (LakeSettings) | `cold_url`, `s3_endpoint_url`, `hot_days` |
| `marketpipe-polygon` (ProviderCredentials) | `polygon_api_key`, `polygon_base_url` |

Environment variables override block values (`MARKETPIPE_HOT_URL` set on a worker wins); a
missing block is skipped. Outside deployment runs (`marketpipe run`, tests) nothing is loaded.
Edit a block in the UI or with `make deploy` and the next deployment run uses it.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

HOT_BLOCK = "marketpipe-hot"
LAKE_BLOCK = "marketpipe-lake"
CREDENTIALS_BLOCK = "marketpipe-{provider}"


def _in_deployment_run() -> bool:
    """True in a process a worker started for a deployment's flow run (subflows included: the
    worker's PREFECT__FLOW_RUN_ID names the process's top-level run)."""
    import os

    run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not run_id:
        return False
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_flow_run(run_id).deployment_id is not None
    except Exception as exc:
        log.warning("could not read flow run %s (%s); blocks not loaded", run_id, exc)
        return False


def _load(cls, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return cls.load(name)
    except (ObjectNotFound, ValueError):
        return None


def block_values() -> dict:
    """Settings field values from the saved blocks (those that exist), unconditionally."""
    from prefect_sqlalchemy import SqlAlchemyConnector

    from blocks.credentials import ProviderCredentials
    from blocks.hot import connector_url
    from blocks.lake import LakeSettings

    out: dict = {}
    if (hot := _load(SqlAlchemyConnector, HOT_BLOCK)) is not None:
        out["hot_url"] = connector_url(hot)
    if (lake := _load(LakeSettings, LAKE_BLOCK)) is not None:
        out["cold_url"] = lake.cold_url
        out["hot_days"] = lake.hot_days
        if lake.s3_endpoint_url:
            out["s3_endpoint_url"] = lake.s3_endpoint_url
    creds = _load(ProviderCredentials, CREDENTIALS_BLOCK.format(provider="polygon"))
    if creds is not None:
        if creds.api_key is not None:
            out["polygon_api_key"] = creds.api_key
        if creds.base_url:
            out["polygon_base_url"] = creds.base_url
    return out


def deployment_block_defaults() -> dict:
    """`block_values()` inside a deployment's flow run, else {} (registered by `flows`)."""
    if not _in_deployment_run():
        return {}
    try:
        return block_values()
    except Exception as exc:  # the API is unreachable: the run goes on with env/defaults
        log.warning("could not load the marketpipe blocks (%s); using environment settings", exc)
        return {}
