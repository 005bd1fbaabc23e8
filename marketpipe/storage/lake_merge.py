"""Pure Arrow/numpy helpers: group into partitions, de-duplicate, merge (new wins), diff,
split, and convert to the canonical pandas frame."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES, DERIVED_COLUMNS, conform_bars

# `session` is derived from ts (conform_bars computes it on read; the lake files do not hold it yet)
VALUE_COLUMNS = tuple(c for c in BAR_COLUMNS if c != "ts" and c not in DERIVED_COLUMNS)


def ts_int(table: pa.Table) -> np.ndarray:
    """The `ts` column as int64 microseconds (no nulls: the contract forbids them)."""
    return table.column("ts").cast(pa.int64()).to_numpy()


def sort_unique_last(table: pa.Table) -> pa.Table:
    """Rows sorted by ts; of rows sharing a ts the last one (input order) is kept."""
    ts = ts_int(table)
    if len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1])):
        return table  # already sorted and unique (the usual case)
    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = sorted_ts[:-1] != sorted_ts[1:]
    idx = order[keep]
    if len(idx) == len(ts) and np.array_equal(idx, np.arange(len(ts))):
        return table
    return table.take(pa.array(idx))


def is_sorted_unique(table: pa.Table) -> bool:
    """True when rows are ordered by (symbol, ts) with no repeated key."""
    n = table.num_rows
    if n < 2:
        return True
    sym, ts = table.column("symbol"), ts_int(table)
    head, tail = sym.slice(0, n - 1), sym.slice(1)
    same = pc.equal(tail, head).to_numpy(zero_copy_only=False)
    later = pc.greater(tail, head).to_numpy(zero_copy_only=False)
    return bool(np.all(np.where(same, ts[1:] > ts[:-1], later)))


def _same(a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Element-wise equality where null == null and NaN == NaN."""
    sa, sb = a.to_pandas(), b.to_pandas()
    eq = (sa == sb).fillna(False).to_numpy(dtype=bool)
    both_missing = pd.isna(sa).to_numpy(dtype=bool) & pd.isna(sb).to_numpy(dtype=bool)
    return eq | both_missing


@dataclass
class MergeResult:
    table: pa.Table  # merged partition content, sorted by ts, unique ts
    added: int  # incoming rows whose key was not stored
    changed: int  # incoming rows whose key was stored with other values
    unchanged: int  # incoming rows identical to what was stored

    @property
    def is_noop(self) -> bool:
        return self.added == 0 and self.changed == 0


def merge_partition(old: pa.Table, new: pa.Table) -> MergeResult:
    """Merge `new` (sorted, unique ts) into `old` (sorted, unique ts); new wins on key."""
    if old.num_rows == 0:
        return MergeResult(new, new.num_rows, 0, 0)
    old_ts, new_ts = ts_int(old), ts_int(new)
    pos = np.searchsorted(old_ts, new_ts)
    pos_c = np.minimum(pos, len(old_ts) - 1)
    in_old = (pos < len(old_ts)) & (old_ts[pos_c] == new_ts)
    n_overlap = int(in_old.sum())
    changed = 0
    if n_overlap:
        old_rows = old.take(pa.array(pos_c[in_old]))
        new_rows = new.filter(pa.array(in_old))
        same = np.ones(n_overlap, dtype=bool)
        for col in VALUE_COLUMNS:
            same &= _same(old_rows.column(col), new_rows.column(col))
        changed = int((~same).sum())
    added = len(new_ts) - n_overlap
    if added == 0 and changed == 0:
        return MergeResult(old, 0, 0, n_overlap)
    replaced = np.zeros(len(old_ts), dtype=bool)
    replaced[pos_c[in_old]] = True
    kept_old = old.filter(pa.array(~replaced))
    merged = pa.concat_tables([kept_old, new])
    merged = merged.take(pc.sort_indices(merged, sort_keys=[("ts", "ascending")]))
    return MergeResult(merged, added, changed, n_overlap - changed)


_MAX_RUNS = 256
_SORT_KEYS = [("interval", "ascending"), ("symbol", "ascending"), ("ts", "ascending")]

PartitionTuple = tuple[str, str, int]


def _run_starts(table: pa.Table, years: pa.ChunkedArray) -> np.ndarray:
    n = table.num_rows
    if n < 2:
        return np.zeros(min(n, 1), dtype=np.int64)
    change = None
    for col in (table.column("interval"), table.column("symbol"), years):
        diff = pc.not_equal(col.slice(1), col.slice(0, n - 1))
        change = diff if change is None else pc.or_(change, diff)
    idx = np.flatnonzero(change.to_numpy(zero_copy_only=False)) + 1
    return np.concatenate([[0], idx])


def group_partitions(table: pa.Table) -> list[tuple[PartitionTuple, pa.Table]]:
    """Split rows into (interval, symbol, year) groups, sorted by key, input order kept within
    a group. Zero-copy slices when the input arrives grouped (as providers emit it)."""
    years = pc.year(table.column("ts"))
    starts = _run_starts(table, years)
    if len(starts) > _MAX_RUNS:  # interleaved input: one stable sort, then contiguous runs
        table = table.take(pc.sort_indices(table, sort_keys=_SORT_KEYS))
        years = pc.year(table.column("ts"))
        starts = _run_starts(table, years)
    ends = np.append(starts[1:], table.num_rows)
    runs: dict[PartitionTuple, list[pa.Table]] = defaultdict(list)
    iv, sym = table.column("interval"), table.column("symbol")
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        key = (iv[a].as_py(), sym[a].as_py(), int(years[a].as_py()))
        runs[key].append(table.slice(a, b - a))
    return [(k, v[0] if len(v) == 1 else pa.concat_tables(v)) for k, v in sorted(runs.items())]


def split_rows(table: pa.Table, max_rows: int) -> list[pa.Table]:
    """Contiguous slices of at most `max_rows` rows (at least one slice, possibly empty)."""
    if table.num_rows <= max_rows:
        return [table]
    return [table.slice(i, max_rows) for i in range(0, table.num_rows, max_rows)]


_CANONICAL_DTYPES = {c: pd.Series(dtype=t).dtype for c, t in BAR_DTYPES.items()}


def is_canonical(df: pd.DataFrame) -> bool:
    """True when `df` already has exactly the canonical columns, order and dtypes."""
    return list(df.columns) == list(BAR_COLUMNS) and all(
        df[c].dtype == t for c, t in _CANONICAL_DTYPES.items()
    )


def to_bars_frame(table: pa.Table) -> pd.DataFrame:
    """Canonical frame from a file-schema table (direct Arrow conversion; conform_bars is the
    fallback should a pandas/pyarrow pairing ever map a type differently)."""
    cols = [c for c in BAR_COLUMNS if c in table.column_names]
    df = table.select(cols).to_pandas(types_mapper=_INT64_AS_NULLABLE.get)
    if len(cols) < len(BAR_COLUMNS) or any(df[c].dtype != _CANONICAL_DTYPES[c] for c in cols):
        return conform_bars(df)
    return df


_INT64_AS_NULLABLE = {pa.int64(): pd.Int64Dtype()}
