"""The hot store: recent bars and pipeline bookkeeping in SQLite (embedded) or PostgreSQL.

One SQLAlchemy Core implementation serves both engines; the schema is versioned with Alembic and
applied by the constructor. On PostgreSQL bar writes go through binary COPY (`pg_bars_copy`).
Timestamps are UTC everywhere; see `hot_tables` for how SQLite stores them.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import sqlalchemy as sa

from marketpipe.bars import BAR_KEY, conform_bars, empty_bars, keys_unique
from marketpipe.errors import ContractError
from marketpipe.storage import hot_tables as t
from marketpipe.storage.hot_analytics import AnalyticsTables
from marketpipe.storage.hot_base import HotStoreBase
from marketpipe.storage.hot_frames import (
    CORPORATE_ACTION_COLUMNS,
    QUARANTINE_COLUMNS,
    READ_COLUMNS,
    as_symbols,
    bars_frame,
    canonical_bars,
    from_epoch_us,
    quarantine_records,
    sqlite_bar_rows,
    to_date,
    to_records,
    to_utc,
    utc_column,
    utc_now,
)
from marketpipe.storage.hot_ledger import LedgerTables
from marketpipe.storage.pg_bars_copy import PgBulkBars
from marketpipe.symbols import validate_symbol

# SQLite bulk upsert: one executemany of this fixed, parametrised statement (timestamps are
# pre-converted to epoch µs, skipping per-value type processing). Identical rows are not rewritten.
_SQLITE_UPSERT_BARS = """
INSERT INTO bars (symbol, interval, ts, session, open, high, low, close, volume, vwap, trades,
                  source, ingested_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, interval, ts) DO UPDATE SET
    session = excluded.session, open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, vwap = excluded.vwap, trades = excluded.trades,
    source = excluded.source, ingested_at = excluded.ingested_at
WHERE bars.open IS NOT excluded.open OR bars.high IS NOT excluded.high
    OR bars.low IS NOT excluded.low OR bars.close IS NOT excluded.close
    OR bars.volume IS NOT excluded.volume OR bars.vwap IS NOT excluded.vwap
    OR bars.trades IS NOT excluded.trades OR bars.source IS NOT excluded.source
"""


class SqlHotStore(LedgerTables, AnalyticsTables, HotStoreBase):
    """Hot tier on SQLite or PostgreSQL. Thread-safe; call `dispose()` when done."""

    def __init__(self, url: str, *, migrate: bool = True):
        super().__init__(url)
        self._pg_bulk = PgBulkBars(self.sa_url) if self.dialect == "postgresql" else None
        self.last_write_path: str | None = None  # "append" | "upsert" of the last upsert_bars
        if migrate:
            self.migrate()

    def dispose(self) -> None:
        """Close every connection, pooled and bulk-load (the store reconnects if used again)."""
        if self._pg_bulk is not None:
            self._pg_bulk.close()
        super().dispose()

    # ---------------------------------------------------------------- bars
    def upsert_bars(self, df: pd.DataFrame) -> int:
        """Insert or replace bars on (symbol, interval, ts), all or nothing; returns rows written.

        Duplicate keys inside `df` keep the last row. A stored row whose values all equal the
        new ones is left as it is (`ingested_at` = when its values last changed).
        `last_write_path` records whether PostgreSQL took the pure-append COPY path or the
        staged merge.
        """
        if df is None or len(df) == 0:
            return 0
        bars = canonical_bars(df)
        for symbol in bars["symbol"].unique():
            validate_symbol(symbol)  # a stored bar's symbol may later name a lake path / S3 key
        if not keys_unique(bars):
            dupes = bars.duplicated(list(BAR_KEY), keep="last")
            bars = bars.loc[~dupes].reset_index(drop=True)
        now = pd.Timestamp(utc_now())
        if self._pg_bulk is not None:
            rows, self.last_write_path = self._pg_bulk.write(bars, now)
            return rows
        rows = sqlite_bar_rows(bars, now.value // 1000)
        with self._tx() as conn:
            conn.exec_driver_sql(_SQLITE_UPSERT_BARS, rows)
        self.last_write_path = "upsert"
        return len(rows)

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
        *,
        as_of: pd.Timestamp | None = None,
        with_ingested_at: bool = False,
    ) -> pd.DataFrame:
        """Canonical bars in [start, end), sorted by symbol then ts.

        `as_of` keeps rows with `ingested_at <= as_of`; `with_ingested_at` adds that column
        (the union with the lake picks the newer copy of a key by it).
        """
        # `session` is derived from ts (conform_bars recomputes it): not fetched, no per-row parsing
        cols = [self._raw_ts() if c == "ts" else t.bars.c[c] for c in READ_COLUMNS]
        cond = self._bar_filter(symbols, interval, start, end)
        if as_of is not None:
            cond.append(t.bars.c.ingested_at <= to_utc(as_of))
        stmt = sa.select(*cols).where(*cond).order_by(t.bars.c.symbol, t.bars.c.ts)
        if self._pg_bulk is not None:
            table = self._pg_bulk.fetch_arrow(stmt)
            frame = conform_bars(table.to_pandas()) if table.num_rows else empty_bars()
        else:
            with self._tx() as conn:
                rows = conn.execute(stmt).all()
            frame = bars_frame(rows, ts_epoch_us=True)
        frame = _in_code_point_order(frame)
        if with_ingested_at:
            frame["ingested_at"] = self._ingested_at(frame, cond)
        return frame

    def _ingested_at(self, frame: pd.DataFrame, cond: list) -> pd.Series:
        """`ingested_at` aligned to `frame`'s (symbol, ts) rows (a second, narrow query)."""
        stmt = sa.select(t.bars.c.symbol, self._raw_ts(), t.bars.c.ingested_at).where(*cond)
        with self._tx() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
        sym, ts, ing = zip(*rows, strict=True)
        ts = from_epoch_us(ts) if self.dialect == "sqlite" else utc_column(ts)
        ing = utc_column(ing)
        lookup = pd.Series(
            pd.DatetimeIndex(ing).as_unit("us"),
            index=pd.MultiIndex.from_arrays([list(sym), pd.DatetimeIndex(ts).as_unit("us")]),
        )
        key = pd.MultiIndex.from_arrays([frame["symbol"], pd.DatetimeIndex(frame["ts"])])
        return pd.Series(lookup.reindex(key).to_numpy(), index=frame.index)

    def _raw_ts(self):
        """bars.ts without per-row conversion: epoch µs on SQLite, timestamptz on PostgreSQL."""
        raw = sa.BigInteger() if self.dialect == "sqlite" else sa.DateTime(timezone=True)
        return sa.type_coerce(t.bars.c.ts, raw).label("ts")

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
            sa.select(self._raw_ts())
            .where(*self._bar_filter(symbol, interval, start, end))
            .order_by(t.bars.c.ts)
        )
        with self._tx() as conn:
            values = conn.execute(stmt).scalars().all()
        ts = from_epoch_us(values) if self.dialect == "sqlite" else utc_column(values)
        return pd.DatetimeIndex(ts, name="ts")

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


def _in_code_point_order(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars grouped by symbol in Python string order (PostgreSQL's collation may differ)."""
    symbols = list(pd.unique(bars["symbol"]))
    if symbols == sorted(symbols):
        return bars
    return bars.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
