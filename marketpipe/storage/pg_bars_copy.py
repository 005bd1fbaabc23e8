"""Bulk bar I/O on PostgreSQL via ADBC (Arrow): binary COPY writes (append fast path or staged
upsert) and Arrow reads.

ADBC's `adbc_ingest` streams an Arrow table with `COPY … FROM STDIN (FORMAT BINARY)`; measured
here it beats psycopg's `copy.write_row` (~630k vs ~130k rows/s into a temp table, 200k bars).
Every call is one transaction on a dedicated ADBC connection: nothing is visible until commit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Literal

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from marketpipe.errors import ServiceUnavailable, StoreError, WriteConflict, is_retryable_sqlstate
from marketpipe.redact import mask_url, redact

WritePath = Literal["append", "upsert"]
_NUMERIC_DOLLAR = postgresql.dialect(paramstyle="numeric_dollar")

_OVERLAP_SQL = (
    "SELECT 1 FROM bars WHERE symbol = $1 AND interval = $2 AND ts >= $3 AND ts <= $4 LIMIT 1"
)
_CREATE_STAGE_SQL = "CREATE TEMP TABLE bars_stage (LIKE bars INCLUDING DEFAULTS) ON COMMIT DROP"
_MERGE_STAGE_SQL = """
INSERT INTO bars AS b (symbol, interval, ts, session, open, high, low, close, volume, vwap,
                       trades, source, ingested_at)
SELECT symbol, interval, ts, session, open, high, low, close, volume, vwap, trades, source,
       ingested_at
FROM bars_stage
ON CONFLICT (symbol, interval, ts) DO UPDATE SET
    session = EXCLUDED.session, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
    volume = EXCLUDED.volume, vwap = EXCLUDED.vwap, trades = EXCLUDED.trades,
    source = EXCLUDED.source, ingested_at = EXCLUDED.ingested_at
WHERE (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades, b.source)
    IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                      EXCLUDED.volume, EXCLUDED.vwap, EXCLUDED.trades, EXCLUDED.source)
"""


KEY_ORDER = [("symbol", "ascending"), ("interval", "ascending"), ("ts", "ascending")]


def in_key_order(table: pa.Table) -> pa.Table:
    """`table` sorted by (symbol, interval, ts) -- the one order every writer takes row locks in.

    Two writers that lock the same keys in the same order wait for each other but never
    deadlock (writer A holding AAPL and waiting for MSFT while B holds MSFT and waits for AAPL).
    COPY inserts in table order, and the staged merge reads its temp table by a sequential scan
    (insertion order: temp tables are never scanned in parallel or synchronised), so sorting
    here orders both paths. An already sorted table (the usual case) is returned as it is.
    """
    n = table.num_rows
    if n < 2:
        return table
    head, tail = table.slice(0, n - 1), table.slice(1)
    ordered = pc.less_equal(head["ts"], tail["ts"])
    for col in ("interval", "symbol"):
        ordered = pc.or_(
            pc.less(head[col], tail[col]),
            pc.and_(pc.equal(head[col], tail[col]), ordered),
        )
    if pc.all(ordered).as_py():
        return table
    return table.take(pc.sort_indices(table, sort_keys=KEY_ORDER))


def libpq_uri(url: sa.URL) -> str:
    """The libpq URI (`postgresql://…`) for a SQLAlchemy PostgreSQL URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgBulkBars:
    """Bar writes by binary COPY (one transaction per call) and Arrow reads, over one ADBC link."""

    def __init__(self, url: sa.URL):
        self._uri = libpq_uri(url)
        self._masked = mask_url(self._uri)
        self._conn: adbc.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> adbc.Connection:
        if self._conn is None:
            try:
                conn = adbc.connect(self._uri)
                with conn.cursor() as cur:
                    # room for the staging table in memory (an upper bound, allocated on use)
                    cur.execute("SET temp_buffers = '256MB'")
                conn.commit()
                self._conn = conn
            except adbc.Error as exc:
                raise ServiceUnavailable(
                    f"PostgreSQL unreachable at {self._masked}: {_message(exc)}"
                ) from exc
        return self._conn

    def write(self, df: pd.DataFrame, ingested_at: pd.Timestamp) -> tuple[int, WritePath]:
        """Upsert deduplicated canonical bars; returns (rows, path taken)."""
        table = in_key_order(pa.Table.from_pandas(df, preserve_index=False))
        stamp = pa.repeat(pa.scalar(ingested_at, type=pa.timestamp("us", tz="UTC")), len(df))
        table = table.append_column("ingested_at", stamp)
        with self._lock:
            conn = self._connection()
            with self._translate_errors(conn, "bars write rejected by PostgreSQL"):
                if not self._overlaps(conn, df):
                    try:
                        with conn.cursor() as cur:
                            cur.adbc_ingest("bars", table, mode="append")
                        conn.commit()
                        return len(df), "append"
                    except adbc.IntegrityError:
                        conn.rollback()  # a concurrent writer added overlapping keys: merge instead
                with conn.cursor() as cur:
                    cur.execute(_CREATE_STAGE_SQL)
                    cur.adbc_ingest("bars_stage", table, mode="append", temporary=True)
                    cur.execute(_MERGE_STAGE_SQL)
                conn.commit()
                return len(df), "upsert"

    def fetch_arrow(self, stmt: sa.Select) -> pa.Table:
        """Run a SELECT through ADBC and return Arrow (no per-row Python objects).

        `stmt` is compiled with `$n` placeholders; its values travel as bound parameters.
        Values must already be what PostgreSQL expects (aware UTC datetimes, plain strings).
        """
        compiled = stmt.compile(
            dialect=_NUMERIC_DOLLAR, compile_kwargs={"render_postcompile": True}
        )
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        with self._lock:
            conn = self._connection()
            with self._translate_errors(conn, "bars read failed"):
                with conn.cursor() as cur:
                    cur.execute(compiled.string, params)
                    table = cur.fetch_arrow_table()
                conn.commit()
                return table

    @staticmethod
    def _overlaps(conn: adbc.Connection, df: pd.DataFrame) -> bool:
        """True when any stored bar of a batch (symbol, interval) lies inside the batch's ts span."""
        spans = df.groupby(["symbol", "interval"], sort=False)["ts"].agg(["min", "max"])
        with conn.cursor() as cur:
            for (symbol, interval), row in spans.iterrows():
                params = (symbol, interval, row["min"].to_pydatetime(), row["max"].to_pydatetime())
                cur.execute(_OVERLAP_SQL, params)
                if cur.fetchone() is not None:
                    return True
        return False

    @contextlib.contextmanager
    def _translate_errors(self, conn: adbc.Connection, what: str) -> Iterator[None]:
        """Lost connection -> ServiceUnavailable (retryable; the connection is dropped); any other
        driver error -> StoreError; either way the transaction is rolled back."""
        try:
            yield
        except adbc.Error as exc:
            if is_retryable_sqlstate(getattr(exc, "sqlstate", None)):
                _rollback_quietly(conn)
                raise WriteConflict(
                    f"{what}, rolled back by a concurrent transaction: {_message(exc)}"
                ) from exc
            if _is_connection_error(exc):
                self._discard()
                raise ServiceUnavailable(
                    f"PostgreSQL connection lost at {self._masked}: {_message(exc)}"
                ) from exc
            _rollback_quietly(conn)
            raise StoreError(f"{what}: {_message(exc)}") from exc
        except BaseException:
            _rollback_quietly(conn)
            raise

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except adbc.Error:
                pass

    def close(self) -> None:
        """Close the ADBC connection (a later write reconnects)."""
        with self._lock:
            self._discard()


def _rollback_quietly(conn: adbc.Connection) -> None:
    try:
        conn.rollback()
    except adbc.Error:
        pass


def _is_connection_error(exc: adbc.Error) -> bool:
    """Connection-level failures (SQLSTATE class 08, server shutdown, or none at all)."""
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return isinstance(exc, adbc.OperationalError)
    return state.startswith(("08", "57P")) or state == "53300"


def _message(exc: adbc.Error) -> str:
    """PostgreSQL's primary message (with SQLSTATE) when present, else the first line."""
    details = dict(getattr(exc, "details", None) or [])
    primary = details.get(b"PG_DIAG_MESSAGE_PRIMARY")
    if primary:
        state = getattr(exc, "sqlstate", None)
        text = primary.decode(errors="replace")
        return redact(f"{text} (SQLSTATE {state})" if state else text)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact(lines[0]) if lines else type(exc).__name__
