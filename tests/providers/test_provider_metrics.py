"""Provider requests reach Prometheus: every HTTP request counted by status, 429s as violations."""

from __future__ import annotations

import pytest

from marketpipe import metrics
from marketpipe.errors import RetryableError
from tests.ops.test_metrics import _free_port, _scrape
from tests.providers.conftest import Reply
from tests.providers.test_polygon import AGGS_1D, NEXT, make, q


@pytest.fixture
def live_metrics():
    metrics._reset_for_tests()
    port = metrics.enable(_free_port(), addr="127.0.0.1")
    yield port
    metrics._reset_for_tests()


def test_polygon_requests_and_429_are_counted(polygon_server, live_metrics):
    polygon_server.add(AGGS_1D, Reply(429, {"status": "ERROR"}, {"Retry-After": "0.1"}))
    polygon_server.add_file(AGGS_1D, "polygon/aggs_AAPL_1d_page1.json")
    polygon_server.add_file(NEXT + "?cursor=page2", "polygon/aggs_AAPL_1d_page2.json")
    polygon_server.add_file(NEXT + "?cursor=page3", "polygon/aggs_AAPL_1d_page3.json")
    prov = make(polygon_server, limit=100, period=1.0)
    with pytest.raises(RetryableError):
        prov.fetch(q())
    prov.fetch(q())  # three pages
    got = _scrape(live_metrics)
    requests = "pipeline_provider_requests_total"
    assert got[(requests, (("provider", "polygon"), ("status", "429")))] == 1
    assert got[(requests, (("provider", "polygon"), ("status", "ok")))] == 3
    violations = "pipeline_provider_rate_limit_violations_total"
    assert got[(violations, (("provider", "polygon"),))] == 1
