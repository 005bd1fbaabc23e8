"""Provider faults through `marketpipe run --source polygon`: a 429 storm, 5xx and dropped requests.

The run completes, the server's request log never shows more than the limit in any window, and
rows in = rows stored + rows quarantined with no duplicate key in `read_bars`.
"""

from __future__ import annotations

import re

from marketpipe.ratelimit import max_in_any_window
from tests.reliability.conftest import (
    Drop,
    Reply,
    agg,
    all_bars,
    assert_no_duplicate_keys,
    open_current_stores,
    poly_path,
    serve_reference,
)

DAYS = ["2023-01-03", "2023-01-04", "2023-01-05", "2023-01-06", "2023-01-09"]
LIMIT = 20  # requests per second


def _page(sym: str, rows: list[dict]) -> dict:
    return {"ticker": sym, "status": "OK", "results": rows, "resultsCount": len(rows)}


def test_429_storm_and_5xx_complete_within_the_limit(cli, poly, mp_env):
    mp_env.setenv("MARKETPIPE_POLYGON_RATE_LIMIT", f"{LIMIT}/1s")
    serve_reference(poly, ("AAPL", "MSFT"))
    aapl = poly_path("AAPL", DAYS[0], DAYS[-1])
    msft = poly_path("MSFT", DAYS[0], DAYS[-1])
    too_many = {"status": "ERROR", "error": "You've exceeded the maximum requests per minute"}
    # AAPL: 40 rate-limited answers in a row (some with Retry-After), then the data
    for i in range(40):
        poly.add(aapl, Reply(429, too_many, {"Retry-After": "0.05"} if i % 10 == 0 else {}))
    poly.add_json(aapl, _page("AAPL", [agg(d) for d in DAYS]))
    # MSFT: 503, 502, a dropped connection, 500, then data with one bad row (high < low)
    for status in (503, 502):
        poly.add(msft, Reply(status, "<html>bad gateway</html>", content_type="text/html"))
    poly.add(msft, Drop())
    poly.add(msft, Reply(500, {"status": "ERROR", "error": "internal"}))
    rows = [agg(d) for d in DAYS[:-1]] + [agg(DAYS[-1], h=98.0, low=99.0)]
    poly.add_json(msft, _page("MSFT", rows))

    res = cli(
        "run",
        "--source",
        "polygon",
        "--symbols",
        "AAPL,MSFT",
        "--start",
        DAYS[0],
        "--end",
        DAYS[-1],
    )
    assert res.code == 0, res.err[-3000:]
    assert "Traceback" not in res.err

    agg_times = sorted(poly.times("/v2/aggs/"))
    assert sum(1 for s in poly.seen if s.path.startswith(aapl)) >= 41
    all_times = sorted(poly.times())
    assert max_in_any_window(all_times, 1.0) <= LIMIT, "rate limit exceeded"
    assert len(agg_times) >= 46

    stores = open_current_stores()
    try:
        bars = all_bars(stores, ["AAPL", "MSFT"])
        quarantined = stores.hot.count_quarantine(["AAPL", "MSFT"])
        reasons = set(stores.hot.read_quarantine(["MSFT"])["reason"])
    finally:
        stores.close()
    assert_no_duplicate_keys(bars)
    assert len(bars) == 9 and quarantined == 1 and reasons == {"high_lt_low,high_lt_open_close"}
    assert len(bars) + quarantined == len(DAYS) * 2  # rows in = stored + quarantined
    assert re.search(r"total\s+10\s+0\s+9\s+1\b", res.out), res.out  # fetched hot cold quar.


def test_5xx_forever_fails_with_one_clear_line(cli, poly):
    serve_reference(poly)
    poly.add(poly_path("AAPL", DAYS[0], DAYS[-1]), Reply(503, {"status": "ERROR"}))
    res = cli(
        "run", "--source", "polygon", "--symbols", "AAPL", "--start", DAYS[0], "--end", DAYS[-1]
    )
    assert res.code == 1
    assert "Traceback" not in res.err
    last = res.err.strip().splitlines()[-1]
    assert last.startswith("marketpipe: error: ") and "503" in last and "AAPL" in last
    stores = open_current_stores()
    try:
        assert all_bars(stores, ["AAPL"]).empty
        job = stores.hot.recent_jobs(1)[0]
    finally:
        stores.close()
    assert job["status"] == "failed" and "503" in (job["error"] or "")
    # 1 try + 5 retries, each one request
    assert len(poly.times("/v2/aggs/")) == 6
