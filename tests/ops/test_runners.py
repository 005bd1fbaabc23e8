"""Task runner selection from MARKETPIPE_TASK_RUNNER, and a flow on a local 2-worker Dask cluster."""

from __future__ import annotations

import pandas as pd
import pytest
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows._runners import task_runner_from_env
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
def test_ingestion_on_a_local_dask_cluster(prefect_server, tmp_path, monkeypatch, sqlite_url):
    """Two Dask worker *processes* (`dask:2`; the open `SqlHotStore` argument travels as its URL,
    see `enable_store_pickling`). Needs the merged tree."""
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", sqlite_url)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    from flows.ingestion import ingestion

    runner = task_runner_from_env("dask:2")
    today = pd.Timestamp.now(tz="UTC").date()
    start = (pd.Timestamp(today) - pd.Timedelta(days=45)).date()
    report = ingestion.with_options(task_runner=runner)(
        symbols=["AAPL", "MSFT", "SPY", "QQQ"], start=start, end=today, chunk_size=1
    )
    t = report["totals"]
    assert t["fetched"] > 0 and t["fetched"] == t["hot"] + t["cold"] + t["quarantined"]
    assert {r["symbol"] for r in report["rows"]} == {"AAPL", "MSFT", "SPY", "QQQ"}
