"""Alerts that reach a person: bootstrap's automations, a real Prefect server, a local receiver.

A stale session (after its deadline) and a failed marketpipe run each end as an HTTP POST on a
loopback receiver, sent by the Prefect server's automation through the `marketpipe-alerts`
webhook block.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from marketpipe import alerts
from marketpipe.health import Health, LiveStages, StageFigures, Thresholds


class _Receiver:
    def __init__(self):
        self.posts: list[dict] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.changed:
                    receiver.posts.append(json.loads(body or b"{}"))
                    receiver.changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.posts):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            return list(self.posts)


def test_evaluate_raises_stale_and_threshold_alerts():
    t = Thresholds(latency_max_ms=100, throughput_min_per_s=10, error_rate_max=0.1)
    h = Health(score=60, healthy=False, due_session="2024-11-29", reasons=["x"])
    live = LiveStages(
        stages=[StageFigures("realtime", "flush", 5.0, 150.0, 0, 0.0, 0.9)],
        active={"realtime": 1},
        batches=10,
        errors=2,
    )
    got = alerts.evaluate(h, t, live, ["AAPL"])
    assert [(a.event, a.resource_id) for a in got] == [
        (alerts.STALE, "marketpipe.freshness"),
        (alerts.THRESHOLD, "marketpipe.threshold.health_score"),
        (alerts.THRESHOLD, "marketpipe.threshold.latency_ms"),
        (alerts.THRESHOLD, "marketpipe.threshold.throughput_per_s"),
        (alerts.THRESHOLD, "marketpipe.threshold.error_rate"),
    ]
    assert got[0].payload == {"due_session": "2024-11-29", "symbols": ["AAPL"]}
    fine = Health(score=100, healthy=True, due_session="2024-11-29")
    assert alerts.evaluate(fine, t, None, []) == []


@pytest.mark.slow
def test_stale_session_and_failed_run_notify_through_the_server(
    prefect_server, tmp_path, monkeypatch
):
    from prefect.client.orchestration import get_client

    from deployments import bootstrap as bs
    from deployments.alerting import ALERTS_AUTOMATION, FAILED_AUTOMATION
    from flows.health import health_check
    from flows.realtime import realtime_session
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from tests.ops.test_health import _daily

    receiver = _Receiver()
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", f"sqlite:///{tmp_path / 'hot.db'}")
    monkeypatch.setenv("MARKETPIPE_COLD_URL", str(tmp_path / "lake"))
    monkeypatch.setenv("MARKETPIPE_ALERT_WEBHOOK_URL", receiver.url)
    monkeypatch.delenv("MARKETPIPE_METRICS_PORT", raising=False)
    settings = load_settings()
    stores = open_stores(settings)
    try:  # AAPL's newest bar is weeks old: stale whatever today is
        old = pd.Timestamp.now(tz="UTC").normalize() - pd.Timedelta(days=40)
        stores.hot.upsert_bars(
            _daily("AAPL", [(old - pd.Timedelta(days=i)).date() for i in (0, 1)])
        )
    finally:
        stores.close()
    report = bs.bootstrap(settings, deploy_flows=False)
    assert {ALERTS_AUTOMATION, FAILED_AUTOMATION} <= set(report.automations)
    assert "marketpipe-alerts" in report.blocks
    try:
        result = health_check()
        assert any("AAPL" in m for m in result["alerts"])
        with pytest.raises(Exception, match="mode must be realtime or hybrid"):
            realtime_session(mode="nope")

        def arrived(posts):
            subjects = [p.get("subject", "") for p in posts]
            return any(s == "marketpipe alert: marketpipe.alert.stale" for s in subjects) and any(
                s.startswith("marketpipe run failed: realtime/") for s in subjects
            )

        posts = receiver.wait_for(arrived, timeout=120)
        assert arrived(posts), posts
        stale = next(p for p in posts if p["subject"].endswith("alert.stale"))
        assert "AAPL" in stale["body"] and "deadline" in stale["body"]
        failed = next(p for p in posts if p["subject"].startswith("marketpipe run failed"))
        assert "Failed" in failed["body"]
    finally:
        receiver.server.shutdown()
        with get_client(sync_client=True) as client:  # the session's server is shared
            for name in (ALERTS_AUTOMATION, FAILED_AUTOMATION):
                for a in client.read_automations_by_name(name):
                    client.delete_automation(a.id)
            client.delete_block_document(report.blocks["marketpipe-alerts"])
