"""Metrics of real runs, scraped over HTTP while they run (the real CLI in subprocesses).

- A real-time session with `MARKETPIPE_METRICS_PORT` serves the seed metrics while it streams;
  a second session on the same port completes with one warning (it used to fail with
  `Address already in use`).
- The documented way to scrape every run of a deployment: runs write to PROMETHEUS_MULTIPROC_DIR
  (what `make worker` sets) and one exporter (`make exporter`) serves their sum: a real-time
  session and a concurrent backfill are both in it, live and after they end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import ROOT, _free_port, project_env

pytestmark = pytest.mark.slow
SEED_FAMILIES = {
    "pipeline_job_runs",
    "pipeline_rows_written",
    "pipeline_batches",
    "pipeline_provider_requests",
    "pipeline_active_jobs",
    "pipeline_provider_rate_limit_violations",
}
MARKETPIPE = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[tuple[str, tuple], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "pid"))
            out[(s.name, labels)] = out.get((s.name, labels), 0.0) + s.value
    return out


def _poll(url: str, ready, deadline_s: float = 180, proc=None) -> dict:
    deadline = time.monotonic() + deadline_s
    got: dict = {}
    while time.monotonic() < deadline:
        got = _scrape(url)
        if got and ready(got):
            return got
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"metrics never became ready; last scrape: {sorted(got.items())[:40]}")


def _env(tmp: Path, name: str, api_url: str, **extra) -> dict[str, str]:
    data = tmp / name
    env = project_env(
        PREFECT_API_URL=api_url,
        MARKETPIPE_DATA_DIR=str(data),
        MARKETPIPE_HOT_URL=f"sqlite:///{data / 'hot.db'}",
        MARKETPIPE_COLD_URL=str(data / "lake"),
        **extra,
    )
    data.mkdir(parents=True, exist_ok=True)
    for k in ("MARKETPIPE_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"):
        if k not in extra:
            env.pop(k, None)
    return env


def _session(env, duration: float, log: Path) -> subprocess.Popen:
    cmd = [*MARKETPIPE, "run", "--mode", "realtime", "--source", "synthetic"]
    cmd += ["--symbols", "AAPL,MSFT", "--duration", str(duration)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen, log: Path) -> int:
    proc.send_signal(signal.SIGTERM)  # what Prefect sends on cancellation: flush, then end
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("no stop on SIGTERM:\n" + log.read_text()[-3000:]) from None


def _v(got, name, **labels) -> float:
    return got.get((name, tuple(sorted(labels.items()))), 0.0)


def test_realtime_session_is_scraped_while_it_runs_and_a_busy_port_fails_nothing(
    prefect_server, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    api, port = PREFECT_API_URL.value(), _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log1, log2 = tmp_path / "s1.log", tmp_path / "s2.log"
    first = _session(_env(tmp_path, "s1", api, MARKETPIPE_METRICS_PORT=str(port)), 300, log1)
    try:
        got = _poll(
            url,
            lambda g: (
                _v(g, "pipeline_rows_written_total", job="realtime", provider="synthetic") > 0
            ),
            proc=first,
        )
        assert _v(got, "pipeline_active_jobs", job_name="realtime") == 1
        ticks = _v(
            got, "pipeline_ticks_total", job="realtime", provider="synthetic", outcome="received"
        )
        assert ticks > 0
        assert _v(got, "pipeline_batches_total", job="realtime", provider="synthetic") > 0
        assert _v(got, "pipeline_stage_seconds_count", job="realtime", stage="flush") > 0
        assert ("pipeline_queue_depth", (("job", "realtime"), ("stage", "queue"))) in got
        assert SEED_FAMILIES <= _families(url)
        # a second session on the same port: completes, with one warning
        second = _session(_env(tmp_path, "s2", api, MARKETPIPE_METRICS_PORT=str(port)), 3, log2)
        assert second.wait(timeout=240) == 0, log2.read_text()[-3000:]
        assert log2.read_text().count(f"port {port} is not available") == 1
    finally:
        code = _stop(first, log1)
    assert code == 0, log1.read_text()[-3000:]


def _families(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return {f.name for f in text_string_to_metric_families(resp.read().decode())}


def test_one_exporter_serves_every_run_of_the_worker(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from deployments.exporter import serve

    api = PREFECT_API_URL.value()
    mp_dir = tmp_path / "prometheus"
    server, _ = serve(mp_dir, 0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    log_rt, log_bf = tmp_path / "rt.log", tmp_path / "bf.log"
    try:
        session = _session(_env(tmp_path, "rt", api, **extra), 300, log_rt)
        end = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=1)
        backfill = subprocess.Popen(
            [*MARKETPIPE, "backfill", "--source", "synthetic", "--symbols", "AAPL,MSFT,SPY"]
            + ["--start", str((end - pd.Timedelta(days=60)).date()), "--end", str(end.date())]
            + ["--interval", "1d"],
            cwd=ROOT,
            env=_env(tmp_path, "bf", api, **extra),
            stdout=log_bf.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            live = _poll(
                url,
                lambda g: (
                    _v(g, "pipeline_active_jobs", job_name="realtime") == 1
                    and _v(g, "pipeline_rows_written_total", job="realtime", provider="synthetic")
                    > 0
                ),
                proc=session,
            )
            assert live
            assert backfill.wait(timeout=300) == 0, log_bf.read_text()[-3000:]
            got = _poll(
                url,
                lambda g: _v(g, "pipeline_job_runs_total", job="historical", status="success") == 1,
            )
            assert _v(got, "pipeline_rows_written_total", job="historical", provider="synthetic")
            assert _v(got, "pipeline_stage_seconds_count", job="historical", stage="fetch") >= 1
            assert _v(got, "pipeline_queue_depth", job="historical", stage="chunks") == 0
            assert _v(got, "pipeline_active_jobs", job_name="historical") == 0
            assert _v(got, "pipeline_active_jobs", job_name="realtime") == 1  # still streaming
        finally:
            code = _stop(session, log_rt)
            if backfill.poll() is None:
                backfill.kill()
        assert code == 0, log_rt.read_text()[-3000:]
        after = _scrape(url)
        assert _v(after, "pipeline_job_runs_total", job="realtime", status="success") == 1
        assert _v(after, "pipeline_active_jobs", job_name="realtime") == 0
        assert os.listdir(mp_dir)  # the finished runs' counters stay in the sum
    finally:
        server.shutdown()
