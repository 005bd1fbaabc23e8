"""Run a paced synthetic session until SIGTERM; commit each flush to a SQLite file (test helper).

usage: python rt_sigterm_session.py DB_PATH REPORT_PATH
Prints READY once flushes have committed READY_TICKS ticks (progress, not wall time, tells the
test when to send SIGTERM); writes the SessionReport (+ start ns) as JSON.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import timedelta

import pandas as pd

from marketpipe.realtime import RealtimeSession, SyntheticTickSource, install_sigterm

READY_TICKS = 2_000  # the test asserts more than 1000 ticks were received before SIGTERM


class SqliteSink:
    def __init__(self, path: str):
        self.conn = sqlite3.connect(path, check_same_thread=False)
        self.conn.execute(
            "create table bars (symbol text, interval text, ts text, open real, high real, low real,"
            " close real, volume real, vwap real, trades integer, primary key (symbol, interval, ts))"
        )

    def write_bars(self, df: pd.DataFrame) -> int:
        rows = [
            (
                r.symbol,
                r.interval,
                r.ts.isoformat(),
                r.open,
                r.high,
                r.low,
                r.close,
                r.volume,
                r.vwap,
                int(r.trades),
            )
            for r in df.itertuples(index=False)
        ]
        with self.conn:
            self.conn.executemany("insert or replace into bars values (?,?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def write_quarantine(self, df: pd.DataFrame) -> int:
        return len(df)


def main(db_path: str, report_path: str) -> None:
    start = pd.Timestamp.now(tz="UTC").floor("ms")
    source = SyntheticTickSource(["AAPL", "MSFT"], 5_000, seed=5, start=start)
    committed = [0]

    def on_flush(info: dict) -> None:
        before = committed[0]
        committed[0] += int(info.get("ticks", 0))
        if before < READY_TICKS <= committed[0]:
            print("READY", flush=True)

    session = RealtimeSession(
        source,
        SqliteSink(db_path),
        bar_window=timedelta(seconds=1),
        allowed_lateness=timedelta(seconds=1),
        batch_size=1_000,
        flush_ms=100,
        duration=120,
        on_flush=on_flush,
    )
    install_sigterm(session)
    report = session.run()
    with open(report_path, "w") as fh:
        json.dump({"start_ns": int(start.value), **report.to_dict()}, fh, default=str)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
