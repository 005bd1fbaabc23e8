"""Outage bookkeeping and the REST comparison used by reconciliation."""

from __future__ import annotations

import pandas as pd
from rt_support import ts_ns

from marketpipe.realtime.aggregator import rows_to_bars
from marketpipe.realtime.gapfill import GapTracker, bar_rows
from marketpipe.realtime.reconcile import compare_bars

SEC = 1_000_000_000


def test_gap_is_ready_only_once_its_last_window_is_closed():
    g = GapTracker()
    g.open(ts_ns("2024-01-02T15:00:00.400"))
    g.open(ts_ns("2024-01-02T15:00:00.900"))  # a second failure before data resumed: same outage
    assert g.take_ready(ts_ns("2024-01-02T15:00:09"), SEC) == [], "not resumed yet"
    g.data_resumed(ts_ns("2024-01-02T15:00:02.500"))
    assert g.take_ready(ts_ns("2024-01-02T15:00:02.999"), SEC) == []
    (gap,) = g.take_ready(ts_ns("2024-01-02T15:00:03"), SEC)
    assert (gap.start_ns, gap.end_ns) == (
        ts_ns("2024-01-02T15:00:00.400"),
        ts_ns("2024-01-02T15:00:02.500"),
    )
    assert g.take_ready(ts_ns("2024-01-02T15:00:09"), SEC) == [], "taken once"


def test_open_gap_is_closed_at_session_end():
    g = GapTracker()
    g.open(ts_ns("2024-01-02T15:00:00"))
    (gap,) = g.take_ready(None, SEC, force_end=ts_ns("2024-01-02T15:00:05"))
    assert gap.end_ns == ts_ns("2024-01-02T15:00:05")


def test_compare_bars_reports_every_kind_of_difference():
    t0, t1, t2 = (
        ts_ns("2024-01-02T15:00:00"),
        ts_ns("2024-01-02T15:00:01"),
        ts_ns("2024-01-02T15:00:02"),
    )
    streamed = {
        ("AAPL", t0): ("AAPL", t0, 10.0, 11.0, 9.0, 10.5, 100.0, 10.2, 3),
        ("AAPL", t1): ("AAPL", t1, 10.5, 10.5, 10.5, 10.5, 5.0, 10.5, 1),
    }
    rest = rows_to_bars(
        [
            ("AAPL", t0, 10.0, 11.0, 9.0, 10.5, 100.0, 10.2, 3),  # same
            ("AAPL", t1, 10.5, 10.9, 10.5, 10.9, 9.0, 10.7, 2),  # stream missed a tick
            ("AAPL", t2, 11.0, 11.0, 11.0, 11.0, 1.0, 11.0, 1),  # stream missed the bar
        ],
        "1s",
        "polygon",
    )
    wins, count, details = compare_bars(streamed, rest)
    assert count == 2
    assert [d["kind"] for d in details] == ["values_differ", "missing_in_stream"]
    assert set(details[0]["fields"]) == {"high", "close", "volume", "vwap", "trades"}
    assert list(bar_rows(wins)) == [("AAPL", t1), ("AAPL", t2)]

    only_stream = {**streamed, ("MSFT", t0): ("MSFT", t0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1)}
    _, count, details = compare_bars(only_stream, rest)
    assert count == 3 and details[-1] == {
        "symbol": "MSFT",
        "ts": pd.Timestamp(t0, tz="UTC").isoformat(),
        "kind": "missing_in_rest",
    }
