"""End to end: a 500-symbol × 2-year daily Polygon backfill at 100 req/s through the real CLI.

The local Polygon-compatible server (`tests/polygon_server.py`) logs every request's arrival;
the figure is the share of the limit used between the first and the last request (target
≥ 0.9), and the most requests seen in any one-second window (must stay ≤ the limit).
`MARKETPIPE_BENCH_BACKFILL_SYMBOLS` scales the symbol count down for a quick run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import date

import numpy as np

from benchmarks.bench_e2e_support import ROOT, cli_startup, prefect_server, run_cli, stages_line

LIMIT, PERIOD = 100, 1.0
TARGET = 0.9


def main(symbols: int | None = None) -> dict:
    sys.path.insert(0, str(ROOT))
    from tests.polygon_server import POLYGON_KEY, PolygonMarket, serve_market

    n = symbols or int(os.environ.get("MARKETPIPE_BENCH_BACKFILL_SYMBOLS", 500))
    syms = [f"B{i:04d}" for i in range(n)]
    market = PolygonMarket(syms, first=date(2022, 12, 1), last=date(2025, 1, 31))
    server = serve_market(market)
    try:
        with prefect_server() as api, tempfile.TemporaryDirectory() as data:
            env = {
                "PREFECT_API_URL": api,
                "MARKETPIPE_DATA_DIR": data,
                "MARKETPIPE_POLYGON_BASE_URL": server.url,
                "POLYGON_API_KEY": POLYGON_KEY,
                "MARKETPIPE_POLYGON_RATE_LIMIT": f"{LIMIT}/s",
            }
            startup = cli_startup(env)
            server.seen.clear()
            args = ["backfill", "--source", "polygon", "--symbols", ",".join(syms)]
            run = run_cli([*args, "--start", "2023-01-01", "--end", "2024-12-31"], env)
        times = np.sort(np.array([s.at for s in server.seen]))
    finally:
        server.close()
    span = float(times[-1] - times[0]) if len(times) > 1 else float("nan")
    used = (len(times) - 1) / span / (LIMIT / PERIOD) if len(times) > 1 else 0.0
    ends = np.searchsorted(times, times + PERIOD, side="left")
    worst = int((ends - np.arange(len(times))).max()) if len(times) else 0
    print(
        f"backfill {n} symbols × 2y daily at {LIMIT}/s: {len(times)} requests in {span:.1f} s "
        f"(CLI wall {run.seconds:.1f} s, start-up {startup:.1f} s) → {used:.2f} of the limit "
        f"(target ≥ {TARGET}) {'ok' if used >= TARGET else 'BELOW TARGET'}; most in any "
        f"{PERIOD:.0f} s window: {worst} (limit {LIMIT}) {'ok' if worst <= LIMIT else 'EXCEEDED'}"
    )
    print(f"  {stages_line(run.out)}")
    return {"used": used, "worst_window": worst, "requests": len(times), "seconds": span}


if __name__ == "__main__":  # pragma: no cover
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
