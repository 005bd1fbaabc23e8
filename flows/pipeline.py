"""The `pipeline` flow: runs the selected stages in order (`stages=["ingestion", "processing"]`)."""

from __future__ import annotations

from datetime import date

from prefect import flow

from flows._publish import flow_run, publish_run_reports
from flows.historical import historical
from flows.ingestion import ingestion
from flows.processing import processing
from flows.realtime import realtime_session
from flows.task_runner import task_runner_from_env
from marketpipe.errors import ConfigError
from marketpipe.status import non_session_reason

STAGES = ("ingestion", "processing", "historical")
MODES = ("batch", "realtime", "hybrid")


def check_stages(stages: list[str], mode: str) -> list[str]:
    """Validate stage and mode names (ConfigError naming the bad one)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; use {', '.join(STAGES)}")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    return stages


@flow(name="pipeline", log_prints=True)
def pipeline(
    stages: list[str] | None = None,
    mode: str = "batch",
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    interval: str = "1d",
    source: str = "synthetic",
    replay_path: str | None = None,
    duration_s: float | None = None,
    skip_non_sessions: bool = False,
) -> dict:
    """Run `stages` (default: ingestion) in `mode` for the symbols and dates; returns per-stage reports."""
    stages = check_stages(list(stages or ["ingestion"]), mode)
    if skip_non_sessions and (reason := non_session_reason()):
        print(f"skipping: {reason}")
        return {"skipped": reason}
    reports: dict[str, dict] = {}
    if mode in ("realtime", "hybrid"):
        # a streaming session replaces the batch stages (ingestion would race the stream)
        reports["realtime"] = realtime_session(
            mode=mode, source=source, symbols=symbols, duration_s=duration_s
        )
        return reports
    common = dict(symbols=symbols, start=start, end=end, interval=interval)
    for stage in stages:
        if stage == "ingestion":
            reports[stage] = ingestion(source=source, replay_path=replay_path, **common)
        elif stage == "processing":
            # MARKETPIPE_TASK_RUNNER (e.g. dask:4) picks the runner when the stage starts
            reports[stage] = processing.with_options(task_runner=task_runner_from_env())(**common)
        elif stage == "historical":
            if not (symbols and start and end):
                raise ConfigError("stage historical needs symbols, start and end")
            reports[stage] = historical.with_options(
                task_runner=task_runner_from_env(default_threads=2)
            )(source=source, replay_path=replay_path, **common)
    _publish_on_the_pipeline_run(reports, interval)
    return reports


def _publish_on_the_pipeline_run(reports: dict[str, dict], interval: str) -> None:
    """The run users open (a deployment's `pipeline` run) carries the summary, quality and
    coverage artifacts too, not only its stage subflows."""
    with flow_run("pipeline") as run:
        totals = [{"stage": k, **(r.get("totals") or {})} for k, r in reports.items()]
        first = next((reports[k] for k in STAGES if k in reports), None)
        if first is None or not first.get("start"):
            run.table("pipeline-summary", totals, "stages")
            return
        rows = first.get("rows") or first.get("completeness") or first.get("quality") or []
        syms = first.get("symbols") or [r["symbol"] for r in rows]
        lo, hi = date.fromisoformat(first["start"]), date.fromisoformat(first["end"])
        quarantine = run.stores.hot.read_quarantine(
            symbols=syms, interval=interval, run_id=first.get("run_id")
        )
        what = f"{', '.join(reports)} {interval} {lo}..{hi}"
        publish_run_reports(
            run, "pipeline", rows, syms, interval, lo, hi, what, quarantine, summary=totals
        )
