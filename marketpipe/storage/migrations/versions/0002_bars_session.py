"""bars.session: the exchange session date of each bar, date-typed, for day-level SQL.

Added nullable, backfilled, then (PostgreSQL) made NOT NULL. The value is
`marketpipe.calendar.session_dates(ts, interval)`: the America/New_York date of an intraday bar's
start, the UTC date of a daily bar's `ts` (daily bars are keyed at 00:00 UTC of the session).
PostgreSQL computes it in SQL; SQLite has no time-zone database, so its rows are backfilled from
Python in chunks (SQLite keeps `session` as ISO `YYYY-MM-DD` text, SQLAlchemy's `Date` format).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_CHUNK = 200_000
_PG_BACKFILL = """
UPDATE bars SET session = CASE WHEN interval = '1d' THEN (ts AT TIME ZONE 'UTC')::date
                               ELSE (ts AT TIME ZONE 'America/New_York')::date END
WHERE session IS NULL
"""


def upgrade() -> None:
    op.add_column("bars", sa.Column("session", sa.Date, nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(_PG_BACKFILL)
        op.alter_column("bars", "session", nullable=False)
    else:
        _backfill_sqlite(bind)


def _backfill_sqlite(bind: sa.Connection) -> None:
    from marketpipe.bars import session_column

    while True:
        rows = bind.exec_driver_sql(
            "SELECT rowid, interval, ts FROM bars WHERE session IS NULL LIMIT ?", (_CHUNK,)
        ).all()
        if not rows:
            return
        frame = pd.DataFrame(rows, columns=["rowid", "interval", "ts"])
        ts = pd.Series(pd.to_datetime(frame["ts"].astype("int64"), unit="us", utc=True))
        days = session_column(ts, frame["interval"].astype("str")).astype("str")
        bind.exec_driver_sql(
            "UPDATE bars SET session = ? WHERE rowid = ?",
            list(zip(days.tolist(), frame["rowid"].astype("int64").tolist(), strict=True)),
        )


def downgrade() -> None:
    op.drop_column("bars", "session")
