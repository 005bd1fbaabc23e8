"""Cold-lake benchmark: `ParquetLake.write_bars` / `read_bars` vs plain pyarrow, local and S3.

Run: `python -m benchmarks.bench_lake` (S3 = a moto server this script starts on loopback).
Baselines get the same pandas frame: write = `Table.from_pandas` + one `pq.write_table` call
(pyarrow defaults, and again with the lake's Parquet options: dictionary only on low-cardinality
columns, delta-encoded ts);
read = `pq.read_table(file).to_pandas()` of the symbol-year's file. Best of `repeats` runs.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.lake_fs import PARQUET_WRITE_OPTIONS

SYMBOLS = [f"SYM{i}" for i in range(10)]


def make_frame(rows: int, symbols: list[str] = SYMBOLS) -> pd.DataFrame:
    """`rows` one-minute bars split evenly over `symbols`, all in 2024 (one partition each)."""
    per = rows // len(symbols)
    rng = np.random.default_rng(42)
    ts = pd.date_range("2024-01-02", periods=per, freq="1min", tz="UTC").as_unit("us")
    frames = []
    for sym in symbols:
        close = 100 + np.cumsum(rng.normal(0, 0.05, per))
        spread = np.abs(rng.normal(0, 0.02, per))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "interval": "1m",
                    "ts": ts,
                    "open": close - spread,
                    "high": close + 2 * spread,
                    "low": close - 2 * spread,
                    "close": close,
                    "volume": rng.integers(100, 10_000, per).astype("float64"),
                    "vwap": close,
                    "trades": pd.array(rng.integers(1, 200, per), dtype="Int64"),
                    "source": "synthetic",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_target(
    name: str, new_url: Callable[[], str], opts: dict, df: pd.DataFrame, repeats: int
) -> list[tuple]:
    """Rows: (backend, operation, rows, ours s, baseline s)."""
    lake0 = ParquetLake(new_url(), opts)
    fs, base_root = lake0.io.fs, lake0.io.root

    def ours_write():
        ParquetLake(new_url(), opts).write_bars(df)

    def base_write():
        table = pa.Table.from_pandas(df, preserve_index=False)
        path = f"{base_root}/baseline-{uuid.uuid4().hex}.parquet"
        if lake0.io.is_local:
            os.makedirs(base_root, exist_ok=True)
            pq.write_table(table, path)
        else:
            pq.write_table(table, path, filesystem=fs)

    def base_write_same_options():
        table = pa.Table.from_pandas(df, preserve_index=False)
        path = f"{base_root}/baseline-opts-{uuid.uuid4().hex}.parquet"
        if lake0.io.is_local:
            os.makedirs(base_root, exist_ok=True)
        pq.write_table(
            table, path, filesystem=None if lake0.io.is_local else fs, **PARQUET_WRITE_OPTIONS
        )

    w_ours, w_base = best_of(ours_write, repeats), best_of(base_write, repeats)
    w_base_opts = best_of(base_write_same_options, repeats)

    lake = ParquetLake(new_url(), opts)
    lake.write_bars(df)
    noop = best_of(lambda: lake.write_bars(df), 1)
    one = df[df["symbol"] == SYMBOLS[0]]
    fix = one.iloc[:1].copy()
    fix["close"] = fix["close"] + 1
    restate = best_of(lambda: lake.write_bars(fix.assign(close=fix["close"] + time.time())), 1)
    part = f"{lake.io.root}/bars/interval=1m/symbol={SYMBOLS[0]}/year=2024/part-0.parquet"
    read_fs = None if lake.io.is_local else fs

    r_ours = best_of(lambda: lake.read_bars(SYMBOLS[0], "1m", "2024-01-01", "2024-12-31"), repeats)
    r_base = best_of(lambda: pq.read_table(part, filesystem=read_fs).to_pandas(), repeats)
    return [
        (name, "write_bars (10 partitions)", len(df), w_ours, w_base),
        (name, "  same, baseline with lake's Parquet options", len(df), w_ours, w_base_opts),
        (name, "read_bars 1 symbol-year", len(one), r_ours, r_base),
        (name, "re-write same rows (no-op)", len(df), noop, None),
        (name, "restate 1 row (rewrite 100k partition)", len(one), restate, None),
    ]


def print_table(rows: list[tuple]) -> None:
    head = f"{'backend':<7} {'operation':<46} {'rows':>9} {'ours rows/s':>12} {'base rows/s':>12} {'ours/base':>9}"
    print(head)
    print("-" * len(head))
    for backend, op, n, ours, base in rows:
        base_rate = f"{n / base:>12,.0f}" if base else f"{'-':>12}"
        ratio = f"{base / ours:>9.2f}" if base else f"{'-':>9}"
        print(f"{backend:<7} {op:<46} {n:>9,} {n / ours:>12,.0f} {base_rate} {ratio}")


def main(rows: int = 1_000_000, repeats: int = 3) -> list[tuple]:
    """Print the benchmark table; returns its rows (ratio = ours rows/s ÷ baseline rows/s)."""
    df = make_frame(rows)
    results: list[tuple] = []
    with tempfile.TemporaryDirectory() as tmp:
        results += bench_target(
            "local", lambda: os.path.join(tmp, uuid.uuid4().hex), {}, df, repeats
        )

    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)
    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}).mkdir("bench-lake")
        opts = {"client_kwargs": {"endpoint_url": endpoint}}
        results += bench_target(
            "s3", lambda: f"s3://bench-lake/{uuid.uuid4().hex}", opts, df, repeats
        )
    finally:
        server.stop()
    print_table(results)
    return results


if __name__ == "__main__":
    main()
