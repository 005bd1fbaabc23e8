"""One `/metrics` endpoint for every marketpipe run on this machine (`make exporter`).

Run it beside a worker; start the worker with `PROMETHEUS_MULTIPROC_DIR` set to the same folder
(`make worker` does). Each flow-run process then writes its samples there (prometheus_client's
multiprocess mode) and this exporter serves their sum: counters of finished runs stay, gauges
(`pipeline_active_jobs`, `pipeline_queue_depth`) count live processes only — files of processes
that died without cleaning up (SIGKILL) are dropped at the next scrape.

    python -m deployments.exporter --dir .marketpipe/prometheus --port 9464
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
from pathlib import Path

_LIVE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SweepingCollector:
    """MultiProcessCollector that first forgets the live gauges of processes that are gone."""

    def __init__(self, path: str):
        from prometheus_client.multiprocess import MultiProcessCollector

        self.path = path
        self.inner = MultiProcessCollector(None, path=path)

    def sweep(self) -> None:
        from prometheus_client import multiprocess

        for name in os.listdir(self.path):
            m = _LIVE_FILE.match(name)
            if m and not _alive(int(m.group(1))):
                multiprocess.mark_process_dead(int(m.group(1)), self.path)

    def collect(self):
        self.sweep()
        return self.inner.collect()


def serve(path: str | Path, port: int, addr: str = "127.0.0.1"):
    """Start serving; returns (server, thread). `port=0` picks a free one (server.server_port)."""
    from prometheus_client import CollectorRegistry, start_http_server

    path = str(path)
    Path(path).mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SweepingCollector(path))
    return start_http_server(port, addr=addr, registry=registry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.exporter", description=__doc__)
    parser.add_argument("--dir", default=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--addr", default="127.0.0.1")
    args = parser.parse_args(argv)
    if not args.dir:
        print("exporter: error: pass --dir or set PROMETHEUS_MULTIPROC_DIR", file=sys.stderr)
        return 2
    try:
        server, _ = serve(args.dir, args.port, args.addr)
    except OSError as exc:
        print(f"exporter: error: cannot listen on {args.addr}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"serving the metrics of every run writing to {os.path.abspath(args.dir)} on "
        f"http://{args.addr}:{server.server_port}/metrics",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
