"""Frames ↔ the lake's Arrow batches: canonical bars with `session`, `ingested_at` and `year`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.bars import (
    BAR_COLUMNS,
    BAR_DTYPES,
    BAR_KEY,
    conform_bars,
    empty_bars,
    keys_unique,
    session_column,
)
from marketpipe.errors import ContractError
from marketpipe.storage.lake_paths import BARS_SCHEMA, validate_interval
from marketpipe.symbols import validate_symbol

PARTITION_BY = ("interval", "symbol", "year")
TS = pa.timestamp("us", tz="UTC")
INT64_AS_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.date32(): pd.ArrowDtype(pa.date32())}
_CANONICAL = {c: pd.Series(dtype=t).dtype for c, t in BAR_DTYPES.items()}


def bars_table(df: pd.DataFrame, now: pd.Timestamp | None = None) -> pa.Table:
    """The lake's Arrow batch of canonical bars: duplicate keys keep the last row; `session`,
    `ingested_at` (kept when the frame has it) and `year` added."""
    return lake_batch(df, now)[0]


def lake_batch(df: pd.DataFrame, now: pd.Timestamp | None = None) -> tuple[pa.Table, pa.Table]:
    """`bars_table(df)` and its distinct (interval, symbol, year) partitions, from one group-by
    that also yields the intervals and symbols to validate (before any I/O)."""
    for col in BAR_KEY:
        if col not in df.columns or df[col].isna().any():
            raise ContractError(f"bars for the cold lake need a non-null {col!r} in every row")
    ingested = df["ingested_at"] if "ingested_at" in df.columns else None
    canonical = _is_canonical(df)
    bars = df if canonical else conform_bars(df)  # conform computes `session` from ts
    keep = None if keys_unique(bars) else ~bars.duplicated(list(BAR_KEY), keep="last").to_numpy()
    if keep is not None and not keep.all():
        bars = bars.loc[keep]
        ingested = ingested.loc[keep] if ingested is not None else None
    table = pa.Table.from_pandas(bars, schema=BARS_SCHEMA, preserve_index=False)
    session = bars["session"] if not canonical else session_column(bars["ts"], bars["interval"])
    session = pa.array(session.array, pa.date32())
    if ingested is None:
        now = now or pd.Timestamp.now(tz="UTC")
        ingested_arr = pa.array(np.full(len(bars), now.value // 1000, "int64"), pa.int64())
        ingested_arr = ingested_arr.cast(TS)
    else:
        ingested_arr = pa.array(pd.to_datetime(ingested, utc=True).dt.as_unit("us"), TS)
    table = table.append_column("session", session)
    table = table.append_column("ingested_at", ingested_arr)
    # the UTC year; pc.year on the tz-naive view skips a per-value time-zone lookup (2x faster)
    year = pc.cast(pc.year(table["ts"].cast(pa.timestamp("us"))), pa.int32())
    table = table.append_column("year", year).replace_schema_metadata(None)
    parts = table.select(list(PARTITION_BY)).group_by(list(PARTITION_BY)).aggregate([])
    for interval in set(parts["interval"].to_pylist()):
        validate_interval(interval)
    for symbol in set(parts["symbol"].to_pylist()):
        validate_symbol(symbol)
    return table, parts


def _is_canonical(df: pd.DataFrame) -> bool:
    return list(df.columns[: len(BAR_COLUMNS)]) == list(BAR_COLUMNS) and all(
        df[c].dtype == t for c, t in _CANONICAL.items()
    )


def _to_frame(table: pa.Table, with_ingested_at: bool) -> pd.DataFrame:
    table = _sorted_unique(table)
    if not with_ingested_at and "ingested_at" in table.column_names:
        table = table.drop_columns(["ingested_at"])
    df = table.to_pandas(types_mapper=INT64_AS_NULLABLE.get)
    if any(df[c].dtype != t for c, t in _CANONICAL.items()):
        extra = df["ingested_at"] if with_ingested_at else None
        df = conform_bars(df)
        if extra is not None:
            df["ingested_at"] = extra
    return df


def _sorted_unique(table: pa.Table) -> pa.Table:
    """`table` sorted by (symbol, ts), a key stored twice keeping its newest copy (by
    `ingested_at` when the table has it), in Arrow: one symbol already in order costs one pass."""
    ts = pc.cast(table["ts"], pa.int64()).to_numpy()
    sym = table["symbol"]
    single = len(sym) == 0 or bool(pc.all(pc.equal(sym, sym[0])).as_py())
    if single and len(ts) and bool((ts[1:] > ts[:-1]).all()):
        return table  # one symbol, strictly increasing ts: sorted with no duplicate key
    if single:  # numpy's sort of one int64 column beats a multi-key Arrow sort
        order = np.argsort(ts, kind="stable")
        ts = ts[order]
        same = ts[1:] == ts[:-1]
        if not same.any() or "ingested_at" not in table.column_names:
            if same.any():
                order = order[np.append(~same, True)]
            return _take(table, order)
    keys = [("symbol", "ascending"), ("ts", "ascending")]
    if "ingested_at" in table.column_names:
        keys.append(("ingested_at", "ascending"))
    table = table.take(pc.sort_indices(table, sort_keys=keys))
    ts = pc.cast(table["ts"], pa.int64()).to_numpy()
    same = ts[1:] == ts[:-1]
    if not single and same.any():
        sym = pc.dictionary_encode(table["symbol"]).combine_chunks().indices.to_numpy()
        same &= sym[1:] == sym[:-1]
    if same.any():  # keep the last (newest) copy of each key
        table = table.filter(pa.array(np.append(~same, True)))
    return table


def _take(table: pa.Table, order: np.ndarray) -> pa.Table:
    """`table.take(order)` for one symbol: a string column holding one value throughout (symbol,
    and usually interval and source) is left as it is by a permutation (taking strings is the
    costly part of a take)."""
    indices = pa.array(order)
    columns = [
        col.slice(0, len(order)) if _constant_string(col) else col.take(indices)
        for col in table.columns
    ]
    return pa.table(columns, schema=table.schema)


def _constant_string(col: pa.ChunkedArray) -> bool:
    if not pa.types.is_string(col.type) or len(col) == 0 or col.null_count:
        return False
    return bool(pc.all(pc.equal(col, col[0])).as_py())


def _empty(with_ingested_at: bool) -> pd.DataFrame:
    df = empty_bars()
    if with_ingested_at:
        df["ingested_at"] = pd.Series(dtype="datetime64[us, UTC]")
    return df


def feature_field(field: pa.Field) -> pa.Field:
    if pa.types.is_timestamp(field.type):
        return pa.field(field.name, TS)
    if pa.types.is_large_string(field.type) or pa.types.is_string_view(field.type):
        return pa.field(field.name, pa.string())
    return field


def _partition_keys(parts: pa.Table):
    """Sorted `PartitionKey`s of a `lake_batch` partitions table."""
    from marketpipe.storage.lake_paths import PartitionKey

    return sorted(
        PartitionKey(i, s, int(y))
        for i, s, y in zip(*(parts[c].to_pylist() for c in PARTITION_BY), strict=True)
    )


def _as_symbols(symbols: Iterable[str] | str | None) -> list[str] | None:
    if symbols is None:
        return None
    items = [symbols] if isinstance(symbols, str) else list(symbols)
    return [validate_symbol(s) for s in dict.fromkeys(items)]


def _utc(value: object) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _as_datetime(value: object) -> datetime | None:
    ts = _utc(value)
    return None if ts is None else ts.to_pydatetime()
