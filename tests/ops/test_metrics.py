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
