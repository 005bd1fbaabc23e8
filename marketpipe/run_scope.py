"""One run's scope (Prefect-free): settings, stores, `now`, run id, counts, progress and metrics.

Every flow, and any command that runs a job in-process, does the same thing around its work:

    with open_run("ingestion", settings, run_id, publisher) as run:   # stores open, metrics up
        with run.job(params):                                       # a job_runs row
            progress = run.progress("ingestion-progress", total=n)
            ...; progress.advance(); run.counts["hot"] += …
    # job row finished (success | failed | cancelled with the error), stores closed

`publisher` is what reaches the outside world (the flows pass one that writes Prefect artifacts;
the default writes nothing): `table(key, rows, description)`, `markdown(key, text, description)`
and `progress(key, description) -> (callable(percent, description) | None)`.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from marketpipe import metrics
from marketpipe.settings import Settings
from marketpipe.storage import Stores, open_stores

log = logging.getLogger(__name__)

ProgressSink = Callable[[float, str], None]


class Publisher:
    """Publishes nothing; the flows' subclass writes Prefect artifacts."""

    def table(self, key: str, rows: list[dict], description: str) -> None:
        return None

    def markdown(self, key: str, markdown: str, description: str) -> None:
        return None

    def progress(self, key: str, description: str) -> ProgressSink | None:
        return None


class Progress:
    """`done` of `total` units; every change is sent to the sink (a progress artifact)."""

    def __init__(self, total: int, sink: ProgressSink | None = None, unit: str = "chunks"):
        self.nothing_to_do = int(total) <= 0  # an empty plan is complete
        self.total = max(int(total), 1)
        self.done = 0
        self.unit = unit
        self.sink = sink
        self._send()

    @property
    def percent(self) -> float:
        if self.nothing_to_do:
            return 100.0
        return round(100.0 * min(self.done, self.total) / self.total, 2)

    def advance(self, n: int = 1) -> float:
        return self.set(self.done + n)

    def set(self, done: int) -> float:
        self.done = int(done)
        self._send()
        return self.percent

    def _send(self) -> None:
        if self.sink is not None:
            self.sink(self.percent, f"{self.done}/{self.total} {self.unit}")


@dataclass
class RunScope:
    """What one run holds; see the module docstring."""

    job_name: str
    settings: Settings
    stores: Stores
    run_id: str
    now: pd.Timestamp
    publisher: Publisher = field(default_factory=Publisher)
    counts: dict = field(default_factory=dict)
    job_id: int | None = None

    @contextlib.contextmanager
    def job(self, params: dict) -> Iterator[dict]:
        """Record a `job_runs` row: started now, then success with `counts` or the error."""
        self.job_id = self.stores.hot.start_job(self.job_name, params, flow_run_id=self.run_id)
        try:
            with metrics.track_job(self.job_name):
                yield self.counts
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
            error = f"{type(exc).__name__}: {exc}"[:2000]
            self.stores.hot.finish_job(self.job_id, status, dict(self.counts), error=error)
            raise
        self.stores.hot.finish_job(self.job_id, "success", dict(self.counts), error=None)

    def record_chunks(self, done: int, total: int, rows: int) -> None:
        """Chunk progress on the job row (what `marketpipe status` and a resume read)."""
        if self.job_id is not None:
            self.stores.hot.update_job(
                self.job_id, chunks_done=done, chunks_total=total, rows_so_far=rows
            )

    def progress(
        self, key: str, total: int, description: str = "", unit: str = "chunks"
    ) -> Progress:
        return Progress(total, self.publisher.progress(key, description), unit)

    def progress_sink(self, key: str, description: str) -> ProgressSink | None:
        """The raw sink, for runs measured in time rather than units (a real-time session)."""
        return self.publisher.progress(key, description)

    def table(self, key: str, rows: list[dict], description: str) -> None:
        self.publisher.table(key, rows, description)

    def markdown(self, key: str, markdown: str, description: str) -> None:
        self.publisher.markdown(key, markdown, description)


@contextlib.contextmanager
def open_run(
    job: str,
    settings: Settings,
    run_id: str | None = None,
    publisher: Publisher | None = None,
    now: pd.Timestamp | None = None,
) -> Iterator[RunScope]:
    """Open the stores, start the metrics server (when configured), close the stores after."""
    metrics.init_from_settings(settings)
    stores = open_stores(settings)
    scope = RunScope(
        job_name=job,
        settings=settings,
        stores=stores,
        run_id=run_id or str(uuid.uuid4()),
        now=pd.Timestamp.now(tz="UTC") if now is None else now,
        publisher=publisher or Publisher(),
    )
    try:
        yield scope
    finally:
        stores.close()
