"""Import ledger: one row per bar file `marketpipe import` has fully landed (skip it next time).

Revision ID: 0003
Revises: 0002 (the `session` column)
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True).with_variant(sa.BigInteger, "sqlite")


def upgrade() -> None:
    op.create_table(
        "import_files",
        sa.Column("path", sa.Text, primary_key=True),  # absolute local path or s3://bucket/key
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),  # mtime (ns) or the object's ETag
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("hot", sa.BigInteger, nullable=False),
        sa.Column("cold", sa.BigInteger, nullable=False),
        sa.Column("quarantined", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("imported_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_files")
