"""`make bench` / `python -m benchmarks [name ...]`: run every benchmark (or the named ones).

Each benchmark measures ours and its baseline in the same run, so machine noise largely cancels.
`MARKETPIPE_BENCH_ROWS` scales the row counts down for a quick look (default: the full 1M).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time

BENCHES = ("validation", "hot", "lake", "features", "realtime", "e2e_import", "e2e_backfill")


def _machine() -> str:
    cpus = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return f"{platform.machine()} {cpus} cores, Python {platform.python_version()}, load {load:.1f}"


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {BENCHES}", file=sys.stderr)
        return 2
    rows = os.environ.get("MARKETPIPE_BENCH_ROWS")
    print(f"# marketpipe benchmarks on {_machine()}")
    for name in names:
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"\n## {name}")
        t0 = time.perf_counter()
        if name.startswith("e2e_"):
            mod.main()  # sized by MARKETPIPE_BENCH_E2E_ROWS / MARKETPIPE_BENCH_BACKFILL_SYMBOLS
        elif rows and name != "realtime":
            mod.main(int(rows))
        elif rows:
            mod.main(ticks=int(rows))
        else:
            mod.main()
        print(f"({name}: {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
