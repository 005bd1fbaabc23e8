"""What every flow shares: its run scope (`flow_run`) and Prefect artifacts, published one way.

`flow_run(job)` = `marketpipe.run_scope.open_run` with the settings read now, the Prefect flow
run id and a publisher that writes table / markdown / progress artifacts. An artifact that cannot
be written is logged, never fatal to a data run. Progress artifacts exist only inside a run.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from datetime import date

import pandas as pd

from marketpipe.report_render import quality_table
from marketpipe.run_reports import coverage_report
from marketpipe.run_scope import Progress, Publisher, RunScope, open_run
from marketpipe.settings import Settings, load_settings

log = logging.getLogger(__name__)


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return log


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def current_flow_run_id() -> str:
    """The Prefect flow run id (or a fresh uuid outside a run)."""
    with contextlib.suppress(Exception):
        from prefect.context import get_run_context

        run = getattr(get_run_context(), "flow_run", None)
        if run is not None:
            return str(run.id)
    return str(uuid.uuid4())


class PrefectPublisher(Publisher):
    """Table, markdown and progress artifacts on the current run."""

    def table(self, key: str, rows: list[dict], description: str) -> None:
        from prefect.artifacts import create_table_artifact

        try:
            create_table_artifact(table=rows, key=key, description=description)
        except Exception as exc:  # artifact storage problems must not fail a data run
            _logger().warning("could not publish artifact %s: %s", key, exc)

    def markdown(self, key: str, markdown: str, description: str) -> None:
        from prefect.artifacts import create_markdown_artifact

        try:
            create_markdown_artifact(markdown=markdown, key=key, description=description)
        except Exception as exc:
            _logger().warning("could not publish artifact %s: %s", key, exc)

    def progress(self, key: str, description: str):
        if not _in_run():
            return None  # outside a flow/task run there is nothing to attach it to
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        try:
            artifact_id = create_progress_artifact(progress=0.0, key=key, description=description)
        except Exception as exc:
            _logger().warning("could not publish progress artifact %s: %s", key, exc)
            return None

        def send(percent: float, text: str) -> None:
            try:
                update_progress_artifact(artifact_id, progress=percent, description=text or None)
            except Exception as exc:
                _logger().warning("could not update progress artifact %s: %s", key, exc)

        send.artifact_id = artifact_id
        return send


@contextlib.contextmanager
def flow_run(job: str, settings: Settings | None = None) -> Iterator[RunScope]:
    """The run scope of a flow: settings (read now), stores, now, run id, metrics, artifacts."""
    with open_run(
        job, settings or load_settings(), current_flow_run_id(), PrefectPublisher()
    ) as scope:
        yield scope


class RunProgress(Progress):
    """A progress artifact outside a `RunScope`: `RunProgress(total=n, key=…)`, `.advance()`."""

    def __init__(self, total: int, key: str, description: str = ""):
        self.key = key
        sink = PrefectPublisher().progress(key, description or f"0/{max(int(total), 1)} chunks")
        self.artifact_id = getattr(sink, "artifact_id", None)
        super().__init__(total, sink)


def publish_table(key: str, rows: list[dict], description: str) -> None:
    PrefectPublisher().table(key, rows, description)


def publish_quality_table(
    key: str, report_rows: list[dict], quarantine: pd.DataFrame | None, description: str
) -> None:
    PrefectPublisher().table(key, quality_table(report_rows, quarantine), description)


def publish_coverage_report(
    stores,
    symbols: list[str],
    interval: str,
    start: date,
    end: date,
    key: str,
    title: str,
    notes: list[str] | None = None,
) -> dict | None:
    """Publish the coverage markdown of what the stores hold for the range; returns the summary."""
    try:
        markdown, summary = coverage_report(
            stores, symbols, interval, start, end, title, None, notes
        )
    except Exception as exc:
        _logger().warning("could not publish coverage report %s: %s", key, exc)
        return None
    PrefectPublisher().markdown(key, markdown, f"coverage {interval} {start}..{end}")
    return summary


def publish_run_reports(
    run: RunScope,
    prefix: str,
    rows: list[dict],
    symbols: list[str],
    interval: str,
    start: date,
    end: date,
    what: str,
    quarantine: pd.DataFrame | None = None,
    summary: list[dict] | None = None,
) -> None:
    """The artifacts every batch run leaves: `{prefix}-summary` (rows), `{prefix}-quality`
    (rows with the reason codes of `quarantine`, default: the rows this run quarantined) and
    `{prefix}-coverage` (the picture, the run's window marked in the stored history).
    `summary` replaces `rows` in the summary table."""
    run.table(f"{prefix}-summary", summary or rows or [{"symbol": "-"}], what)
    if quarantine is None:
        quarantine = run.stores.hot.read_quarantine(
            symbols=symbols, interval=interval, run_id=run.run_id
        )
    run.table(f"{prefix}-quality", quality_table(rows, quarantine), what)
    title = f"Coverage after {prefix} ({what})"
    try:
        markdown, _ = coverage_report(run.stores, symbols, interval, start, end, title, run.now)
    except Exception as exc:
        _logger().warning("could not publish coverage report %s-coverage: %s", prefix, exc)
        return
    run.markdown(f"{prefix}-coverage", markdown, f"coverage {interval} {start}..{end}")
