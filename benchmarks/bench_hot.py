"""Hot-store write benchmark on a real PostgreSQL: `SqlHotStore.upsert_bars` vs `psql \\copy` vs
`pandas.to_sql`, measured in one run so machine noise cancels in the ratios.

Run: `python -m benchmarks.bench_hot [ROWS]`. Needs PostgreSQL at MARKETPIPE_BENCH_PG_ADMIN
(default `postgresql://postgres@127.0.0.1:5432/postgres`) and `psql` on PATH. It creates a
fresh database and drops it at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa

from marketpipe.bars import BAR_COLUMNS, conform_bars
from marketpipe.storage.hot import SqlHotStore

ADMIN_URL = os.environ.get(
    "MARKETPIPE_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SYMBOLS = 10
TO_SQL_ROWS = 200_000
TARGET_VS_PSQL = 0.6
APPEND = "upsert_bars, empty table (COPY append path)"
IDENTICAL = "upsert_bars again, all keys conflict, same values"
CHANGED = "upsert_bars again, all keys conflict, new values"
PSQL = "psql \\copy from CSV (same rows, same table shape)"
TO_SQL = "pandas.to_sql (executemany, chunks of 50k)"
TARGET_VS_TO_SQL = 4.0


def synthetic_bars(rows: int, symbols: int = SYMBOLS) -> pd.DataFrame:
    """`rows` one-minute canonical bars: `symbols` symbols × consecutive minutes."""
    per_symbol = max(1, rows // symbols)
    rng = np.random.default_rng(7)
    ts = pd.date_range("2020-01-01", periods=per_symbol, freq="min", tz="UTC")
    frames = []
    for i in range(symbols):
        close = 100.0 + np.cumsum(rng.normal(0, 0.05, per_symbol))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"SYM{i:02d}",
                    "interval": "1m",
                    "ts": ts,
                    "open": close,
                    "high": close + 0.1,
                    "low": close - 0.1,
                    "close": close,
                    "volume": rng.integers(100, 10_000, per_symbol).astype("float64"),
                    "vwap": close,
                    "trades": rng.integers(1, 500, per_symbol),
                    "source": "synthetic",
                }
            )
        )
    return conform_bars(pd.concat(frames, ignore_index=True))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _db_url(name: str, driver: str = "postgresql") -> str:
    return ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", f"{driver}://", 1) + "/" + name


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _checkpoint(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("CHECKPOINT")


def _copy_table(engine: sa.Engine, name: str) -> None:
    """An empty table shaped exactly like `bars` (keys, indexes, defaults)."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE bars INCLUDING ALL)')


def _psql_copy(db: str, table: str, csv_path: Path) -> None:
    cols = ", ".join([*BAR_COLUMNS, "ingested_at"])
    command = f"\\copy {table} ({cols}) FROM '{csv_path}' WITH (FORMAT csv, HEADER true)"
    done = subprocess.run(
        ["psql", _db_url(db), "-v", "ON_ERROR_STOP=1", "-q", "-c", command],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"psql \\copy failed: {done.stderr.strip()}")


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(sa.table(table))
        return int(conn.execute(stmt).scalar_one())


def run(rows: int) -> dict[str, tuple[int, float]]:
    """Measure every method; returns {method: (rows, seconds)}."""
    db = f"mp_bench_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{db}"')
    results: dict[str, tuple[int, float]] = {}
    store = None
    engine = sa.create_engine(_db_url(db, "postgresql+psycopg"))
    try:
        bars = synthetic_bars(rows)
        n = len(bars)
        store = SqlHotStore(_db_url(db, "postgresql+psycopg"))
        _copy_table(engine, "bars_psql")
        _copy_table(engine, "bars_to_sql")

        _checkpoint(engine)
        secs = _timed(lambda: store.upsert_bars(bars))
        assert store.last_write_path == "append", store.last_write_path
        results[APPEND] = (n, secs)

        _checkpoint(engine)
        secs = _timed(lambda: store.upsert_bars(bars))
        assert store.last_write_path == "upsert", store.last_write_path
        results[IDENTICAL] = (n, secs)

        changed = bars.assign(close=bars["close"] + 0.01, volume=bars["volume"] + 1.0)
        _checkpoint(engine)
        secs = _timed(lambda: store.upsert_bars(changed))
        assert store.last_write_path == "upsert", store.last_write_path
        results[CHANGED] = (n, secs)
        assert store.count_bars() == n

        # the baselines load the same columns ours writes, ingested_at included
        stamped = bars.assign(ingested_at=pd.Timestamp.now(tz="UTC"))
        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "bars.csv"
            stamped.to_csv(csv_path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
            _checkpoint(engine)
            secs = _timed(lambda: _psql_copy(db, "bars_psql", csv_path))
        assert _count(engine, "bars_psql") == n
        results[PSQL] = (n, secs)

        small = stamped.iloc[: min(n, TO_SQL_ROWS)]
        _checkpoint(engine)
        secs = _timed(
            lambda: small.to_sql(
                "bars_to_sql", engine, if_exists="append", index=False, chunksize=50_000
            )
        )
        assert _count(engine, "bars_to_sql") == len(small)
        results[TO_SQL] = (len(small), secs)
    finally:
        if store is not None:
            store.dispose()
        engine.dispose()
        _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return results


def main(rows: int = 1_000_000) -> dict:
    """Run the benchmark, print a table; returns rows/s per method and (vs psql, vs to_sql)."""
    results = run(rows)
    rates = {name: n / secs for name, (n, secs) in results.items()}
    width = max(len(name) for name in results)
    print(f"hot store write benchmark ({rows:,} one-minute bars, {SYMBOLS} symbols)")
    print(f"{'method':<{width}}  {'rows':>10}  {'seconds':>8}  {'rows/s':>10}")
    for name, (n, secs) in results.items():
        print(f"{name:<{width}}  {n:>10,}  {secs:>8.2f}  {rates[name]:>10,.0f}")
    ratios = {}
    print()
    print(f"{'ratio':<{width}}  {'vs psql':>10}  {'vs to_sql':>10}")
    for name in (APPEND, IDENTICAL, CHANGED):
        vs_psql, vs_to_sql = rates[name] / rates[PSQL], rates[name] / rates[TO_SQL]
        ratios[name] = (vs_psql, vs_to_sql)
        print(f"{name:<{width}}  {vs_psql:>10.2f}  {vs_to_sql:>10.1f}")
    print(f"{'target':<{width}}  {TARGET_VS_PSQL:>10.2f}  {TARGET_VS_TO_SQL:>10.1f}")
    return {"rows_per_s": rates, "ratios": ratios}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
