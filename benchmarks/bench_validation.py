"""Validation throughput: `validate_bars` vs the bare pandera `BarsSchema.validate(lazy=True)`.

Both run every check (values, OHLC envelope, magnitude bounds, keys, sessions and bar starts);
`validate_bars` runs them through pandera too, and adds the parse step and the quarantine rows.

Run: `PYTHONPATH=. python -m benchmarks.bench_validation [rows]`. Prints rows/s for a clean frame
(provider order, and shuffled so the duplicate-key check cannot take its sorted fast path) and for
a frame with 1% bad rows, beside the pandera baseline on the same frame, with ratios and the
1M rows/s target, in wall-clock and in CPU (process) time. Best of `repeats` runs, after one
warm-up run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pandera.pandas as pa

from marketpipe.calendar import expected_bar_starts
from marketpipe.contract import BarsSchema, validate_bars
from marketpipe.providers import BarsQuery
from marketpipe.providers.synthetic import SyntheticProvider

TARGET_ROWS_PER_S = 1_000_000
NOW = pd.Timestamp("2025-01-01T00:00:00Z")
START, END = date(2024, 1, 1), date(2024, 12, 31)


def clean_bars(rows: int) -> pd.DataFrame:
    """`rows` one-minute synthetic bars (canonical dtypes), as many symbols as needed."""
    per_symbol = len(expected_bar_starts("1m", START, END))
    symbols = tuple(f"SYM{i}" for i in range(-(-rows // per_symbol)))
    bars = SyntheticProvider(seed=1, now=NOW).fetch(BarsQuery(symbols, "1m", START, END)).bars
    return bars.iloc[:rows].reset_index(drop=True)


def with_bad_rows(df: pd.DataFrame, fraction: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """A copy with `fraction` of rows broken, cycling through eight kinds of damage."""
    out = df.copy()
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(df) - 1, int(len(df) * fraction), replace=False) + 1)
    kinds = np.array_split(picked, 8)
    out.loc[kinds[0], "high"] = out.loc[kinds[0], "low"] - 1.0  # high_lt_low (+ open/close)
    out.loc[kinds[1], "volume"] = -1.0  # volume_negative
    out.loc[kinds[2], "open"] = np.inf  # price_not_finite
    out.loc[kinds[3], "close"] = 0.0  # price_not_positive (+ low_gt_open_close)
    out.loc[kinds[4], "symbol"] = "BAD SYMBOL;"  # bad_symbol
    out.loc[kinds[5], "ts"] = out["ts"].to_numpy()[kinds[5] - 1]  # duplicate_key
    out.loc[kinds[6], "volume"] = 1e300  # out_of_range
    out.loc[kinds[7], "ts"] = out.loc[kinds[7], "ts"] + pd.Timedelta(seconds=17)  # misaligned
    return out


def best_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU (process) seconds of `repeats` runs, after a warm-up run.

    CPU time is printed too because on a shared machine wall time mostly measures the others."""
    fn()  # warm-up: imports, regex compilation, calendar build
    wall = cpu = float("inf")
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu


def pandera_lazy(df: pd.DataFrame) -> None:
    try:
        BarsSchema.validate(df, lazy=True)
    except pa.errors.SchemaErrors:
        pass


def main(rows: int = 1_000_000, repeats: int = 3) -> dict[str, dict[str, float]]:
    clean = clean_bars(rows)
    shuffled = clean.sample(frac=1.0, random_state=0).reset_index(drop=True)
    bad = with_bad_rows(clean)
    results: dict[str, dict[str, float]] = {}
    print(
        f"validation benchmark: {rows:,} rows, best of {repeats}; target {TARGET_ROWS_PER_S:,} rows/s"
    )
    print(
        f"{'frame':<16}{'validate_bars':>15}{'pandera lazy':>14}{'ratio':>7}{'vs target':>11}"
        f"{'ours CPU':>12}{'pandera CPU':>13}{'ratio':>7}  quarantined"
    )
    for label, frame in (("clean", clean), ("clean shuffled", shuffled), ("1% bad", bad)):
        quarantined = len(validate_bars(frame, now=NOW).quarantine)
        wall, cpu = best_seconds(lambda f=frame: validate_bars(f, now=NOW), repeats)
        base_wall, base_cpu = best_seconds(lambda f=frame: pandera_lazy(f), repeats)
        ours, base, ours_cpu, base_cpu_rate = (
            rows / wall,
            rows / base_wall,
            rows / cpu,
            rows / base_cpu,
        )
        results[label] = {
            "validate_bars": ours,
            "pandera": base,
            "validate_bars_cpu": ours_cpu,
            "pandera_cpu": base_cpu_rate,
            "quarantined": quarantined,
        }
        print(
            f"{label:<16}{ours:>15,.0f}{base:>14,.0f}{ours / base:>6.2f}x"
            f"{ours / TARGET_ROWS_PER_S:>10.2f}x{ours_cpu:>12,.0f}{base_cpu_rate:>13,.0f}"
            f"{ours_cpu / base_cpu_rate:>6.2f}x  {quarantined:,}"
        )
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
