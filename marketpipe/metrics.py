"""Prometheus metrics (Prefect-free). Off unless `MARKETPIPE_METRICS_PORT` is set.

Flows and tasks call the small recorders below; each is a no-op while metrics are disabled, so
call sites never need to check. `enable(port)` (or `init_from_settings(settings)`) starts one
HTTP server per process — calling it again is harmless.

Exposed:
  pipeline_job_runs_total{job,status}
  pipeline_rows_written_total{job,provider}
  pipeline_batches_total{job,provider}
  pipeline_provider_requests_total{provider,status}
  pipeline_active_jobs{job_name}
  pipeline_provider_rate_limit_violations_total{provider}
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {
    "enabled": False,
    "port": None,
    "server": None,
    "metrics": None,
    "registry": None,
}


def _build(registry) -> dict[str, Any]:
    from prometheus_client import Counter, Gauge

    return {
        "job_runs": Counter(
            "pipeline_job_runs",
            "Finished job runs by status.",
            ["job", "status"],
            registry=registry,
        ),
        "rows": Counter(
            "pipeline_rows_written",
            "Rows written to a store.",
            ["job", "provider"],
            registry=registry,
        ),
        "batches": Counter(
            "pipeline_batches",
            "Batches (chunks) processed.",
            ["job", "provider"],
            registry=registry,
        ),
        "requests": Counter(
            "pipeline_provider_requests",
            "Provider requests by outcome.",
            ["provider", "status"],
            registry=registry,
        ),
        "active": Gauge(
            "pipeline_active_jobs",
            "Jobs running now in this process.",
            ["job_name"],
            registry=registry,
        ),
        "violations": Counter(
            "pipeline_provider_rate_limit_violations",
            "Provider answers saying our rate limit was exceeded (HTTP 429).",
            ["provider"],
            registry=registry,
        ),
    }


def enable(port: int, addr: str = "0.0.0.0", registry=None) -> int:
    """Start the `/metrics` HTTP server once per process; returns the port it listens on."""
    with _LOCK:
        if _STATE["enabled"]:
            return _STATE["port"]
        from prometheus_client import REGISTRY, start_http_server

        reg = registry if registry is not None else REGISTRY
        metrics = _build(reg)
        server, _thread = start_http_server(port, addr=addr, registry=reg)
        _STATE.update(
            enabled=True, port=server.server_port, server=server, metrics=metrics, registry=reg
        )
        return server.server_port


def init_from_settings(settings) -> bool:
    """Enable metrics if `settings.metrics_port` is set (call at flow/command start)."""
    port = getattr(settings, "metrics_port", None)
    if not port:
        return False
    enable(int(port))
    return True


def enabled() -> bool:
    return bool(_STATE["enabled"])


def _m(name: str):
    return _STATE["metrics"][name] if _STATE["enabled"] else None


def record_job(job: str, status: str) -> None:
    """A job finished with `status` (success | failed | cancelled | skipped)."""
    if m := _m("job_runs"):
        m.labels(job=job, status=status).inc()


def rows_written(job: str, provider: str, n: int) -> None:
    if (m := _m("rows")) and n:
        m.labels(job=job, provider=provider).inc(int(n))


def batch_done(job: str, provider: str, n: int = 1) -> None:
    if m := _m("batches"):
        m.labels(job=job, provider=provider).inc(n)


def provider_request(provider: str, status: str | int) -> None:
    """One provider request finished: status is 'ok', 'error' or the HTTP status code."""
    if m := _m("requests"):
        m.labels(provider=provider, status=str(status)).inc()
    if str(status) == "429":
        rate_limit_violation(provider)


def rate_limit_violation(provider: str) -> None:
    if m := _m("violations"):
        m.labels(provider=provider).inc()


def job_started(job_name: str) -> None:
    if m := _m("active"):
        m.labels(job_name=job_name).inc()


def job_ended(job_name: str) -> None:
    if m := _m("active"):
        m.labels(job_name=job_name).dec()


@contextlib.contextmanager
def track_job(job: str) -> Iterator[None]:
    """Active gauge up while the block runs; a job_runs_total sample when it ends."""
    job_started(job)
    try:
        yield
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
        record_job(job, status)
        raise
    else:
        record_job(job, "success")
    finally:
        job_ended(job)


def _reset_for_tests() -> None:
    """Stop the server and forget the metrics (tests only)."""
    with _LOCK:
        server = _STATE.get("server")
        if server is not None:
            server.shutdown()
            server.server_close()
        for collector in (_STATE.get("metrics") or {}).values():
            with contextlib.suppress(KeyError):
                _STATE["registry"].unregister(collector)
        _STATE.update(enabled=False, port=None, server=None, metrics=None, registry=None)
