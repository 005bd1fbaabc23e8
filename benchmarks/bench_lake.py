"""Cold-lake benchmark: the Delta lake (`DeltaLake`) vs plain pyarrow / deltalake, local and S3.

Run: `python -m benchmarks lake` (S3 = a moto server this script starts on loopback).
- append: `write_bars` of 1M bars into a new table vs `pyarrow.parquet.write_to_dataset` of the
  same table (partitioned interval/symbol/year) on the same filesystem (target >= 0.7x);
- merge: 100k changed rows (one symbol-year) into the 1M-row table vs rewriting that partition
  with plain pyarrow: read, concatenate, keep the last row per key, write (target >= 0.2x);
- read: `read_bars` of one symbol-year vs `DeltaTable.to_pyarrow_table` with the same filter,
  both to pandas (target >= 0.8x).
Ratio = baseline time / ours (higher is better for us). Best of `repeats` runs (15 for reads).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from marketpipe.storage.delta_lake import DeltaLake

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
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.append_column("year", pc.cast(pc.year(table["ts"]), pa.int32()))
    parts = ["interval", "symbol", "year"]

    def fs_root(url: str):
        return fsspec.core.url_to_fs(url, **opts) if url.startswith("s3://") else (None, url)

    def ours_append():
        DeltaLake(new_url(), opts).write_bars(df)

    def base_append():
        fs, root = fs_root(new_url())
        pq.write_to_dataset(table, root, partition_cols=parts, filesystem=fs)

    a_ours, a_base = best_of(ours_append, repeats), best_of(base_append, repeats)

    # merge: 100k changed rows of one symbol-year into a 1M-row table
    url = new_url()
    lake = DeltaLake(url, opts)
    lake.write_bars(df)
    one = df[df["symbol"] == SYMBOLS[0]]
    base_url = new_url()
    fs, base_root = fs_root(base_url)
    pq.write_to_dataset(table, base_root, partition_cols=parts, filesystem=fs)
    part_dir = f"{base_root}/interval=1m/symbol={SYMBOLS[0]}/year=2024"

    def ours_merge():
        lake.write_bars(one.assign(close=one["close"] + time.time() % 1))

    def base_merge():
        changed = pa.Table.from_pandas(
            one.assign(close=one["close"] + time.time() % 1).drop(columns=["interval", "symbol"]),
            preserve_index=False,
        )
        old = pq.read_table(part_dir, filesystem=fs)
        both = pa.concat_tables([old.select(changed.column_names), changed])
        keep = ~pd.Series(both["ts"].to_numpy()).duplicated(keep="last").to_numpy()
        pq.write_table(both.filter(pa.array(keep)), f"{part_dir}/rewritten.parquet", filesystem=fs)

    m_ours, m_base = best_of(ours_merge, repeats), best_of(base_merge, repeats)

    storage = lake.location.options or None
    reads = max(repeats, 15)  # a read takes ~25 ms: more runs for a stable best
    r_ours = best_of(lambda: lake.read_bars(SYMBOLS[0], "1m", "2024-01-01", "2025-01-01"), reads)
    flt = [("interval", "=", "1m"), ("symbol", "=", SYMBOLS[0]), ("year", "=", 2024)]
    r_base = best_of(
        lambda: (
            DeltaTable(f"{url}/bars", storage_options=storage)
            .to_pyarrow_table(filters=flt)
            .to_pandas()
        ),
        reads,
    )
    return [
        (name, "append 1M bars vs write_to_dataset", len(df), a_ours, a_base),
        (name, "merge 100k changed rows vs partition rewrite", len(one), m_ours, m_base),
        (name, "read_bars 1 symbol-year vs to_pyarrow_table", len(one), r_ours, r_base),
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
