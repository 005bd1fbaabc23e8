"""Processing output in the hot store: feature rows and per-session quality scores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa

from marketpipe.bars import BAR_KEY, QUALITY_COLUMNS
from marketpipe.errors import ContractError
from marketpipe.storage import hot_tables as t
from marketpipe.storage.hot_base import HotStoreBase
from marketpipe.storage.hot_frames import (
    as_symbols,
    to_date,
    to_records,
    to_utc,
    utc_column,
    utc_now,
)


class AnalyticsTables(HotStoreBase):
    """`features` (only the given columns change on upsert) and `quality` tables."""

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
        symbols: str | Iterable[str] | None,
        interval: str | None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Feature rows in [start, end), sorted by symbol, ts."""
        f = t.features.c
        cols = [c.name for c in t.features.columns]
        cond = [] if symbols is None else [f.symbol.in_(as_symbols(symbols))]
        if interval is not None:
            cond.append(f.interval == interval)
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
        cols = [c for c in QUALITY_COLUMNS if c in df.columns]
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
        df = pd.DataFrame.from_records(rows, columns=list(QUALITY_COLUMNS))
        df["computed_at"] = utc_column(df["computed_at"])
        return df
