"""Cross-process provider rate limits through Prefect global concurrency limits (GCL).

The in-process `marketpipe.ratelimit.RateLimiter` is the strict pacer (no window ever holds more
than N requests). A GCL with slot decay is Prefect's leaky bucket shared by every worker; use it to
cap the pipeline as a whole. Acquire the slots for a whole chunk (e.g. all pages of a symbol batch)
at once — `rate_limit()` round trips are slow on a busy server.

Usage in a task::

    acquire_provider_slots("polygon", n=len(symbols), settings=settings)
    result = provider.fetch(query)   # each request still paced by the in-process limiter
"""

from __future__ import annotations

import threading

from marketpipe.settings import Settings

_ENSURED: set[tuple[str, int, float]] = set()
_LOCK = threading.Lock()


def gcl_name(provider: str) -> str:
    return f"provider-{provider}"


def provider_limit(settings, provider: str) -> tuple[int, float]:
    """(slots, slot_decay_per_second) of a provider's global concurrency limit.

    `5/min` → 5 slots refilled at 5/60 per second: a strict cap on the request rate across every
    process that calls `rate_limit("provider-polygon")`.
    """
    count, period = settings.rate_limit(provider)
    return count, count / period


def upsert_provider_limit(client, provider: str, settings) -> str:
    """THE place a provider's GCL is created or updated (bootstrap and runs alike); keeps its id.

    Returns the limit's id. `client` is a sync Prefect client.
    """
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    name = gcl_name(provider)
    limit, decay = provider_limit(settings, provider)
    try:
        gcl = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(
                name=name, limit=limit, slot_decay_per_second=decay, active=True
            )
        )
    else:
        if (gcl.limit, gcl.slot_decay_per_second, gcl.active) != (limit, decay, True):
            client.update_global_concurrency_limit(
                name,
                GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay, active=True),
            )
    return str(client.read_global_concurrency_limit_by_name(name).id)


def prefect_api_configured() -> bool:
    """True when a Prefect API (server or Cloud, or a test harness) is configured."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def ensure_rate_limit(provider: str, settings: Settings) -> str:
    """Create or update (idempotently, once per process and rate) the GCL for `provider`."""
    limit, period = settings.rate_limit(provider)
    key = (provider, limit, period)
    name = gcl_name(provider)
    with _LOCK:
        if key in _ENSURED:
            return name
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            upsert_provider_limit(client, provider, settings)
        _ENSURED.add(key)
    return name


def acquire_provider_slots(
    provider: str,
    n: int = 1,
    settings: Settings | None = None,
    *,
    timeout_seconds: float | None = None,
) -> bool:
    """Block until `n` request slots for `provider` are granted across processes.

    Returns False (and does nothing) when no Prefect API is configured; the in-process limiter
    alone then paces requests. `n` above the limit is taken in pieces of at most the limit.
    """
    if n <= 0 or not prefect_api_configured():
        return False
    from prefect.concurrency.sync import rate_limit

    if settings is None:  # the run's settings, read when it started: never re-read here
        raise TypeError("acquire_provider_slots needs the run's settings")
    name = ensure_rate_limit(provider, settings)
    limit, _ = settings.rate_limit(provider)
    remaining = n
    while remaining > 0:
        take = min(remaining, limit)
        rate_limit(name, occupy=take, timeout_seconds=timeout_seconds, strict=True)
        remaining -= take
    return True


def global_limits_wanted(settings: Settings) -> bool:
    """Whether this run should also take cross-process slots (`MARKETPIPE_GLOBAL_RATE_LIMITS`).

    `auto` (default): only flow runs of a deployment, i.e. runs that workers execute and that may
    overlap with other processes; an in-process `marketpipe run` is one process, paced exactly by
    the in-process limiter (Prefect's slot denials back off coarsely and would slow it several-fold).
    """
    mode = settings.global_rate_limits
    if mode != "auto":
        return mode == "on"
    from prefect.runtime import flow_run

    try:
        return bool(flow_run.deployment_id)
    except Exception:
        return False


def reserve_slots(source_spec: str, requests: int, settings: Settings) -> None:
    """Take cross-process slots for a chunk's requests from the first network source in the spec.

    The in-process limiter still paces each request; this caps the pipeline across processes.
    """
    from marketpipe.providers import source_names
    from marketpipe.providers.registry import record

    if requests <= 0 or not global_limits_wanted(settings):
        return
    for name in source_names(source_spec):
        if record(name).network:
            acquire_provider_slots(name, n=requests, settings=settings)
            return
