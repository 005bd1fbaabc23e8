"""Benchmark: compute_features on ~1M one-minute bars vs the 1M bars/s target.

Baseline beside it: one plain pandas rolling-mean pass over the same frame's closes, so the ratio
(features time / baseline time) says how many "rolling means" the whole feature set costs, and
machine noise mostly cancels. Run: `python -m benchmarks.bench_features [rows]`.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from marketpipe.bars import conform_bars
from marketpipe.processing.features import compute_features

TARGET_BARS_PER_S = 1_000_000


def make_bars(rows: int, symbols: int = 20, seed: int = 0) -> pd.DataFrame:
    """`symbols` random-walk series of `rows // symbols` one-minute bars each."""
    rng = np.random.default_rng(seed)
    per = rows // symbols
    ts = pd.date_range("2024-01-02 14:30", periods=per, freq="1min", tz="UTC")
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.001, (symbols, per)), axis=1))
    close *= rng.uniform(0.5, 20.0, (symbols, 1))
    close = close.ravel()
    spread = np.abs(rng.normal(0, 0.0005, close.size)) * close
    frame = pd.DataFrame(
        {
            "symbol": np.repeat([f"S{i:03d}" for i in range(symbols)], per),
            "interval": "1m",
            "ts": np.tile(ts, symbols),
            "open": close,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": rng.integers(100, 10_000, close.size).astype(float),
            "vwap": close,
            "trades": 5,
            "source": "synthetic",
        }
    )
    return conform_bars(frame)


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(rows: int = 1_000_000, repeat: int = 3) -> dict[str, float]:
    bars = make_bars(rows)
    n = len(bars)
    compute_features(bars.iloc[:1000])  # warm-up (imports, first-call costs)
    t_feat = _best(lambda: compute_features(bars), repeat)
    t_base = _best(lambda: bars["close"].rolling(20).mean(), repeat)
    shuffled = bars.sample(frac=1.0, random_state=1)
    t_unsorted = _best(lambda: compute_features(shuffled), 1)
    rate = n / t_feat
    result = {
        "rows": float(n),
        "features_s": t_feat,
        "features_bars_per_s": rate,
        "target_ratio": rate / TARGET_BARS_PER_S,
        "baseline_rolling_mean_s": t_base,
        "baseline_bars_per_s": n / t_base,
        "features_vs_baseline_time": t_feat / t_base,
        "unsorted_input_s": t_unsorted,
    }
    print(f"compute_features: {n:,} bars (20 symbols) best of {repeat}")
    print(
        f"  features       {t_feat:8.3f} s  {rate:12,.0f} bars/s  "
        f"({rate / TARGET_BARS_PER_S:.2f}x the {TARGET_BARS_PER_S:,} bars/s target)"
    )
    print(
        f"  baseline       {t_base:8.3f} s  {n / t_base:12,.0f} bars/s  "
        "(one pandas rolling(20).mean())"
    )
    print(f"  ratio          features take {t_feat / t_base:.1f}x one rolling-mean pass")
    print(f"  unsorted input {t_unsorted:8.3f} s  {n / t_unsorted:12,.0f} bars/s (incl. sort)")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
