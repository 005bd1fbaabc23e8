"""Apply the hot-store Alembic migrations programmatically, idempotently and race-free."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# any constant bigint: serialises concurrent migrations of the same PostgreSQL database
PG_MIGRATION_LOCK_KEY = 0x6D61726B6574  # "market"
# Alembic keeps its migration context in module globals: one migration per process at a time
_PROCESS_LOCK = threading.Lock()


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migration scripts (no .ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: sa.Connection) -> str | None:
    """The revision recorded in the database (`alembic_version`), or None when unmigrated."""
    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: sa.Engine) -> bool:
    """Upgrade the database to head. Returns True when something was applied, False if at head.

    The whole upgrade is one transaction. On PostgreSQL it holds an advisory transaction lock,
    on SQLite the database write lock, so two processes migrating at once serialise and the
    second sees head and does nothing.
    """
    # SQLite: BEGIN IMMEDIATE (see hot_base) so a second migrator waits for the first
    with (
        _PROCESS_LOCK,
        engine.execution_options(marketpipe_sqlite_begin="immediate").begin() as conn,
    ):
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY}
            )
        before = current_revision(conn)
        if before == head_revision():
            return False
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return True
