"""Prefect global concurrency limit for provider pacing, against the real test server."""

from __future__ import annotations

from marketpipe.settings import Settings
from tasks.ratelimits import acquire_provider_slots, ensure_rate_limit, gcl_name


def test_gcl_created_idempotently_and_slots_acquired(prefect_server):
    from prefect.client.orchestration import get_client

    import tasks.ratelimits as rl

    settings = Settings(polygon_rate_limit="50/10s")
    rl._ENSURED.clear()
    assert ensure_rate_limit("polygon", settings) == gcl_name("polygon")
    rl._ENSURED.clear()
    ensure_rate_limit("polygon", settings)  # second upsert: no error, same limit
    with get_client(sync_client=True) as client:
        gcl = client.read_global_concurrency_limit_by_name(gcl_name("polygon"))
    assert gcl.limit == 50 and gcl.slot_decay_per_second == 5.0
    assert acquire_provider_slots("polygon", 3, settings, timeout_seconds=30) is True


def test_no_api_configured_is_a_no_op(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: None}):
        assert acquire_provider_slots("polygon", 3, Settings()) is False


def test_global_limits_only_for_deployment_runs_in_auto_mode():
    from tasks.ratelimits import global_limits_wanted

    assert global_limits_wanted(Settings(global_rate_limits="on")) is True
    assert global_limits_wanted(Settings(global_rate_limits="off")) is False
    assert global_limits_wanted(Settings()) is False  # not a deployment run
