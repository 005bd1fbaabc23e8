"""Shared fixtures: real PostgreSQL, a moto S3 server on loopback, a real Prefect test server.

Nothing here skips for a missing service: a missing PostgreSQL fails the run with a message that
says how to start it.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# s3fs/botocore read these; moto accepts any values. Never real credentials in tests.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

# a test using any of these needs a service: it gets the `service` marker, and `make test-fast`
# (`-m "not service and not slow and not serial"`) leaves it out
SERVICE_FIXTURES = frozenset(
    {"pg_admin_url", "pg_url", "pg_url_module", "moto_server", "s3_bucket", "prefect_server"}
)


SERVICE_PARAMS = ("postgres", "s3")  # parametrised fixtures that reach a service by name


def _needs_service(item) -> bool:
    if item.get_closest_marker("needs_service"):
        return True
    if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(
        isinstance(v, str) and any(word in v.lower() for word in SERVICE_PARAMS)
        for v in params.values()
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _needs_service(item):
            item.add_marker(pytest.mark.service)


PG_ADMIN_URL = os.environ.get(
    "MARKETPIPE_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PG_START_HINT = (
    "PostgreSQL is not reachable at {url}: start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "or point MARKETPIPE_TEST_PG_ADMIN at a server (trust auth, CREATEDB)."
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        pytest.fail(PG_START_HINT.format(url=PG_ADMIN_URL) + f" ({exc})", pytrace=False)
    return PG_ADMIN_URL


def _create_db(admin_url: str, prefix: str) -> str:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_db(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sa_url(admin_url: str, dbname: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + dbname


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh PostgreSQL database (SQLAlchemy URL), dropped after the test."""
    name = _create_db(pg_admin_url, "mp_test")
    try:
        yield _sa_url(pg_admin_url, name)
    finally:
        _drop_db(pg_admin_url, name)


@pytest.fixture(scope="module")
def pg_url_module(pg_admin_url):
    name = _create_db(pg_admin_url, "mp_testm")
    try:
        yield _sa_url(pg_admin_url, name)
    finally:
        _drop_db(pg_admin_url, name)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'hot.db'}"


# ---------------------------------------------------------------- S3 (moto server on loopback)
@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server):
    """A fresh bucket on the moto server; returns (cold_url, storage_options)."""
    import s3fs

    bucket = f"mp-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_server}, skip_instance_cache=True)
    fs.mkdir(bucket)
    opts = {"client_kwargs": {"endpoint_url": moto_server}}
    return f"s3://{bucket}/lake", opts


# ---------------------------------------------------------------- Prefect
@pytest.fixture(scope="session")
def prefect_server():
    """One real Prefect server (SQLite-backed) for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
