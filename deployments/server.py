"""A production-shaped Prefect server for marketpipe: PostgreSQL-backed (`make server`).

`python -m deployments.server` creates the server's own database on the local PostgreSQL if it is
missing, then runs `prefect server start` in the foreground (Ctrl-C stops it) with
`PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://…`. Prefect migrates the schema on start.
Deployments, workers and `make deploy` then use `PREFECT_API_URL=http://HOST:PORT/api`.

Why PostgreSQL: the default SQLite database has a single writer; under load (a worker, a
real-time session's task runs, the scheduler and event persister at once) the SQLite-backed
server logs "database is locked" tracebacks. PostgreSQL has none of that.

Environment (all optional):
  PREFECT_API_DATABASE_CONNECTION_URL  the whole URL (wins over the two below)
  MARKETPIPE_PREFECT_PG     admin URL of the PostgreSQL server (default postgresql://postgres@127.0.0.1:5432/postgres)
  MARKETPIPE_PREFECT_DB     the database name (default `prefect`)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DB = "prefect"


def database_url(admin_url: str, dbname: str) -> str:
    """The asyncpg URL of database `dbname` on the server of `admin_url`."""
    from sqlalchemy.engine import make_url

    u = make_url(admin_url).set(drivername="postgresql+asyncpg", database=dbname)
    return u.render_as_string(hide_password=False)


def ensure_database(url: str) -> bool:
    """Create the database of asyncpg `url` if it is missing; True when it was created."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (u.database,))
        if exists.fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(u.database)))
        except psycopg.errors.DuplicateDatabase:  # a concurrent start created it
            return False
    return True


def server_env(url: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `prefect server start` runs with."""
    env = dict(os.environ if base is None else base)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = url
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return env


def command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or database_url(
        os.environ.get("MARKETPIPE_PREFECT_PG", DEFAULT_ADMIN),
        os.environ.get("MARKETPIPE_PREFECT_DB", DEFAULT_DB),
    )
    from marketpipe.settings import mask_url

    try:
        created = ensure_database(url)
    except Exception as exc:  # psycopg.OperationalError and friends: one line, exit 1
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(
            f"server: error: PostgreSQL not reachable for {mask_url(url)}: {first} (start it "
            "with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`)",
            file=sys.stderr,
        )
        return 1
    print(
        f"Prefect server on PostgreSQL {mask_url(url)}"
        f"{' (database created)' if created else ''}; "
        f"export PREFECT_API_URL=http://{args.host}:{args.port}/api",
        flush=True,
    )
    proc = subprocess.Popen(command(args.host, args.port), env=server_env(url))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
