"""Rendering of run reports (tables, the coverage picture) and the coverage cells behind it."""

from __future__ import annotations

import base64
import json
from datetime import date

import pandas as pd

from marketpipe import report_render as art
from marketpipe.coverage import coverage_matrix


def test_quality_table_counts_reason_codes():
    quarantine = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", "MSFT", "BAD SYM"],
            "ts": pd.to_datetime(["2024-01-02"] * 4, utc=True),
            "reason": ["high_lt_low", "high_lt_low,price_not_positive", "future_bar", "bad_symbol"],
        }
    )
    rows = art.quality_table(
        [{"symbol": "AAPL", "fetched": 10, "quarantined": 2}, {"symbol": "MSFT", "fetched": 5}],
        quarantine,
    )
    by = {r["symbol"]: r for r in rows}
    assert by["AAPL"]["reasons"] == "high_lt_low: 2, price_not_positive: 1"
    assert by["MSFT"]["reasons"] == "future_bar: 1"
    assert by["BAD SYM"]["quarantined"] == 1
    json.dumps(rows)
    assert art.quality_table([{"symbol": "SPY"}], None) == [{"symbol": "SPY", "reasons": ""}]


def _matrix() -> pd.DataFrame:
    cols = [date(2024, 1, d) for d in (2, 3, 4, 5)]
    m = pd.DataFrame("present", index=pd.Index(["AAPL", "MSFT"], name="symbol"), columns=cols)
    m.iloc[0, 1] = "missing"
    m.iloc[1, 2] = "quarantined"
    m.iloc[1, 3] = "partial"
    return m


def test_coverage_images_are_small_and_embedded():
    m = _matrix()
    svg = art.coverage_svg(m)
    assert svg.startswith("<svg") and svg.count("<rect") == 4 + 8  # legend + cells
    md = art.coverage_markdown(m, "Coverage")
    uri = md.split("](", 1)[1].split(")", 1)[0]
    image = base64.b64decode(uri.split(",", 1)[1])
    png = art.coverage_png(m)
    if png is not None:  # matplotlib installed: a small PNG
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 60_000
        assert uri.startswith("data:image/png;base64,") and image[:4] == b"\x89PNG"
    else:  # without matplotlib: the hand-drawn SVG
        assert uri.startswith("data:image/svg+xml;base64,") and image.decode() == svg
    assert "| AAPL | 3 | 0 | 0 | 1 |" in md and "| MSFT | 2 | 1 | 1 | 0 |" in md
    assert art.coverage_summary(m)[1] == {
        "symbol": "MSFT",
        "present": 2,
        "partial": 1,
        "quarantined": 1,
        "missing": 0,
    }


def test_coverage_matrix_from_frames():
    """Needs marketpipe.calendar (merged tree)."""
    days = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]  # 4th: holiday
    bars = pd.DataFrame(
        {"symbol": ["AAPL"] * 3 + ["MSFT"], "ts": pd.to_datetime(days[:3] + days[3:], utc=True)}
    )
    quarantine = pd.DataFrame(
        {"symbol": ["MSFT"], "ts": pd.to_datetime(["2024-07-02"], utc=True), "reason": ["x"]}
    )
    m = coverage_matrix(
        bars, quarantine, ["AAPL", "MSFT"], "1d", date(2024, 7, 1), date(2024, 7, 5)
    )
    assert [str(c) for c in m.columns] == days
    assert list(m.loc["AAPL"]) == ["present", "present", "present", "missing"]
    assert list(m.loc["MSFT"]) == ["missing", "quarantined", "missing", "present"]


def test_long_ranges_are_binned_and_the_picture_is_readable():
    from marketpipe.calendar import sessions

    days = [d.date() for d in sessions("2023-01-01", "2024-12-31")]  # 501 sessions
    m = pd.DataFrame("present", index=pd.Index(["AAPL", "MSFT"], name="symbol"), columns=days)
    m.iloc[0, 0] = "quarantined"  # the first week of AAPL: quarantined wins
    m.iloc[1, 4:9] = "missing"  # MSFT's second week (2023-01-09..13): missing all week
    m.iloc[1, 10] = "missing"  # third week (2023-01-17..20): one session missing -> partial
    weekly, unit = art.bin_matrix(m)
    assert unit == "week" and 100 <= len(weekly.columns) <= 106
    assert weekly.columns[0] == date(2023, 1, 2)  # bins are labelled by their Monday
    assert weekly.iloc[0, 0] == "quarantined" and weekly.iloc[0, 1] == "present"
    assert list(weekly.iloc[1, :3]) == ["present", "missing", "partial"]
    many = pd.DataFrame(
        "present", index=["SPY"], columns=[d.date() for d in sessions("2010-01-01", "2024-12-31")]
    )
    monthly, unit = art.bin_matrix(many)
    assert unit == "month" and len(monthly.columns) == 15 * 12
    png = art.coverage_png(weekly, window=(date(2024, 10, 1), date(2024, 12, 31)), unit=unit)
    if png is not None:
        assert int.from_bytes(png[16:20], "big") >= 800  # IHDR width in pixels
    svg = art.coverage_svg(weekly, window=(date(2024, 10, 1), date(2024, 12, 31)))
    assert 'width="' in svg and int(svg.split('width="', 1)[1].split('"', 1)[0]) >= 800
    assert 'stroke="#1565c0"' in svg  # the run's window is outlined
