"""Shared parts of the end-to-end benchmarks: a Prefect server that is already up, the real CLI
in a subprocess (wall time and peak RSS), and the CLI's own start-up time.

`MARKETPIPE_BENCH_E2E_ROWS` scales the bar counts down for a quick run (default: 5M;
10M for the RSS benchmark). `MARKETPIPE_BENCH_PREFECT_URL` reuses a server you started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def e2e_rows(default: int) -> int:
    return int(os.environ.get("MARKETPIPE_BENCH_E2E_ROWS", default))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prefect_server():
    """`prefect server start` on a free port (or MARKETPIPE_BENCH_PREFECT_URL); yields the API URL."""
    given = os.environ.get("MARKETPIPE_BENCH_PREFECT_URL")
    if given:
        yield given
        return
    port = _free_port()
    home = tempfile.mkdtemp(prefix="mp-bench-prefect-")
    env = dict(os.environ, PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env["PREFECT_SERVER_API_PORT"] = str(port)
    prefect = Path(sys.executable).with_name("prefect")
    proc = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        t0 = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > 180:
                raise RuntimeError("prefect server did not start")
            time.sleep(0.5)
        print(f"prefect server up at {url} in {time.perf_counter() - t0:.1f} s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class CliRun:
    seconds: float
    peak_rss_mb: float
    code: int
    out: str
    err: str


def run_cli(args: list[str], env: dict) -> CliRun:
    """The real console script in a subprocess: wall seconds and the child's peak RSS."""
    full = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **env}
    full.setdefault("PYTHONPATH", str(ROOT))
    cmd = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=full, stdout=out, stderr=err, cwd=ROOT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        run = CliRun(seconds, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read())
    if run.code != 0:
        raise RuntimeError(f"marketpipe {' '.join(args)} failed: {run.err.strip()[-2000:]}")
    return run


def cli_startup(env: dict) -> float:
    """Seconds of a CLI run that moves one daily bar: the fixed cost (imports, Prefect, stores)."""
    with tempfile.TemporaryDirectory() as d:
        args = ["run", "--source", "synthetic", "--symbols", "AAPL", "--interval", "1d"]
        args += ["--start", "2024-01-02", "--end", "2024-01-02"]
        run = run_cli(args, {**env, "MARKETPIPE_DATA_DIR": d})
    print(f"CLI start-up (a one-bar run against the running server): {run.seconds:.1f} s")
    return run.seconds


def stages_line(out: str) -> str:
    for line in out.splitlines():
        if "stages (s):" in line:
            return line.strip()
    return ""


def row(name: str, ours: float, base: float, rows: int, target: float, higher: bool = True) -> str:
    ratio = base / ours if higher else ours / base
    ok = "ok" if ratio >= target else "BELOW TARGET"
    return (
        f"{name}: marketpipe {ours:.1f} s ({rows / ours:,.0f} rows/s) vs baseline {base:.1f} s "
        f"({rows / base:,.0f} rows/s) → {ratio:.2f}× (target ≥ {target}×) {ok}"
    )
