"""`marketpipe monitor`: a live screen of running pipelines and sessions, their stages and health.

Reads the Prometheus metrics of the runs (the exporter beside the worker, `make exporter`, or a
run's own `MARKETPIPE_METRICS_PORT`) twice per refresh and the stores; rules of the health score:
`marketpipe.health`. `--once` prints one frame and exits 1 when the score is below
`MARKETPIPE_HEALTH_SCORE_MIN` (usable from cron and tests).
"""

from __future__ import annotations

import json
import time

import typer

from cli.help_format import examples
from cli.main import app

EXPORTER_URL = "http://127.0.0.1:9464/metrics"


def _urls(given: list[str] | None, settings) -> list[str]:
    if given:
        return list(given)
    urls = [EXPORTER_URL]
    if settings.metrics_port:
        urls.append(f"http://127.0.0.1:{settings.metrics_port}/metrics")
    return urls


def _frame(stores, settings, urls: list[str], sample_s: float) -> dict:
    from marketpipe.health import Thresholds, live_stages, scrape, store_health

    t0 = time.monotonic()
    prev, _ = scrape(urls)
    time.sleep(sample_s)  # the sampling window of the rates, not a synchronisation
    cur, down = scrape(urls)
    live = live_stages(prev, cur, time.monotonic() - t0)
    thresholds = Thresholds.from_settings(settings)
    health = store_health(stores, thresholds, live=live if cur else None)
    running = [j for j in stores.hot.recent_jobs(50) if j.get("status") == "running"]
    slow = [
        s.stage
        for s in live.stages
        if thresholds.throughput_min_per_s
        and 0 < s.throughput_per_s < thresholds.throughput_min_per_s
    ]
    neck = live.bottleneck
    return {
        "health": health.to_dict(),
        "bottleneck": f"{neck.job}/{neck.stage}" if neck else None,
        "stages": [vars(s) for s in live.stages],
        "active_jobs": live.active,
        "running": [
            {
                "job": j["job"],
                "started_at": str(j.get("started_at")),
                "flow_run_id": j.get("flow_run_id"),
                "chunks": f"{j.get('chunks_done') or 0}/{j.get('chunks_total')}"
                if j.get("chunks_total")
                else None,
            }
            for j in running
        ],
        "below_throughput_min": slow,
        "ticks": live.ticks,
        "drops": live.drops,
        "tick_p99_ms": live.tick_p99_ms,
        "metrics_down": down,
    }


def _render(frame: dict):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    h = frame["health"]
    colour = "green" if h["healthy"] else "red"
    why = "; ".join(h["reasons"]) or "no penalties"
    head = Panel(
        f"[bold {colour}]health {h['score']}/100[/] (due session {h['due_session']}): {why}\n"
        f"bottleneck: [bold]{frame['bottleneck'] or '-'}[/]   ticks/refresh {frame['ticks']}, "
        f"dropped {frame['drops']}, tick→commit p99 {frame['tick_p99_ms'] or '-'} ms",
        title="marketpipe monitor",
    )
    runs = Table(title="running", expand=True)
    for col in ("job", "started", "chunks", "flow run"):
        runs.add_column(col)
    for r in frame["running"]:
        runs.add_row(r["job"], r["started_at"], r["chunks"] or "-", str(r["flow_run_id"] or "-"))
    stages = Table(title="stages", expand=True)
    for col in ("job/stage", "items/s", "latency ms", "queue", "error rate", "busy"):
        stages.add_column(col, justify="right" if col != "job/stage" else "left")
    for s in frame["stages"]:
        name = f"{s['job']}/{s['stage']}"
        mark = " ◀ bottleneck" if name == frame["bottleneck"] else ""
        stages.add_row(
            name + mark,
            f"{s['throughput_per_s']:.1f}",
            "-" if s["latency_ms"] is None else f"{s['latency_ms']:.1f}",
            "-" if s["queue"] is None else f"{s['queue']:.0f}",
            f"{s['error_rate']:.1%}",
            f"{s['busy']:.2f}",
        )
    parts = [head, runs, stages]
    if frame["metrics_down"]:
        parts.append(f"metrics not reachable: {', '.join(frame['metrics_down'])}")
    return Group(*parts)


@app.command(
    epilog=examples(
        "marketpipe monitor",
        "marketpipe monitor --once --json",
        "marketpipe monitor --metrics-url http://127.0.0.1:9464/metrics",
    )
)
def monitor(
    metrics_url: list[str] = typer.Option(
        None, "--metrics-url", help=f"A /metrics URL to read (repeatable; default {EXPORTER_URL})."
    ),
    once: bool = typer.Option(False, "--once", help="Print one frame; exit 1 when unhealthy."),
    refresh: float = typer.Option(2.0, "--refresh", min=0.1, help="Seconds per frame."),
    as_json: bool = typer.Option(False, "--json", help="With --once: one JSON document."),
):
    """Live screen of running pipelines and sessions: per-stage throughput, latency, queue depth,
    error rate, the bottleneck stage and the health score (rules: docs/operations.md)."""
    from rich.console import Console
    from rich.live import Live

    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    settings = load_settings()
    urls = _urls(metrics_url, settings)
    stores = open_stores(settings)
    try:
        if once:
            frame = _frame(stores, settings, urls, refresh)
            if as_json:
                typer.echo(json.dumps(frame, indent=2, sort_keys=True, default=str))
            else:
                Console(width=120).print(_render(frame))
            if not frame["health"]["healthy"]:
                raise SystemExit(1)
            return
        with Live(_render(_frame(stores, settings, urls, 0.2)), refresh_per_second=2) as live:
            while True:
                live.update(_render(_frame(stores, settings, urls, refresh)))
    except KeyboardInterrupt:
        return
    finally:
        stores.close()
