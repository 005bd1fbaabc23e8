"""Gap ranges across a holiday, an early close and a DST change; backfill plans and estimates."""

from datetime import date

import pandas as pd

from marketpipe.backfill import RequestProfile, estimate_seconds, plan_backfill, request_profile
from marketpipe.calendar import expected_bar_starts
from marketpipe.gaps import find_gaps, missing_ranges, repair_windows


def _present(expected, drop):
    keep = expected.delete(
        [
            expected.get_loc(
                pd.Timestamp(t).tz_convert("UTC")
                if pd.Timestamp(t).tzinfo
                else pd.Timestamp(t, tz="UTC")
            )
            for t in drop
        ]
    )
    return pd.DataFrame({"symbol": "AAPL", "ts": keep})


def test_daily_gap_spans_holiday_as_one_range():
    expected = expected_bar_starts("1d", date(2024, 7, 1), date(2024, 7, 9))
    assert pd.Timestamp("2024-07-04", tz="UTC") not in expected  # Independence Day
    bars = _present(expected, ["2024-07-03", "2024-07-05"])
    gaps = find_gaps(bars, ["AAPL"], date(2024, 7, 1), date(2024, 7, 9), "1d")["AAPL"]
    assert len(gaps) == 1
    assert gaps[0].first == pd.Timestamp("2024-07-03", tz="UTC")
    assert gaps[0].last == pd.Timestamp("2024-07-05", tz="UTC")
    assert gaps[0].count == 2


def test_minute_gap_across_early_close_is_contiguous():
    start, end = date(2024, 11, 29), date(2024, 12, 2)
    expected = expected_bar_starts("1m", start, end)
    friday = expected[expected < pd.Timestamp("2024-11-30", tz="UTC")]
    assert friday[-1] == pd.Timestamp("2024-11-29 17:59", tz="UTC")  # 13:00 ET early close
    drop = list(friday[-10:]) + list(expected[len(friday) : len(friday) + 5])
    bars = pd.DataFrame({"symbol": "AAPL", "ts": expected.difference(pd.DatetimeIndex(drop))})
    gaps = find_gaps(bars, ["AAPL"], start, end, "1m")["AAPL"]
    assert [(g.first, g.last, g.count) for g in gaps] == [
        (pd.Timestamp("2024-11-29 17:50", tz="UTC"), pd.Timestamp("2024-12-02 14:34", tz="UTC"), 15)
    ]


def test_hourly_gap_across_dst_change():
    start, end = date(2024, 3, 8), date(2024, 3, 11)
    expected = expected_bar_starts("1h", start, end)
    last_fri = pd.Timestamp("2024-03-08 20:30", tz="UTC")  # 15:30 EST
    first_mon = pd.Timestamp("2024-03-11 13:30", tz="UTC")  # 09:30 EDT
    assert last_fri in expected and first_mon in expected
    bars = _present(expected, [last_fri, first_mon])
    gaps = find_gaps(bars, ["AAPL"], start, end, "1h")["AAPL"]
    assert [(g.first, g.last, g.count) for g in gaps] == [(last_fri, first_mon, 2)]


def test_no_gaps_and_unknown_symbol_all_missing():
    expected = expected_bar_starts("1d", date(2024, 1, 2), date(2024, 1, 31))
    bars = pd.DataFrame({"symbol": "AAPL", "ts": expected})
    found = find_gaps(bars, ["AAPL", "MSFT"], date(2024, 1, 2), date(2024, 1, 31), "1d")
    assert found["AAPL"] == []
    assert sum(g.count for g in found["MSFT"]) == len(expected)


def test_repair_windows_merge_within_one_request():
    expected = expected_bar_starts("1d", date(2024, 1, 2), date(2024, 12, 31))
    drop = [expected[5], expected[6], expected[100], expected[200]]
    gaps = missing_ranges("AAPL", "1d", expected, expected.difference(pd.DatetimeIndex(drop)))
    assert len(gaps) == 3
    assert len(repair_windows(gaps, 50_000, expected)) == 1  # one request covers all three
    assert len(repair_windows(gaps, 50, expected)) == 3  # spans too long for one request each


def test_polygon_daily_plan_200_symbols_5_years():
    profile = RequestProfile(max_bars_per_request=50_000, rate=(5, 60.0), request_seconds=0.0)
    syms = [f"S{i:03d}" for i in range(200)]
    plan = plan_backfill("polygon", syms, date(2019, 1, 1), date(2023, 12, 31), "1d", profile)
    assert len(plan.chunks) == 200 and plan.requests == 200
    assert plan.seconds == 39 * 60  # 40 windows of 5, waiting a minute between them
    again = plan_backfill("polygon", syms, date(2019, 1, 1), date(2023, 12, 31), "1d", profile)
    assert [c.chunk_id for c in again.chunks] == [c.chunk_id for c in plan.chunks]
    assert again.job_key == plan.job_key


def test_minute_plan_respects_results_per_request():
    profile = request_profile("polygon", "1m")
    plan = plan_backfill("polygon", ["AAPL"], date(2024, 1, 1), date(2024, 12, 31), "1m", profile)
    # Polygon's minute aggregates include pre/post market (16 h = 960 bars a session), and those
    # count against the 50k page: 52 sessions per request, not 128 (which would page, uncounted)
    sessions_per_request = 50_000 // 960
    assert len(plan.chunks) == -(-252 // sessions_per_request)
    for c in plan.chunks:
        n = len(expected_bar_starts("1m", c.start, c.end))
        assert n * 960 // 390 <= 50_000


def test_yahoo_intraday_windows_stay_inside_limit():
    profile = request_profile("yahoo", "1m")
    plan = plan_backfill("yahoo", ["AAPL"], date(2024, 6, 3), date(2024, 6, 28), "1m", profile)
    assert len(plan.chunks) >= 4
    assert all((c.end - c.start).days < 7 for c in plan.chunks)


def test_estimate_is_zero_for_local_sources():
    plan = plan_backfill(
        "synthetic",
        ["A", "B"],
        date(2024, 1, 1),
        date(2024, 3, 1),
        "1d",
        request_profile("synthetic", "1d"),
    )
    assert plan.requests == 0 and estimate_seconds(0, plan.profile) == 0
