"""A real `make server` (deployments.server → `prefect server start` on PostgreSQL) for ops tests.

Unlike the session's `prefect_test_harness` (an ephemeral server without the scheduler), this is
the production-shaped server: its own PostgreSQL database, every service on (scheduler included,
looping every 2 s so a test need not wait a minute), on a free loopback port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LiveServer:
    api_url: str
    log: Path
    db_url: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def error_lines(self) -> list[str]:
        bad = ("ERROR", "Traceback", "database is locked")
        return [ln for ln in self.log_text().splitlines() if any(b in ln for b in bad)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(api_url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"prefect server exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)  # polling a readiness endpoint with a deadline, not synchronising on time
    raise RuntimeError(f"prefect server not healthy within {timeout} s:\n{log.read_text()[-3000:]}")


def project_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def live_server(pg_admin_url, tmp_path_factory):
    """`python -m deployments.server` (what `make server` runs) on a fresh PostgreSQL database."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from tests.conftest import _drop_db

    home = tmp_path_factory.mktemp("prefect-home")
    log = home / "server.log"
    dbname = f"mp_prefect_{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = project_env(
        MARKETPIPE_PREFECT_PG=pg_admin_url,
        MARKETPIPE_PREFECT_DB=dbname,
        PREFECT_HOME=str(home),
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        PREFECT_LOGGING_SERVER_LEVEL="WARNING",
        PREFECT_UI_ENABLED="false",
    )
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    cmd = [sys.executable, "-m", "deployments.server", "--port", str(port)]
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api_url, proc, log)
        db_url = f"{pg_admin_url.rsplit('/', 1)[0]}/{dbname}"
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield LiveServer(api_url=api_url, log=log, db_url=db_url)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _drop_db(pg_admin_url, dbname)
