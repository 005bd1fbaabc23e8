"""A lake writer process for the concurrency tests: `python -m tests.storage.lake_writer URL
OPTS_JSON FIRST_DAY DAYS BATCHES` writes 1m bars of AAPL for DAYS days from FIRST_DAY (of 2019)
in BATCHES commits and prints the summed write report as JSON. Values depend only on the key,
so overlapping writers agree on every row."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd

from marketpipe.storage.delta_lake import DeltaLake


def minute_bars(first_day: int, days: int) -> pd.DataFrame:
    start = pd.Timestamp("2019-01-01 14:30", tz="UTC") + pd.Timedelta(days=first_day)
    ts = pd.DatetimeIndex(
        [
            d + pd.Timedelta(minutes=m)
            for d in pd.date_range(start, periods=days)
            for m in range(390)
        ]
    )
    x = (ts.asi8 // 60_000_000_000 % 100_000).astype("float64") / 100
    return pd.DataFrame(
        {
            "symbol": "AAPL",
            "interval": "1m",
            "ts": ts,
            "open": 100 + x,
            "high": 101 + x,
            "low": 99 + x,
            "close": 100.5 + x,
            "volume": 1000.0,
            "vwap": 100.2 + x,
            "trades": pd.array(np.full(len(ts), 7), dtype="Int64"),
            "source": "test",
        }
    )


def main(argv: list[str]) -> int:
    url, opts, first, days, batches = argv[0], json.loads(argv[1]), *map(int, argv[2:5])
    lake = DeltaLake(url, opts)
    frame = minute_bars(first, days)
    totals = {"rows_added": 0, "rows_changed": 0, "conflicts_retried": 0, "commits": 0}
    for part in np.array_split(np.arange(len(frame)), batches):
        report = lake.write_bars(frame.iloc[part])
        totals["rows_added"] += report.rows_added
        totals["rows_changed"] += report.rows_changed
        totals["conflicts_retried"] += report.conflicts_retried
        totals["commits"] += 1
        print(json.dumps({"progress": totals["commits"]}), flush=True)
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
