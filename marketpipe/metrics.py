"""Prometheus metrics (Prefect-free). Off unless configured; a busy port never fails a run.

Two ways to serve them (docs/operations.md "Metrics"):
- `MARKETPIPE_METRICS_PORT=N`: this process serves `/metrics` on port N. If N is taken (a second
  run on the same worker), one warning is logged and the run goes on without its own endpoint.
- `PROMETHEUS_MULTIPROC_DIR=DIR` (prometheus_client's multiprocess mode; set it in the worker's
  environment): every run process writes its samples to DIR, and ONE exporter beside the worker
  (`make exporter` = `python -m deployments.exporter`) serves the sum over every run of every
  deployment on that machine — the way to scrape deployment runs.

Flows never need to call anything: `track_job` (entered by every flow's `job_run`) starts metrics
from the settings on first use. Recorders are no-ops while metrics are off.

Exposed (`job` is the flow: ingestion, historical, realtime, processing, maintenance):
  pipeline_job_runs_total{job,status}
  pipeline_rows_written_total{job,provider}
  pipeline_batches_total{job,provider}
  pipeline_provider_requests_total{provider,status}
  pipeline_active_jobs{job_name}
  pipeline_provider_rate_limit_violations_total{provider}
  pipeline_stage_seconds{job,stage}          histogram: time one batch spent in a stage
  pipeline_stage_items_total{job,stage}      rows/ticks that went through a stage
  pipeline_stage_errors_total{job,stage}     failed batches of a stage
  pipeline_queue_depth{job,stage}            items waiting (real-time tick queue, backfill chunks)
  pipeline_ticks_total{job,provider,outcome} real-time ticks: received | dropped | late
  pipeline_tick_to_commit_seconds{job}       histogram: worst tick receive → commit per micro-batch
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_LOCK = threading.Lock()
_STATE: dict[str, Any] = {
    "enabled": False,
    "tried": False,
    "port": None,
    "server": None,
    "metrics": None,
    "registry": None,
    "mode": None,  # "http" | "multiprocess"
}
_SEEN: dict[tuple, float] = {}  # (run, field) -> last cumulative value observed (deltas)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def multiprocess_dir() -> str | None:
    """prometheus_client's own variable; it must be set before the process starts."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _build(registry) -> dict[str, Any]:
    from prometheus_client import Counter, Gauge, Histogram

    def counter(name, doc, labels):
        return Counter(name, doc, labels, registry=registry)

    def gauge(name, doc, labels):
        return Gauge(name, doc, labels, registry=registry, multiprocess_mode="livesum")

    def hist(name, doc, labels):
        return Histogram(name, doc, labels, registry=registry, buckets=STAGE_BUCKETS)

    return {
        "job_runs": counter("pipeline_job_runs", "Finished job runs by status.", ["job", "status"]),
        "rows": counter("pipeline_rows_written", "Rows written to a store.", ["job", "provider"]),
        "batches": counter("pipeline_batches", "Batches (chunks) processed.", ["job", "provider"]),
        "requests": counter(
            "pipeline_provider_requests", "Provider requests by outcome.", ["provider", "status"]
        ),
        "active": gauge("pipeline_active_jobs", "Jobs running now.", ["job_name"]),
        "violations": counter(
            "pipeline_provider_rate_limit_violations",
            "Provider answers saying our rate limit was exceeded (HTTP 429).",
            ["provider"],
        ),
        "stage_seconds": hist(
            "pipeline_stage_seconds", "Time one batch spent in a stage.", ["job", "stage"]
        ),
        "stage_items": counter(
            "pipeline_stage_items", "Rows or ticks through a stage.", ["job", "stage"]
        ),
        "stage_errors": counter(
            "pipeline_stage_errors", "Failed batches of a stage.", ["job", "stage"]
        ),
        "queue": gauge("pipeline_queue_depth", "Items waiting in a stage.", ["job", "stage"]),
        "ticks": counter(
            "pipeline_ticks", "Real-time ticks by outcome.", ["job", "provider", "outcome"]
        ),
        "tick_latency": hist(
            "pipeline_tick_to_commit_seconds",
            "Worst tick receive to commit latency of a micro-batch.",
            ["job"],
        ),
    }


def enable(port: int | None, addr: str = "0.0.0.0", registry=None) -> int | None:
    """Turn the recorders on, and serve `/metrics` on `port` (once per process).

    Returns the port served, or None (multiprocess mode, no port, or the port is busy: one
    warning, and the run continues — a metrics endpoint is never worth a failed run).
    """
    with _LOCK:
        if _STATE["enabled"]:
            return _STATE["port"]
        from prometheus_client import REGISTRY, CollectorRegistry

        mp = multiprocess_dir()
        if registry is not None:
            reg = registry
        else:  # in multiprocess mode the exporter collects the files; keep a private registry
            reg = CollectorRegistry() if mp else REGISTRY
        _STATE.update(enabled=True, tried=True, metrics=_build(reg), registry=reg)
        _STATE["mode"] = "multiprocess" if mp else "http"
        if mp:  # this process's live gauges leave the sum when it exits
            atexit.register(_mark_process_dead, os.getpid(), mp)
            return None
        if not port:
            return None
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(int(port), addr=addr, registry=reg)
        except OSError as exc:
            log.warning(
                "metrics: port %s is not available (%s); this run serves no /metrics "
                "(use PROMETHEUS_MULTIPROC_DIR and `make exporter` to scrape every run)",
                port,
                exc.strerror or exc,
            )
            return None
        _STATE.update(port=server.server_port, server=server)
        return server.server_port


def _mark_process_dead(pid: int, path: str) -> None:
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, path)


def init_from_settings(settings) -> bool:
    """Start metrics if configured (`metrics_port` or PROMETHEUS_MULTIPROC_DIR); True if on."""
    port = getattr(settings, "metrics_port", None)
    if not port and not multiprocess_dir():
        _STATE["tried"] = True
        return False
    enable(int(port) if port else None)
    return True


def _auto_start() -> None:
    """First `track_job` of a process: start metrics from the settings (never raises)."""
    if _STATE["tried"]:
        return
    _STATE["tried"] = True
    try:
        from marketpipe.settings import load_settings

        init_from_settings(load_settings())
    except Exception as exc:  # a bad setting is reported by the flow itself
        log.debug("metrics not started: %s", exc)


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


def queue_depth(job: str, stage: str, depth: float) -> None:
    if m := _m("queue"):
        m.labels(job=job, stage=stage).set(depth)


def queue_add(job: str, stage: str, n: float) -> None:
    if m := _m("queue"):
        m.labels(job=job, stage=stage).inc(n)


def stage_done(job: str, stage: str, seconds: float, items: int = 0) -> None:
    """One batch went through `stage` in `seconds`, carrying `items` rows/ticks."""
    if m := _m("stage_seconds"):
        m.labels(job=job, stage=stage).observe(max(0.0, seconds))
        if items:
            _m("stage_items").labels(job=job, stage=stage).inc(int(items))


def stage_failed(job: str, stage: str) -> None:
    if m := _m("stage_errors"):
        m.labels(job=job, stage=stage).inc()


@contextlib.contextmanager
def stage(job: str, stage_name: str) -> Iterator[dict]:
    """Time a block as one batch of `stage_name`; set `out["items"]` inside to count rows."""
    out: dict = {"items": 0}
    t0 = time.perf_counter()
    try:
        yield out
    except BaseException:
        stage_failed(job, stage_name)
        raise
    finally:
        stage_done(job, stage_name, time.perf_counter() - t0, out["items"])


def _delta(run: str, key: str, value: float) -> float:
    prev = _SEEN.get((run, key), 0.0)
    _SEEN[(run, key)] = value
    return max(0.0, value - prev)


def observe_stream(
    run: str,
    provider: str,
    *,
    received: int,
    aggregated: int,
    dropped: int,
    late: int,
    bars: int,
    flushes: int,
    queue: int,
    flush_seconds: list[float] = (),
    worst_latency_s: list[float] = (),
    job: str = "realtime",
) -> None:
    """A real-time session's cumulative counts (about once a second); recorded as deltas.

    `flush_seconds` / `worst_latency_s`: the micro-batches committed since the last call.
    """
    if not _STATE["enabled"]:
        return
    m = _STATE["metrics"]
    for outcome, value in (("received", received), ("dropped", dropped), ("late", late)):
        if d := _delta(run, outcome, value):
            m["ticks"].labels(job=job, provider=provider, outcome=outcome).inc(d)
    if d := _delta(run, "aggregated", aggregated):
        m["stage_items"].labels(job=job, stage="aggregate").inc(d)
    if d := _delta(run, "bars", bars):
        m["rows"].labels(job=job, provider=provider).inc(d)
        m["stage_items"].labels(job=job, stage="flush").inc(d)
    if d := _delta(run, "flushes", flushes):
        m["batches"].labels(job=job, provider=provider).inc(d)
    m["queue"].labels(job=job, stage="queue").set(queue)
    for s in flush_seconds:
        m["stage_seconds"].labels(job=job, stage="flush").observe(s)
    for s in worst_latency_s:
        m["tick_latency"].labels(job=job).observe(s)


@contextlib.contextmanager
def track_job(job: str) -> Iterator[None]:
    """Active gauge up while the block runs; a job_runs_total sample when it ends."""
    _auto_start()
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
        _STATE.update(
            enabled=False, tried=False, port=None, server=None, metrics=None, registry=None
        )
        _STATE["mode"] = None
        _SEEN.clear()
