"""Pipeline bookkeeping in the hot store: watermarks, job runs and backfill chunks."""

from __future__ import annotations

import json

import pandas as pd
import sqlalchemy as sa

from marketpipe.errors import ContractError
from marketpipe.storage import hot_tables as t
from marketpipe.storage.hot_base import HotStoreBase
from marketpipe.storage.hot_frames import json_text, to_utc, utc_now


class LedgerTables(HotStoreBase):
    """Watermarks (never moving backwards), job runs (start → progress → end) and chunks."""

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
        """The newest job runs first, as dicts; `params`/`counts` decoded from JSON."""
        stmt = sa.select(t.job_runs).order_by(t.job_runs.c.id.desc()).limit(limit)
        return self._jobs(stmt)

    def get_job(self, job_id: int) -> dict | None:
        """One job run by id, or None."""
        jobs = self._jobs(sa.select(t.job_runs).where(t.job_runs.c.id == job_id))
        return jobs[0] if jobs else None

    def _jobs(self, stmt: sa.Select) -> list[dict]:
        with self._tx() as conn:
            rows = conn.execute(stmt).mappings().all()
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
