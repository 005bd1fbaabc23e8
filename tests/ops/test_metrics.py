"""Metrics: off by default (recorders are no-ops); on a free port they are scraped over HTTP."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from marketpipe import metrics
from marketpipe.settings import load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fresh_metrics():
    metrics._reset_for_tests()
    yield metrics
    metrics._reset_for_tests()


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_disabled_recorders_are_noops(fresh_metrics, monkeypatch):
    monkeypatch.delenv("MARKETPIPE_METRICS_PORT", raising=False)
    assert metrics.init_from_settings(load_settings()) is False
    assert not metrics.enabled()
    metrics.record_job("ingestion", "success")
    metrics.rows_written("ingestion", "synthetic", 10)
    with metrics.track_job("ingestion"):
        pass


def test_enabled_metrics_are_scraped_over_http(fresh_metrics, monkeypatch):
    port = _free_port()
    monkeypatch.setenv("MARKETPIPE_METRICS_PORT", str(port))
    assert metrics.init_from_settings(load_settings()) is True
    assert metrics.init_from_settings(load_settings()) is True  # once per process: no error
    assert metrics.enable(port) == port

    metrics.record_job("ingestion", "success")
    metrics.record_job("ingestion", "success")
    metrics.record_job("historical", "failed")
    metrics.rows_written("ingestion", "polygon", 250)
    metrics.rows_written("ingestion", "polygon", 50)
    metrics.batch_done("ingestion", "polygon")
    metrics.provider_request("polygon", 200)
    metrics.provider_request("polygon", 429)
    metrics.job_started("realtime")
    with pytest.raises(RuntimeError), metrics.track_job("processing"):
        raise RuntimeError("boom")

    got = _scrape(port)
    assert got[("pipeline_job_runs_total", (("job", "ingestion"), ("status", "success")))] == 2
    assert got[("pipeline_job_runs_total", (("job", "historical"), ("status", "failed")))] == 1
    assert got[("pipeline_job_runs_total", (("job", "processing"), ("status", "failed")))] == 1
    assert (
        got[("pipeline_rows_written_total", (("job", "ingestion"), ("provider", "polygon")))] == 300
    )
    assert got[("pipeline_batches_total", (("job", "ingestion"), ("provider", "polygon")))] == 1
    assert (
        got[("pipeline_provider_requests_total", (("provider", "polygon"), ("status", "200")))] == 1
    )
    assert (
        got[("pipeline_provider_requests_total", (("provider", "polygon"), ("status", "429")))] == 1
    )
    assert got[("pipeline_active_jobs", (("job_name", "realtime"),))] == 1
    assert got[("pipeline_active_jobs", (("job_name", "processing"),))] == 0
    assert got[("pipeline_provider_rate_limit_violations_total", (("provider", "polygon"),))] == 1


def test_a_busy_port_warns_once_and_recording_goes_on(fresh_metrics, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level("WARNING", logger="marketpipe.metrics"):
            assert metrics.enable(port, addr="127.0.0.1") is None
            assert metrics.enable(port, addr="127.0.0.1") is None  # once per process
    assert metrics.enabled()
    with metrics.track_job("historical"), metrics.stage("historical", "fetch") as st:
        st["items"] = 5
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"port {port} is not available" in warnings[0].getMessage()


def test_stage_timings_queue_depth_and_stream_deltas(fresh_metrics):
    port = metrics.enable(_free_port(), addr="127.0.0.1")
    with metrics.stage("historical", "store") as st:
        st["items"] = 7
    with pytest.raises(ValueError), metrics.stage("historical", "fetch"):
        raise ValueError("vendor down")
    metrics.queue_depth("historical", "chunks", 4)
    metrics.queue_add("historical", "chunks", -1)
    kw = dict(aggregated=0, late=0, flushes=1, queue=3, flush_seconds=[0.02])
    metrics.observe_stream("r1", "synthetic", received=100, dropped=2, bars=10, **kw)
    metrics.observe_stream("r1", "synthetic", received=250, dropped=2, bars=30, **kw)
    got = _scrape(port)
    hs = (("job", "historical"), ("stage", "store"))
    assert got[("pipeline_stage_seconds_count", hs)] == 1
    assert got[("pipeline_stage_items_total", hs)] == 7
    hf = (("job", "historical"), ("stage", "fetch"))
    assert got[("pipeline_stage_errors_total", hf)] == 1
    assert got[("pipeline_queue_depth", (("job", "historical"), ("stage", "chunks")))] == 3
    rt = (("job", "realtime"), ("outcome", "received"), ("provider", "synthetic"))
    assert got[("pipeline_ticks_total", rt)] == 250  # cumulative counts become deltas
    assert (
        got[("pipeline_rows_written_total", (("job", "realtime"), ("provider", "synthetic")))] == 30
    )
    assert got[("pipeline_queue_depth", (("job", "realtime"), ("stage", "queue")))] == 3
    assert got[("pipeline_stage_seconds_count", (("job", "realtime"), ("stage", "flush")))] == 2


def test_grafana_dashboard_queries_only_metrics_we_export():
    import json
    import re
    from pathlib import Path

    dash = json.loads((Path(__file__).parents[2] / "docs" / "grafana-marketpipe.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bpipeline_[a-z_]+", e)}
    doc = metrics.__doc__
    exported = set(re.findall(r"\bpipeline_[a-z_]+", doc))
    suffixes = ("_bucket", "_sum", "_count")
    bases = {next((u[: -len(s)] for s in suffixes if u.endswith(s)), u) for u in used}
    assert bases <= exported, bases - exported
    assert {"pipeline_job_runs_total", "pipeline_queue_depth", "pipeline_stage_seconds"} <= bases
