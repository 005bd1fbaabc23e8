"""Initial hot-store schema: bars, corporate actions, quarantine, watermarks, jobs, features, quality.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite keeps timestamps as INTEGER epoch microseconds (see marketpipe.storage.hot_tables)
TS = sa.DateTime(timezone=True).with_variant(sa.BigInteger, "sqlite")
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
FEATURES = (
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


def upgrade() -> None:
    op.create_table(
        "bars",
        sa.Column("symbol", sa.Text, nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("open", sa.Float, nullable=False),
        sa.Column("high", sa.Float, nullable=False),
        sa.Column("low", sa.Float, nullable=False),
        sa.Column("close", sa.Float, nullable=False),
        sa.Column("volume", sa.Float, nullable=False),
        sa.Column("vwap", sa.Float),
        sa.Column("trades", sa.BigInteger),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("symbol", "interval", "ts", name="bars_pkey"),
    )
    # tiering scans `ts < cutoff` across all symbols; the PK serves per-symbol ranges. On
    # PostgreSQL a BRIN index: bars arrive roughly in time order, and a B-tree on ts made bulk
    # upserts ~3x slower (measured); SQLite ignores `postgresql_using` and builds a B-tree.
    op.create_index("bars_ts_idx", "bars", ["ts"], postgresql_using="brin")

    op.create_table(
        "corporate_actions",
        sa.Column("symbol", sa.Text, nullable=False),
        sa.Column("ex_date", sa.Date, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("symbol", "ex_date", "kind", name="corporate_actions_pkey"),
    )

    op.create_table(
        "quarantine",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.Text),
        sa.Column("interval", sa.Text),
        sa.Column("ts", TS),
        sa.Column("source", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("payload", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("quarantined_at", TS, nullable=False),
    )
    op.create_index("quarantine_symbol_idx", "quarantine", ["symbol", "interval"])
    op.create_index("quarantine_run_idx", "quarantine", ["run_id"])

    op.create_table(
        "watermarks",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("symbol", sa.Text, nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        sa.Column("last_ts", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("source", "symbol", "interval", name="watermarks_pkey"),
    )

    op.create_table(
        "job_runs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("job", sa.Text, nullable=False),
        sa.Column("flow_run_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("params", sa.Text),
        sa.Column("counts", sa.Text),
        sa.Column("chunks_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("chunks_total", sa.Integer),
        sa.Column("rows_so_far", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.CheckConstraint(
            "status IN ('running', 'success', 'failed', 'cancelled')", name="job_runs_status_ck"
        ),
    )
    op.create_index("job_runs_started_idx", "job_runs", ["started_at"])

    op.create_table(
        "features",
        sa.Column("symbol", sa.Text, nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        sa.Column("ts", TS, nullable=False),
        *[sa.Column(name, sa.Float) for name in FEATURES],
        sa.Column("outlier_flags", sa.Text),
        sa.PrimaryKeyConstraint("symbol", "interval", "ts", name="features_pkey"),
    )

    op.create_table(
        "quality",
        sa.Column("symbol", sa.Text, nullable=False),
        sa.Column("interval", sa.Text, nullable=False),
        sa.Column("session", sa.Date, nullable=False),
        sa.Column("expected", sa.Integer),
        sa.Column("present", sa.Integer),
        sa.Column("missing", sa.Integer),
        sa.Column("quarantined", sa.Integer),
        sa.Column("outliers", sa.Integer),
        sa.Column("staleness_s", sa.Float),
        sa.Column("score", sa.Float),
        sa.Column("computed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("symbol", "interval", "session", name="quality_pkey"),
    )

    op.create_table(
        "backfill_chunks",
        sa.Column("job_key", sa.Text, nullable=False),
        sa.Column("chunk_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("finished_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("job_key", "chunk_id", name="backfill_chunks_pkey"),
    )


def downgrade() -> None:
    for name in (
        "backfill_chunks",
        "quality",
        "features",
        "job_runs",
        "watermarks",
        "quarantine",
        "corporate_actions",
        "bars",
    ):
        op.drop_table(name)
