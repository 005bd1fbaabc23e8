"""Run artifacts against the test server (rendering: tests/test_report_render.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from flows import _publish as art


def test_progress_outside_a_run_is_harmless():
    p = art.RunProgress(total=4, key="test-progress")
    assert p.artifact_id is None
    assert p.advance() == 25.0 and p.advance(3) == 100.0


@pytest.fixture
def embedded_env(tmp_path, monkeypatch, sqlite_url):
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", sqlite_url)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("MARKETPIPE_HOT_DAYS", "30")
    return tmp_path


def test_ingestion_run_publishes_artifacts(prefect_server, embedded_env):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.ingestion import ingestion

    today = pd.Timestamp.now(tz="UTC").date()
    start = (pd.Timestamp(today) - pd.Timedelta(days=60)).date()
    report = ingestion(symbols=["AAPL", "MSFT"], start=start, end=today, chunk_size=1)
    assert report["totals"]["fetched"] > 0
    with get_client(sync_client=True) as client:
        # the flow's own run: artifacts are attached to it
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[report["run_id"]])
            )
        )
    by_key = {a.key: a for a in arts if a.key}
    assert {"ingestion-summary", "ingestion-quality", "ingestion-coverage"} <= set(by_key)
    progress = [a for a in arts if a.type == "progress"]
    assert progress and float(progress[0].data) == 100.0
    for a in arts:
        json.dumps(a.data)  # JSON-safe
    quality = json.loads(by_key["ingestion-quality"].data)
    assert {r["symbol"] for r in quality} == {"AAPL", "MSFT"}
    assert {"fetched", "hot", "cold", "quarantined", "reasons"} <= set(quality[0])
    md = by_key["ingestion-coverage"].data
    assert "![coverage](data:image/" in md and "| AAPL |" in md
    assert len(md) < 200_000


def _png_width(markdown: str) -> int:
    import base64

    uri = markdown.split("](data:image/png;base64,", 1)[1].split(")", 1)[0]
    return int.from_bytes(base64.b64decode(uri)[16:20], "big")  # IHDR width


def test_the_pipeline_run_carries_the_artifacts_and_every_stage_leaves_its_own(
    prefect_server, embedded_env
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
    )

    from flows.pipeline import pipeline

    today = pd.Timestamp.now(tz="UTC").date()
    start = (pd.Timestamp(today) - pd.Timedelta(days=60)).date()
    state = pipeline(
        stages=["ingestion", "processing"],
        symbols=["AAPL", "MSFT"],
        start=start,
        end=today,
        return_state=True,
    )
    assert state.is_completed()
    top = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        mine = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[top]))
        )
        stages = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[top])
            )
        )
        every = {
            a.key
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in stages])
                )
            )
            if a.key
        }
    by_key = {a.key: a for a in mine if a.key}
    assert {"pipeline-summary", "pipeline-quality", "pipeline-coverage"} <= set(by_key)
    assert {r["stage"] for r in json.loads(by_key["pipeline-summary"].data)} == {
        "ingestion",
        "processing",
    }
    for stage in ("ingestion", "processing"):
        assert {f"{stage}-{k}" for k in ("summary", "quality", "coverage", "progress")} <= every
    md = by_key["pipeline-coverage"].data
    assert "This run's window" in md and _png_width(md) >= 800
