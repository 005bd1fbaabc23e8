"""The run scope every flow uses: stores, the job_runs lifecycle, progress to a publisher."""

from __future__ import annotations

import logging

import pytest

from marketpipe.realtime.wiring import SessionProgress
from marketpipe.run_scope import Progress, Publisher, open_run
from marketpipe.settings import load_settings


class Recorder(Publisher):
    def __init__(self):
        self.sent: list[tuple[str, float, str]] = []
        self.tables: dict[str, list[dict]] = {}

    def table(self, key, rows, description):
        self.tables[key] = rows

    def progress(self, key, description):
        return lambda pct, text: self.sent.append((key, pct, text))


@pytest.fixture
def settings(tmp_path, sqlite_url):
    return load_settings(data_dir=tmp_path, hot_url=sqlite_url, cold_url=str(tmp_path / "lake"))


def test_job_rows_record_success_and_failure(settings):
    pub = Recorder()
    with open_run("ingestion", settings, "run-1", pub) as run:
        with run.job({"symbols": ["AAPL"]}) as counts:
            progress = run.progress("ingestion-progress", 4)
            progress.advance()
            progress.advance(3)
            counts["hot"] = 7
        run.table("ingestion-summary", [{"symbol": "AAPL"}], "x")
        with pytest.raises(ValueError), run.job({}):
            raise ValueError("provider said no")
        jobs = run.stores.hot.recent_jobs(10)
    assert [(k, p) for k, p, _ in pub.sent] == [("ingestion-progress", p) for p in (0, 25, 100)]
    assert pub.sent[-1][2] == "4/4 chunks" and pub.tables["ingestion-summary"]
    by_status = {j["status"]: j for j in jobs}
    assert by_status["success"]["counts"] == {"hot": 7}
    assert by_status["success"]["flow_run_id"] == "run-1"
    assert by_status["failed"]["error"] == "ValueError: provider said no"


def test_progress_without_a_sink_and_an_empty_plan():
    p = Progress(total=0)
    assert p.percent == 100.0 and Progress(3).advance() == pytest.approx(33.33)


def test_session_progress_is_throttled_by_its_clock():
    now = [100.0]
    sent = []
    report = type("R", (), dict(ticks_received=1, bars_written=1, drops=0, late_ticks=0))()
    report.max_queue_depth = 0
    progress = SessionProgress(
        60.0, lambda pct, _: sent.append(pct), logging.getLogger("t"), 5.0, lambda: now[0]
    )
    for t in (100.0, 102.0, 106.0, 130.0, 200.0):
        now[0] = t
        progress.update(report)
    assert sent == [0.0, 10.0, 50.0, 100.0]
