"""Task runner selection from MARKETPIPE_TASK_RUNNER, and a flow on a local 2-worker Dask cluster."""

from __future__ import annotations

import pandas as pd
import pytest
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.task_runner import task_runner_from_env
from marketpipe.errors import ConfigError


def test_runner_specs(monkeypatch):
    monkeypatch.delenv("MARKETPIPE_TASK_RUNNER", raising=False)
    r = task_runner_from_env()
    assert isinstance(r, ThreadPoolTaskRunner) and r._max_workers == 4
    assert task_runner_from_env("threads:8")._max_workers == 8
    d = task_runner_from_env("dask:2")
    assert isinstance(d, DaskTaskRunner)
    assert d.cluster_kwargs["n_workers"] == 2 and d.cluster_kwargs["processes"] is True
    assert task_runner_from_env("dask:3:inproc").cluster_kwargs["processes"] is False
    assert task_runner_from_env("dask:tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    monkeypatch.setenv("MARKETPIPE_TASK_RUNNER", "dask:2")
    assert isinstance(task_runner_from_env(), DaskTaskRunner)
    for bad in ("spark", "threads:0", "dask:x", "dask:2:gpu"):
        with pytest.raises(ConfigError, match="MARKETPIPE_TASK_RUNNER"):
            task_runner_from_env(bad)


@pytest.mark.slow
def test_processing_on_a_local_dask_cluster(prefect_server, tmp_path, monkeypatch, sqlite_url):
    """The processing flow on two Dask worker *processes* (`dask:2`; the open stores travel as
    their URLs, see `enable_store_pickling`), over bars ingested first with threads."""
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", sqlite_url)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    from flows.ingestion import ingestion
    from flows.processing import processing

    symbols = ["AAPL", "MSFT", "SPY", "QQQ"]
    today = pd.Timestamp.now(tz="UTC").date()
    start = (pd.Timestamp(today) - pd.Timedelta(days=60)).date()
    stored = ingestion(symbols=symbols, start=start, end=today)["totals"]
    runner = task_runner_from_env("dask:2")
    report = processing.with_options(task_runner=runner)(
        symbols=symbols, start=start, end=today, chunk_size=1
    )
    t = report["totals"]
    assert t["bars_in"] == stored["hot"] + stored["cold"] > 0
    assert t["features_hot"] + t["features_cold"] == t["bars_in"]
    assert {q["symbol"] for q in report["quality"]} == set(symbols)
