"""End to end: `marketpipe import` of N one-minute bars (default 5M) through the real CLI, against
a Prefect server that is already up, beside what a user would write by hand, in one run:

* PostgreSQL vs `psql \\copy` of the same rows from CSV into a table of the same shape (≥ 0.5×);
* the embedded SQLite default vs `pandas.to_sql` of the same frame (≥ 1×; measured on
  `MARKETPIPE_BENCH_TO_SQL_ROWS` rows, default 500k, and compared as rows/s);
* all rows cold, into the local lake and into the S3 lake (moto on loopback) vs pyarrow reading
  the input and writing it with `write_to_dataset` partitioned like the lake (≥ 0.5×);
* peak RSS of an import of 10M bars (≤ 1.5 GB), printed beside the input's Arrow size.

Ratios are baseline seconds / marketpipe seconds on the whole CLI wall time; the CLI's own
start-up (a one-bar run) is printed separately, and the ratio without it beside.
`MARKETPIPE_BENCH_E2E_ROWS` scales N (and the RSS run) down for a quick look.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from benchmarks.bench_e2e_data import csv_copy, write_minute_bars
from benchmarks.bench_e2e_support import (
    cli_startup,
    e2e_rows,
    prefect_server,
    run_cli,
    stages_line,
)

ADMIN_URL = os.environ.get(
    "MARKETPIPE_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TARGETS = {"postgresql": 0.5, "sqlite": 1.0, "lake-local": 0.5, "lake-s3": 0.5}
RSS_LIMIT_MB = 1536
HOT_ALL, COLD_ALL = "36500", "0"
TABLE_DDL = """CREATE TABLE bars_copy (symbol text NOT NULL, interval text NOT NULL,
 ts timestamptz NOT NULL, open float8 NOT NULL, high float8 NOT NULL, low float8 NOT NULL,
 close float8 NOT NULL, volume float8 NOT NULL, vwap float8, trades bigint,
 PRIMARY KEY (symbol, interval, ts))"""


def _line(name, ours, base, rows, startup, target, out: str = "") -> str:
    """Ratio on the CLI's wall time, and on its data path alone (the stage seconds it reports)."""
    ratio = base / ours
    data = stage_seconds(out)
    ok = "ok" if ratio >= target else "BELOW TARGET"
    net = f" | data path {data:.1f} s: {base / data:.2f}×" if data else ""
    return (
        f"{name:<11} marketpipe {ours:7.1f} s ({rows / ours:>9,.0f} rows/s) | baseline "
        f"{base:7.1f} s ({rows / base:>9,.0f} rows/s) | {ratio:.2f}× (target ≥ {target}×) {ok}"
        f"{net}"
    )


def stage_seconds(out: str) -> float:
    """The sum of the stage seconds in a CLI summary (`stages (s): fetch 1.13, parse 1.79, …`)."""
    line = stages_line(out).split("stages (s):", 1)[-1].split("—")[0]
    total = 0.0
    for part in line.split(","):
        bits = part.split()
        if len(bits) == 2:
            total += float(bits[1])
    return total


def _psql(db: str, *args: str) -> None:
    base = ADMIN_URL.rsplit("/", 1)[0]
    subprocess.run(["psql", f"{base}/{db}", "-q", "-v", "ON_ERROR_STOP=1", *args], check=True)


def bench_postgresql(src: Path, csv: Path, rows: int, env: dict, startup: float) -> str:
    db = f"mp_e2e_{uuid.uuid4().hex[:8]}"
    _psql("postgres", "-c", f'CREATE DATABASE "{db}"')
    try:
        url = (
            ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + db
        )
        with tempfile.TemporaryDirectory() as d:
            run = run_cli(
                ["import", str(src)],
                {
                    **env,
                    "MARKETPIPE_DATA_DIR": d,
                    "MARKETPIPE_HOT_URL": url,
                    "MARKETPIPE_HOT_DAYS": HOT_ALL,
                },
            )
        _psql(db, "-c", TABLE_DDL)
        t0 = time.perf_counter()
        _psql(db, "-c", f"\\copy bars_copy FROM '{csv}' WITH (FORMAT csv)")
        base = time.perf_counter() - t0
    finally:
        _psql("postgres", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return _line("postgresql", run.seconds, base, rows, startup, TARGETS["postgresql"], run.out) + (
        f"\n            {stages_line(run.out)}"
    )


def bench_sqlite(src: Path, rows: int, env: dict, startup: float) -> str:
    import sqlalchemy as sa

    with tempfile.TemporaryDirectory() as d:
        run = run_cli(
            ["import", str(src)], {**env, "MARKETPIPE_DATA_DIR": d, "MARKETPIPE_HOT_DAYS": HOT_ALL}
        )
        n = min(rows, int(os.environ.get("MARKETPIPE_BENCH_TO_SQL_ROWS", 500_000)))
        frame = pq.read_table(str(src)).slice(0, n).to_pandas()
        engine = sa.create_engine(f"sqlite:///{d}/to_sql.db")
        t0 = time.perf_counter()
        frame.to_sql("bars", engine, index=False, chunksize=50_000, method=None)
        per_row = (time.perf_counter() - t0) / n
        engine.dispose()
    base = per_row * rows
    return _line("sqlite", run.seconds, base, rows, startup, TARGETS["sqlite"], run.out) + (
        f"  (to_sql measured on {n:,} rows)\n            {stages_line(run.out)}"
    )


def _pyarrow_baseline(src: Path, root: str, filesystem) -> float:
    t0 = time.perf_counter()
    table = pq.read_table(str(src))
    table = table.append_column("year", pc.year(table["ts"]))
    ds.write_dataset(
        table,
        root,
        filesystem=filesystem,
        format="parquet",
        partitioning=["interval", "symbol", "year"],
        partitioning_flavor="hive",
        existing_data_behavior="overwrite_or_ignore",
    )
    return time.perf_counter() - t0


def bench_lake_local(src: Path, rows: int, env: dict, startup: float) -> str:
    with tempfile.TemporaryDirectory() as d:
        run = run_cli(
            ["import", str(src)], {**env, "MARKETPIPE_DATA_DIR": d, "MARKETPIPE_HOT_DAYS": COLD_ALL}
        )
        base = _pyarrow_baseline(src, f"{d}/baseline", None)
    return _line("lake-local", run.seconds, base, rows, startup, TARGETS["lake-local"], run.out) + (
        f"\n            {stages_line(run.out)}"
    )


def bench_lake_s3(src: Path, rows: int, env: dict, startup: float) -> str:
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from benchmarks.bench_e2e_support import _free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(creds)
    try:
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
        bucket = f"bench-lake-{uuid.uuid4().hex[:8]}"  # moto keeps buckets per process
        fs.mkdir(bucket)
        with tempfile.TemporaryDirectory() as d:
            run = run_cli(
                ["import", str(src)],
                {
                    **env,
                    **creds,
                    "MARKETPIPE_DATA_DIR": d,
                    "MARKETPIPE_HOT_DAYS": COLD_ALL,
                    "MARKETPIPE_COLD_URL": f"s3://{bucket}/lake",
                    "MARKETPIPE_S3_ENDPOINT_URL": endpoint,
                },
            )
        base = _pyarrow_baseline(src, f"{bucket}/baseline", PyFileSystem(FSSpecHandler(fs)))
    finally:
        server.stop()
    return _line("lake-s3", run.seconds, base, rows, startup, TARGETS["lake-s3"], run.out) + (
        f"\n            {stages_line(run.out)}"
    )


def bench_rss(rows: int, env: dict) -> str:
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "big.parquet"
        write_minute_bars(src, rows)
        arrow_mb = _arrow_size_mb(src)
        run = run_cli(
            ["import", str(src)],
            {**env, "MARKETPIPE_DATA_DIR": f"{d}/data", "MARKETPIPE_HOT_DAYS": HOT_ALL},
        )
    ok = "ok" if run.peak_rss_mb <= RSS_LIMIT_MB else "ABOVE TARGET"
    return (
        f"peak RSS of a {rows:,}-bar import: {run.peak_rss_mb:,.0f} MB (target ≤ {RSS_LIMIT_MB} MB) "
        f"{ok}; the input as one Arrow table: {arrow_mb:,.0f} MB; wall {run.seconds:.1f} s"
    )


def _arrow_size_mb(src: Path) -> float:
    pf = pq.ParquetFile(str(src))
    total = 0
    for i in range(pf.num_row_groups):
        total += pf.read_row_group(i).nbytes
    return total / 2**20


def main(rows: int | None = None) -> None:
    n = rows or e2e_rows(5_000_000)
    rss_rows = 2 * n if rows or os.environ.get("MARKETPIPE_BENCH_E2E_ROWS") else 10_000_000
    with tempfile.TemporaryDirectory() as d, prefect_server() as api:
        src, csv = Path(d) / "bars.parquet", Path(d) / "bars.csv"
        n = write_minute_bars(src, n)
        csv_copy(src, csv)
        print(f"input: {n:,} one-minute bars, {src.stat().st_size / 2**20:.0f} MB Parquet")
        env = {"PREFECT_API_URL": api}
        startup = cli_startup(env)
        for fn in (bench_postgresql,):
            print(fn(src, csv, n, env, startup), flush=True)
        for fn in (bench_sqlite, bench_lake_local, bench_lake_s3):
            print(fn(src, n, env, startup), flush=True)
        print(bench_rss(rss_rows, env), flush=True)


if __name__ == "__main__":  # pragma: no cover
    import sys

    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
