"""Table definitions of the hot store (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Timestamps are UTC. PostgreSQL stores them as `timestamptz`; SQLite as INTEGER microseconds since
1970-01-01 UTC (exact for `datetime64[us]`, sorts and compares numerically, converts without
string formatting; in the sqlite3 shell: `datetime(ts / 1000000, 'unixepoch')`).
The DDL itself lives in the Alembic migrations; these objects are what queries are built from.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

JOB_STATUSES: tuple[str, ...] = ("running", "success", "failed", "cancelled")
FEATURE_COLUMNS: tuple[str, ...] = (
    "ret",
    "log_ret",
    "vwap",
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "rsi_14",
    "bb_mid",
    "bb_upper",
    "bb_lower",
    "rv_20",
)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)


class UtcDateTime(TypeDecorator):
    """A tz-aware UTC datetime: `timestamptz` on PostgreSQL, integer epoch µs on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        if dialect.name == "sqlite":
            return (value - EPOCH) // ONE_MICROSECOND
        return value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, int):
            return EPOCH + value * ONE_MICROSECOND
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


metadata = sa.MetaData()

bars = sa.Table(
    "bars",
    metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("interval", sa.Text, primary_key=True),
    sa.Column("ts", UtcDateTime, primary_key=True),
    sa.Column("session", sa.Date),  # exchange session date (migration 0002), see marketpipe.bars
    sa.Column("open", sa.Float, nullable=False),
    sa.Column("high", sa.Float, nullable=False),
    sa.Column("low", sa.Float, nullable=False),
    sa.Column("close", sa.Float, nullable=False),
    sa.Column("volume", sa.Float, nullable=False),
    sa.Column("vwap", sa.Float),
    sa.Column("trades", sa.BigInteger),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at", UtcDateTime, nullable=False),
)

corporate_actions = sa.Table(
    "corporate_actions",
    metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("ex_date", sa.Date, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("ingested_at", UtcDateTime, nullable=False),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("symbol", sa.Text),
    sa.Column("interval", sa.Text),
    sa.Column("ts", UtcDateTime),
    sa.Column("source", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("payload", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("quarantined_at", UtcDateTime, nullable=False),
)

watermarks = sa.Table(
    "watermarks",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("interval", sa.Text, primary_key=True),
    sa.Column("last_ts", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("job", sa.Text, nullable=False),
    sa.Column("flow_run_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("params", sa.Text),
    sa.Column("counts", sa.Text),
    sa.Column("chunks_done", sa.Integer, nullable=False),
    sa.Column("chunks_total", sa.Integer),
    sa.Column("rows_so_far", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text),
)

features = sa.Table(
    "features",
    metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("interval", sa.Text, primary_key=True),
    sa.Column("ts", UtcDateTime, primary_key=True),
    *[sa.Column(name, sa.Float) for name in FEATURE_COLUMNS],
    sa.Column("outlier_flags", sa.Text),
)

quality = sa.Table(
    "quality",
    metadata,
    sa.Column("symbol", sa.Text, primary_key=True),
    sa.Column("interval", sa.Text, primary_key=True),
    sa.Column("session", sa.Date, primary_key=True),
    sa.Column("expected", sa.Integer),
    sa.Column("present", sa.Integer),
    sa.Column("missing", sa.Integer),
    sa.Column("quarantined", sa.Integer),
    sa.Column("outliers", sa.Integer),
    sa.Column("staleness_s", sa.Float),
    sa.Column("score", sa.Float),
    sa.Column("computed_at", UtcDateTime, nullable=False),
)

backfill_chunks = sa.Table(
    "backfill_chunks",
    metadata,
    sa.Column("job_key", sa.Text, primary_key=True),
    sa.Column("chunk_id", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=False),
)
