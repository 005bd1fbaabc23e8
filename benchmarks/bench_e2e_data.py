"""Input files for the end-to-end benchmarks: `rows` one-minute bars on real XNYS session minutes.

`write_minute_bars(path, rows)` writes a canonical Parquet file (symbol, interval, ts, OHLCV,
vwap, trades) in row groups, symbol by symbol, without holding more than one symbol in memory.
Run `python -m benchmarks.bench_e2e_data OUT.parquet ROWS` to make one by hand.
"""

from __future__ import annotations

import sys
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketpipe.calendar import expected_bar_starts

MINUTES_PER_SESSION = 390
DAYS = 60  # sessions per symbol; symbols = rows / (60 × 390)
FIRST = date(2024, 1, 2)


def session_minutes(days: int = DAYS) -> pd.DatetimeIndex:
    starts = expected_bar_starts("1m", FIRST, date(2026, 1, 1))
    sessions = pd.Index(starts.tz_convert("America/New_York").date)
    keep = sessions.isin(sorted(set(sessions))[:days])
    return starts[keep]


def minute_table(symbol: str, ts: pd.DatetimeIndex, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = len(ts)
    close = 100.0 + np.cumsum(rng.normal(0, 0.05, n))
    open_ = np.r_[close[0], close[:-1]]
    return pa.table(
        {
            "symbol": pa.array([symbol] * n, pa.string()),
            "interval": pa.array(["1m"] * n, pa.string()),
            "ts": pa.array(ts.as_unit("us").asi8, pa.timestamp("us", tz="UTC")),
            "open": open_,
            "high": np.maximum(open_, close) + 0.05,
            "low": np.minimum(open_, close) - 0.05,
            "close": close,
            "volume": rng.integers(100, 10_000, n).astype("float64"),
            "vwap": (open_ + close) / 2,
            "trades": rng.integers(1, 500, n).astype("int64"),
        }
    )


def write_minute_bars(path, rows: int, days: int = DAYS) -> int:
    """Write about `rows` bars (whole symbol-sessions); returns the exact row count."""
    ts = session_minutes(days)
    per_symbol = len(ts)
    symbols = max(1, -(-rows // per_symbol))
    written = 0
    writer = None
    try:
        for i in range(symbols):
            take = min(per_symbol, rows - written)
            table = minute_table(f"S{i:04d}", ts[:take], i)
            writer = writer or pq.ParquetWriter(str(path), table.schema)
            writer.write_table(table, row_group_size=256_000)
            written += take
            if written >= rows:
                break
    finally:
        if writer is not None:
            writer.close()
    return written


def csv_copy(parquet_path, csv_path, columns: list[str] | None = None) -> None:
    """The same rows as CSV (for `psql \\copy`), streamed batch by batch."""
    import pyarrow.csv as pacsv

    pf = pq.ParquetFile(str(parquet_path))
    writer = None
    try:
        for rb in pf.iter_batches(batch_size=500_000, columns=columns):
            writer = writer or pacsv.CSVWriter(
                str(csv_path), rb.schema, write_options=pacsv.WriteOptions(include_header=False)
            )
            writer.write_batch(rb)
    finally:
        if writer is not None:
            writer.close()


if __name__ == "__main__":  # pragma: no cover
    n = write_minute_bars(sys.argv[1], int(sys.argv[2]))
    print(f"{n} rows → {sys.argv[1]}")
