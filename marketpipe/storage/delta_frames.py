"""Frames ↔ the lake's Arrow batches: canonical bars with `session`, `ingested_at` and `year`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES, BAR_KEY, conform_bars, empty_bars
from marketpipe.calendar import session_dates
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
    for col in BAR_KEY:
        if col not in df.columns or df[col].isna().any():
            raise ContractError(f"bars for the cold lake need a non-null {col!r} in every row")
    ingested = df["ingested_at"] if "ingested_at" in df.columns else None
    bars = df if _is_canonical(df) else conform_bars(df)
    for interval in bars["interval"].unique():
        validate_interval(interval)
    for symbol in bars["symbol"].unique():
        validate_symbol(symbol)
    keep = ~bars.duplicated(list(BAR_KEY), keep="last").to_numpy()
    if not keep.all():
        bars = bars.loc[keep]
        ingested = ingested.loc[keep] if ingested is not None else None
    table = pa.Table.from_pandas(bars, schema=BARS_SCHEMA, preserve_index=False)
    ts = pd.DatetimeIndex(bars["ts"])
    session = np.empty(len(bars), dtype="datetime64[D]")
    intervals = bars["interval"].to_numpy()
    for interval in pd.unique(intervals):
        mask = intervals == interval
        session[mask] = session_dates(ts[mask], str(interval))
    if ingested is None:
        now = now or pd.Timestamp.now(tz="UTC")
        ingested_arr = pa.array(np.full(len(bars), now.value // 1000, "int64"), pa.int64())
        ingested_arr = ingested_arr.cast(TS)
    else:
        ingested_arr = pa.array(pd.to_datetime(ingested, utc=True).dt.as_unit("us"), TS)
    table = table.append_column("session", pa.array(session, pa.date32()))
    table = table.append_column("ingested_at", ingested_arr)
    table = table.append_column("year", pc.cast(pc.year(table["ts"]), pa.int32()))
    return table.replace_schema_metadata(None)


def _is_canonical(df: pd.DataFrame) -> bool:
    return list(df.columns[: len(BAR_COLUMNS)]) == list(BAR_COLUMNS) and all(
        df[c].dtype == t for c, t in _CANONICAL.items()
    )


def _to_frame(table: pa.Table, with_ingested_at: bool) -> pd.DataFrame:
    df = table.to_pandas(types_mapper=INT64_AS_NULLABLE.get)
    if any(df[c].dtype != t for c, t in _CANONICAL.items()):
        extra = df["ingested_at"] if with_ingested_at else None
        df = conform_bars(df)
        if extra is not None:
            df["ingested_at"] = extra
    if df.duplicated(["symbol", "ts"]).any():  # a key stored twice: keep its newest copy
        order = ["symbol", "ts"] + (["ingested_at"] if with_ingested_at else [])
        df = df.sort_values(order, kind="stable").drop_duplicates(["symbol", "ts"], keep="last")
    return df.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


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


def _partition_keys(batch: pa.Table):
    from marketpipe.storage.lake_paths import PartitionKey

    parts = batch.select(list(PARTITION_BY)).group_by(list(PARTITION_BY)).aggregate([])
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
