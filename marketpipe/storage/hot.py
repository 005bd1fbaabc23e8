"""The hot store: recent bars and pipeline bookkeeping in SQLite (embedded) or PostgreSQL.

One SQLAlchemy Core implementation serves both engines; the schema is versioned with Alembic and
applied by the constructor. On PostgreSQL bar writes go through binary COPY (`pg_bars_copy`).
Timestamps are UTC everywhere; see `hot_tables` for how SQLite stores them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from marketpipe.bars import BAR_COLUMNS, BAR_KEY
from marketpipe.errors import ContractError, ServiceUnavailable, StoreError
from marketpipe.settings import mask_url
from marketpipe.storage import hot_migrate
from marketpipe.storage import hot_tables as t
from marketpipe.storage.hot_frames import (
    CORPORATE_ACTION_COLUMNS,
    QUARANTINE_COLUMNS,
    as_symbols,
    bars_frame,
    canonical_bars,
    json_text,
    quarantine_records,
    to_date,
    to_records,
    to_utc,
    utc_column,
    utc_now,
)
from marketpipe.storage.pg_bars_copy import PgBarsWriter
from marketpipe.symbols import validate_symbol

_BAR_VALUE_COLUMNS = [c for c in BAR_COLUMNS if c not in BAR_KEY] + ["ingested_at"]


def engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL, with bare `postgresql://` mapped to the psycopg 3 driver."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class SqlHotStore:
    """Hot tier on SQLite or PostgreSQL. Thread-safe; call `dispose()` when done."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        self.masked_url = mask_url(url)
        sa_url = engine_url(url)
        self.dialect = sa_url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(f"unsupported hot store URL {self.masked_url}")
        self.engine = _create_engine(sa_url)
        self._pg_writer = PgBarsWriter(sa_url) if self.dialect == "postgresql" else None
        self.last_write_path: str | None = None  # "append" | "upsert" of the last upsert_bars
        if migrate:
            self.migrate()

    # ---------------------------------------------------------------- plumbing
    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        """One transaction; driver errors become ServiceUnavailable / StoreError (URL masked)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(
                f"hot store unavailable at {self.masked_url}: {_reason(exc)}"
            ) from exc
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"hot store rejected the write: {_reason(exc)}") from exc

    def _insert(self, table: sa.Table):
        return (pg_insert if self.dialect == "postgresql" else sqlite_insert)(table)

    def _upsert(self, conn: sa.Connection, table: sa.Table, rows: list[dict]) -> int:
        """INSERT … ON CONFLICT (primary key) DO UPDATE the given columns; new values win."""
        if not rows:
            return 0
        ins = self._insert(table)
        keys = [c.name for c in table.primary_key.columns]
        updates = {c: ins.excluded[c] for c in rows[0] if c not in keys}
        stmt = (
            ins.on_conflict_do_update(index_elements=keys, set_=updates)
            if updates
            else (ins.on_conflict_do_nothing(index_elements=keys))
        )
        conn.execute(stmt, rows)
        return len(rows)

    def migrate(self) -> bool:
        """Bring the schema to the newest revision; True if anything was applied."""
        try:
            return hot_migrate.migrate(self.engine)
        except sa.exc.OperationalError as exc:
            raise ServiceUnavailable(
                f"hot store unavailable at {self.masked_url}: {_reason(exc)}"
            ) from exc

    def schema_revision(self) -> str | None:
        """The Alembic revision recorded in the database."""
        with self._tx() as conn:
            return hot_migrate.current_revision(conn)

    def dispose(self) -> None:
        """Close every pooled connection (the store reconnects if used again)."""
        if self._pg_writer is not None:
            self._pg_writer.close()
        self.engine.dispose()

    # ---------------------------------------------------------------- bars
    def upsert_bars(self, df: pd.DataFrame) -> int:
        """Insert or replace bars on (symbol, interval, ts), all or nothing; returns rows written.

        Duplicate keys inside `df` keep the last row. `last_write_path` records whether
        PostgreSQL took the pure-append COPY path or the staged merge.
        """
        if df is None or len(df) == 0:
            return 0
        bars = canonical_bars(df)
        for symbol in bars["symbol"].unique():
            validate_symbol(symbol)  # a stored bar's symbol may later name a lake path / S3 key
        dupes = bars.duplicated(list(BAR_KEY), keep="last")
        if dupes.any():
            bars = bars.loc[~dupes].reset_index(drop=True)
        now = pd.Timestamp(utc_now())
        if self._pg_writer is not None:
            rows, self.last_write_path = self._pg_writer.write(bars, now)
            return rows
        records = to_records(bars, BAR_COLUMNS)
        for rec in records:
            rec["ingested_at"] = now
        with self._tx() as conn:
            self._upsert(conn, t.bars, records)
        self.last_write_path = "upsert"
        return len(records)

    def _bar_filter(self, symbols, interval, start, end) -> list:
        cond = []
        syms = as_symbols(symbols)
        if syms is not None:
            cond.append(t.bars.c.symbol.in_(syms))
        if interval is not None:
            cond.append(t.bars.c.interval == interval)
        if start is not None:
            cond.append(t.bars.c.ts >= to_utc(start))
        if end is not None:
            cond.append(t.bars.c.ts < to_utc(end))
        return cond

    def read_bars(
        self,
        symbols: str | Iterable[str],
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Canonical bars in [start, end), sorted by symbol then ts."""
        cols = [t.bars.c[c] for c in BAR_COLUMNS]
        stmt = (
            sa.select(*cols)
            .where(*self._bar_filter(symbols, interval, start, end))
            .order_by(t.bars.c.symbol, t.bars.c.ts)
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        return bars_frame(rows)

    def delete_bars(
        self,
        symbol: str,
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        ingested_before: pd.Timestamp | None = None,
    ) -> int:
        """Delete one symbol's bars in [start, end); returns rows deleted.

        `ingested_before` keeps rows (re)written at or after that instant (tiering deletes only
        what it copied to the lake, never a restatement that arrived meanwhile).
        """
        cond = self._bar_filter(symbol, interval, start, end)
        if ingested_before is not None:
            cond.append(t.bars.c.ingested_at < to_utc(ingested_before))
        stmt = sa.delete(t.bars).where(*cond)
        with self._tx() as conn:
            return conn.execute(stmt).rowcount

    def count_bars(
        self, symbols: str | Iterable[str] | None = None, interval: str | None = None
    ) -> int:
        """Number of stored bars, optionally for some symbols and/or one interval."""
        stmt = sa.select(sa.func.count()).select_from(t.bars)
        stmt = stmt.where(*self._bar_filter(symbols, interval, None, None))
        with self._tx() as conn:
            return int(conn.execute(stmt).scalar_one())

    def bar_keys(
        self,
        symbol: str,
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DatetimeIndex:
        """The stored bar starts of one symbol in [start, end), ascending, UTC."""
        stmt = (
            sa.select(t.bars.c.ts)
            .where(*self._bar_filter(symbol, interval, start, end))
            .order_by(t.bars.c.ts)
        )
        with self._tx() as conn:
            values = conn.execute(stmt).scalars().all()
        return pd.DatetimeIndex(utc_column(values), name="ts")

    def stats(self) -> pd.DataFrame:
        """Rows per (symbol, interval) with min_ts / max_ts."""
        b = t.bars.c
        stmt = (
            sa.select(
                b.symbol,
                b.interval,
                sa.func.count().label("rows"),
                sa.func.min(b.ts).label("min_ts"),
                sa.func.max(b.ts).label("max_ts"),
            )
            .group_by(b.symbol, b.interval)
            .order_by(b.symbol, b.interval)
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(
            rows, columns=["symbol", "interval", "rows", "min_ts", "max_ts"]
        )
        # min()/max() of the TypeDecorator column come back raw from SQLite: parse as UTC
        for col in ("min_ts", "max_ts"):
            df[col] = utc_column(df[col])
        return df.astype({"symbol": "str", "interval": "str", "rows": "int64"})

    # ---------------------------------------------------------------- quarantine
    def write_quarantine(self, df: pd.DataFrame) -> int:
        """Append rejected rows (`QUARANTINE_COLUMNS`; missing ones become null/now)."""
        if df is None or len(df) == 0:
            return 0
        rows = quarantine_records(df, utc_now())
        with self._tx() as conn:
            conn.execute(sa.insert(t.quarantine), rows)
        return len(rows)

    def _quarantine_filter(self, symbols, interval, run_id) -> list:
        q = t.quarantine.c
        cond = []
        syms = as_symbols(symbols)
        if syms is not None:
            cond.append(q.symbol.in_(syms))
        if interval is not None:
            cond.append(q.interval == interval)
        if run_id is not None:
            cond.append(q.run_id == run_id)
        return cond

    def count_quarantine(
        self,
        symbols: str | Iterable[str] | None = None,
        interval: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Number of quarantined rows matching the filters."""
        stmt = sa.select(sa.func.count()).select_from(t.quarantine)
        stmt = stmt.where(*self._quarantine_filter(symbols, interval, run_id))
        with self._tx() as conn:
            return int(conn.execute(stmt).scalar_one())

    def read_quarantine(
        self,
        symbols: str | Iterable[str] | None = None,
        interval: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Quarantined rows (`id` + `QUARANTINE_COLUMNS`), oldest first."""
        q = t.quarantine.c
        cols = ["id", *QUARANTINE_COLUMNS]
        stmt = (
            sa.select(*[q[c] for c in cols])
            .where(*self._quarantine_filter(symbols, interval, run_id))
            .order_by(q.id)
            .limit(limit)
        )
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(rows, columns=cols)
        for col in ("ts", "quarantined_at"):
            df[col] = utc_column(df[col])
        return df.astype({"id": "int64"})

    # ---------------------------------------------------------------- corporate actions
    def upsert_corporate_actions(self, df: pd.DataFrame) -> int:
        """Insert or replace actions on (symbol, ex_date, kind); returns rows written."""
        if df is None or len(df) == 0:
            return 0
        missing = [c for c in CORPORATE_ACTION_COLUMNS if c not in df.columns]
        if missing:
            raise ContractError(f"corporate actions frame lacks column(s) {', '.join(missing)}")
        acts = df.drop_duplicates(["symbol", "ex_date", "kind"], keep="last")
        rows = to_records(acts, CORPORATE_ACTION_COLUMNS)
        now = utc_now()
        for row in rows:
            row["ex_date"] = to_date(row["ex_date"])
            row["value"] = float(row["value"])
            row["ingested_at"] = now
        with self._tx() as conn:
            return self._upsert(conn, t.corporate_actions, rows)

    def read_corporate_actions(self, symbols: str | Iterable[str] | None = None) -> pd.DataFrame:
        """Actions (`symbol, ex_date (datetime.date), kind, value, source`) by symbol, ex_date."""
        c = t.corporate_actions.c
        stmt = sa.select(*[c[n] for n in CORPORATE_ACTION_COLUMNS]).order_by(c.symbol, c.ex_date)
        syms = as_symbols(symbols)
        if syms is not None:
            stmt = stmt.where(c.symbol.in_(syms))
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(rows, columns=list(CORPORATE_ACTION_COLUMNS))
        return df.astype({"symbol": "str", "kind": "str", "value": "float64", "source": "str"})

    # ---------------------------------------------------------------- watermarks
    def get_watermark(self, source: str, symbol: str, interval: str) -> pd.Timestamp | None:
        """The newest bar start ingested for (source, symbol, interval), or None."""
        w = t.watermarks.c
        stmt = sa.select(w.last_ts).where(
            w.source == source, w.symbol == symbol, w.interval == interval
        )
        with self._tx() as conn:
            value = conn.execute(stmt).scalar_one_or_none()
        return None if value is None else pd.Timestamp(value).tz_convert("UTC")

    def set_watermark(self, source: str, symbol: str, interval: str, last_ts) -> pd.Timestamp:
        """Advance the watermark to `last_ts` (never backwards); returns the stored value."""
        ts = to_utc(last_ts)
        if ts is None:
            raise ContractError(f"watermark {last_ts!r} is not a timestamp")
        ins = self._insert(t.watermarks)
        stored = t.watermarks.c.last_ts
        newer = sa.case((ins.excluded.last_ts > stored, ins.excluded.last_ts), else_=stored)
        stmt = ins.values(
            source=source, symbol=symbol, interval=interval, last_ts=ts, updated_at=utc_now()
        ).on_conflict_do_update(
            index_elements=["source", "symbol", "interval"],
            set_={"last_ts": newer, "updated_at": ins.excluded.updated_at},
        )
        with self._tx() as conn:
            conn.execute(stmt)
        result = self.get_watermark(source, symbol, interval)
        assert result is not None
        return result

    # ---------------------------------------------------------------- jobs
    def start_job(
        self, job: str, params: dict | None = None, flow_run_id: str | None = None
    ) -> int:
        """Record a running job; returns its id."""
        now = utc_now()
        stmt = sa.insert(t.job_runs).values(
            job=job,
            flow_run_id=None if flow_run_id is None else str(flow_run_id),
            status="running",
            started_at=now,
            updated_at=now,
            params=json_text(params or {}),
            chunks_done=0,
            rows_so_far=0,
        )
        with self._tx() as conn:
            return int(conn.execute(stmt).inserted_primary_key[0])

    def update_job(
        self,
        job_id: int,
        *,
        chunks_done: int | None = None,
        chunks_total: int | None = None,
        rows_so_far: int | None = None,
    ) -> None:
        """Record progress of a running job (only the values given)."""
        values: dict = {"updated_at": utc_now()}
        for name, value in (
            ("chunks_done", chunks_done),
            ("chunks_total", chunks_total),
            ("rows_so_far", rows_so_far),
        ):
            if value is not None:
                values[name] = int(value)
        with self._tx() as conn:
            conn.execute(sa.update(t.job_runs).where(t.job_runs.c.id == job_id).values(**values))

    def finish_job(
        self, job_id: int, status: str, counts: dict | None = None, error: str | None = None
    ) -> None:
        """Close a job as success / failed / cancelled with its counts and error line."""
        if status not in t.JOB_STATUSES or status == "running":
            raise ValueError(
                f"finish status must be one of success, failed, cancelled; got {status!r}"
            )
        now = utc_now()
        stmt = (
            sa.update(t.job_runs)
            .where(t.job_runs.c.id == job_id)
            .values(
                status=status,
                counts=json_text(counts or {}),
                error=error,
                finished_at=now,
                updated_at=now,
            )
        )
        with self._tx() as conn:
            conn.execute(stmt)

    def recent_jobs(self, limit: int = 20) -> list[dict]:
        """The newest job runs first; `params`/`counts` decoded from JSON."""
        stmt = sa.select(t.job_runs).order_by(t.job_runs.c.id.desc()).limit(limit)
        with self._tx() as conn:
            rows = conn.execute(stmt).mappings().all()
        jobs = []
        for row in rows:
            job = dict(row)
            for key in ("params", "counts"):
                job[key] = json.loads(job[key]) if job[key] else {}
            jobs.append(job)
        return jobs

    def get_job(self, job_id: int) -> dict | None:
        """One job run by id, or None."""
        return next((j for j in self._jobs_where(t.job_runs.c.id == job_id)), None)

    def _jobs_where(self, cond) -> list[dict]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(t.job_runs).where(cond)).mappings().all()
        return [
            {
                **r,
                "params": json.loads(r["params"] or "{}"),
                "counts": json.loads(r["counts"] or "{}"),
            }
            for r in rows
        ]

    def mark_chunk_done(self, job_key: str, chunk_id: str, rows: int, requests: int) -> None:
        """Record a finished backfill chunk (idempotent; a re-run overwrites)."""
        record = {
            "job_key": job_key,
            "chunk_id": chunk_id,
            "status": "done",
            "rows": int(rows),
            "requests": int(requests),
            "finished_at": utc_now(),
        }
        with self._tx() as conn:
            self._upsert(conn, t.backfill_chunks, [record])

    def done_chunks(self, job_key: str) -> set[str]:
        """Chunk ids already finished for a backfill job key."""
        c = t.backfill_chunks.c
        stmt = sa.select(c.chunk_id).where(c.job_key == job_key, c.status == "done")
        with self._tx() as conn:
            return set(conn.execute(stmt).scalars().all())

    # ---------------------------------------------------------------- features & quality
    def upsert_features(self, df: pd.DataFrame) -> int:
        """Insert or update feature rows on (symbol, interval, ts); only given columns change."""
        if df is None or len(df) == 0:
            return 0
        allowed = {*BAR_KEY, *t.FEATURE_COLUMNS, "outlier_flags"}
        unknown = [c for c in df.columns if c not in allowed]
        if unknown:
            raise ContractError(f"features frame has unknown column(s) {', '.join(unknown)}")
        missing = [c for c in BAR_KEY if c not in df.columns]
        if missing:
            raise ContractError(f"features frame lacks column(s) {', '.join(missing)}")
        frame = df.drop_duplicates(list(BAR_KEY), keep="last")
        rows = to_records(frame, list(df.columns))
        with self._tx() as conn:
            return self._upsert(conn, t.features, rows)

    def read_features(
        self,
        symbols: str | Iterable[str],
        interval: str,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Feature rows in [start, end), sorted by symbol, ts."""
        f = t.features.c
        cols = [c.name for c in t.features.columns]
        cond = [f.symbol.in_(as_symbols(symbols)), f.interval == interval]
        if start is not None:
            cond.append(f.ts >= to_utc(start))
        if end is not None:
            cond.append(f.ts < to_utc(end))
        stmt = sa.select(t.features).where(*cond).order_by(f.symbol, f.ts)
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(rows, columns=cols)
        df["ts"] = utc_column(df["ts"])
        types = {name: "float64" for name in t.FEATURE_COLUMNS}
        return df.astype({"symbol": "str", "interval": "str", **types})

    def upsert_quality(self, df: pd.DataFrame) -> int:
        """Insert or replace quality rows on (symbol, interval, session)."""
        if df is None or len(df) == 0:
            return 0
        cols = [c for c in t.QUALITY_COLUMNS if c in df.columns]
        missing = [c for c in ("symbol", "interval", "session") if c not in df.columns]
        if missing:
            raise ContractError(f"quality frame lacks column(s) {', '.join(missing)}")
        rows = to_records(df.drop_duplicates(["symbol", "interval", "session"], keep="last"), cols)
        now = utc_now()
        for row in rows:
            row["session"] = to_date(row["session"])
            row["computed_at"] = to_utc(row.get("computed_at")) or now
        with self._tx() as conn:
            return self._upsert(conn, t.quality, rows)

    def read_quality(
        self,
        symbols: str | Iterable[str] | None = None,
        interval: str | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> pd.DataFrame:
        """Quality rows with session in [start, end) (`session` as datetime.date)."""
        q = t.quality.c
        cond = []
        syms = as_symbols(symbols)
        if syms is not None:
            cond.append(q.symbol.in_(syms))
        if interval is not None:
            cond.append(q.interval == interval)
        if start is not None:
            cond.append(q.session >= to_date(start))
        if end is not None:
            cond.append(q.session < to_date(end))
        stmt = sa.select(t.quality).where(*cond).order_by(q.symbol, q.interval, q.session)
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        df = pd.DataFrame.from_records(rows, columns=list(t.QUALITY_COLUMNS))
        df["computed_at"] = utc_column(df["computed_at"])
        return df


def _create_engine(url: sa.URL) -> sa.Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig if exc.orig is not None else exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return mask_url(line)
