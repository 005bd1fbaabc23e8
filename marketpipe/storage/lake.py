"""Cold tier: a Hive-partitioned Parquet lake on a local folder or S3 (fsspec + pyarrow).

Layout and file schema: see `marketpipe.storage.lake_paths`. Point external readers at
`{url}/bars` (``pyarrow.dataset.dataset(f"{url}/bars", partitioning="hive")`` or DuckDB
``read_parquet('{url}/bars/**/*.parquet', hive_partitioning=true)``).

Consistency model (one writer per partition at a time; readers any time):
- a partition is rewritten as a whole: merged rows are staged under `{url}/_tmp/`, moved into
  place as `part-0..part-{m-1}`, then stale `part-{m..}` files are removed (on S3 a single
  file skips staging: one PUT to its final key is already atomic);
- a partition of one file (the normal case: default 2M rows ≈ 85 MB) is replaced atomically
  (local rename, S3 PUT) -- readers see the old or the new file, never a mix;
- a partition of several files (now or after the rewrite) has a short window in which a
  reader listing it may see some new and some old files (new land before old are removed, so
  mostly doubled rows). `read_bars` de-duplicates keys and retries a file that vanished
  between listing and reading; plain pyarrow/DuckDB readers do neither. See docs/LAKE.md.
- restated rows (stored key, new values) keep the previous files under
  `{url}/_superseded/{stamp}/bars/...`; `restore_superseded(...)` puts them back.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from marketpipe.bars import STORED_INTERVALS, conform_bars, empty_bars
from marketpipe.errors import ConfigError, ContractError, StoreError
from marketpipe.storage.lake_fs import LakeFS
from marketpipe.storage.lake_merge import (
    group_partitions,
    is_canonical,
    is_sorted_unique,
    merge_partition,
    sort_unique_last,
    split_rows,
    to_bars_frame,
)
from marketpipe.storage.lake_paths import (
    BARS_SCHEMA,
    DATASET_DIR,
    SUPERSEDED_DIR,
    PartitionKey,
    decode_symbol,
    encode_symbol,
    part_index,
    part_name,
    utc_stamp,
    validate_interval,
)
from marketpipe.storage.lake_reports import (
    CompactReport,
    PartitionInfo,
    Restatement,
    WriteReport,
)
from marketpipe.symbols import validate_symbol

__all__ = [
    "CompactReport",
    "ParquetLake",
    "PartitionInfo",
    "PartitionKey",
    "Restatement",
    "WriteReport",
]

DEFAULT_MAX_ROWS_PER_FILE = 2_000_000  # ≈ 100 MB of 1m bars with snappy; keeps files ≤ 128 MB
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
_READ_ATTEMPTS = 3
_STAMP_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")


class ParquetLake:
    """The cold lake at `url` (local folder, `file://…` or `s3://bucket/prefix`)."""

    def __init__(
        self,
        url: str,
        storage_options: dict | None = None,
        *,
        max_rows_per_file: int = DEFAULT_MAX_ROWS_PER_FILE,
        max_workers: int | None = None,
    ):
        if max_rows_per_file < 1:
            raise ValueError("max_rows_per_file must be >= 1")
        self.max_workers = max_workers or min(4, os.cpu_count() or 2)
        self.io = LakeFS(url, storage_options)
        self.url = self.io.url
        self.max_rows_per_file = max_rows_per_file

    def __repr__(self) -> str:
        return f"ParquetLake({self.io.display})"

    @property
    def dataset_url(self) -> str:
        """Root to hand to pyarrow/DuckDB (`{url}/bars`)."""
        return f"{self.url}/{DATASET_DIR}"

    # ================================================================== write
    def write_bars(self, df: pd.DataFrame) -> WriteReport:
        """Merge canonical bars into their partitions (new wins on key); rewrite changed ones."""
        report = WriteReport(rows_received=len(df))
        if len(df) == 0:
            return report
        for col in ("symbol", "interval", "ts"):
            if col not in df.columns or df[col].isna().any():
                raise ContractError(f"bars for the cold lake need a non-null {col!r} in every row")
        if not is_canonical(df):
            df = conform_bars(df)
        for interval in df["interval"].unique():
            validate_interval(interval)
        for symbol in df["symbol"].unique():
            validate_symbol(symbol)  # before any path is built
        table = pa.Table.from_pandas(df, schema=BARS_SCHEMA, preserve_index=False)
        table = table.replace_schema_metadata(None)
        groups = group_partitions(table)
        stamp = utc_stamp()

        def one(item: tuple[tuple[str, str, int], pa.Table]) -> WriteReport:
            (interval, symbol, year), rows = item
            key = PartitionKey(interval, symbol, year)
            return self._write_partition(key, sort_unique_last(rows), stamp)

        # Partitions are independent; pyarrow and s3fs release the GIL while encoding/uploading.
        workers = max(1, min(len(groups), self.max_workers))
        if workers == 1:
            parts = [one(g) for g in groups]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lake") as pool:
                parts = list(pool.map(one, groups))
        for part in parts:
            report.merge(part)
        return report

    def _write_partition(self, key: PartitionKey, new: pa.Table, stamp: str) -> WriteReport:
        report = WriteReport()
        files = self._part_files(key)
        old = self.io.read_parquet(files) if files else BARS_SCHEMA.empty_table()
        if files:
            old = sort_unique_last(old)
        result = merge_partition(old, new)
        report.rows_added += result.added
        report.rows_changed += result.changed
        report.rows_unchanged += result.unchanged
        if result.is_noop:
            report.partitions_unchanged.append(key)
            return report
        if result.changed:
            dest = self._supersede(key, files, stamp)
            report.restated.append(Restatement(key, result.changed, dest))
        report.files += self._replace_files(key, result.table, files)
        report.partitions.append(key)
        return report

    def _supersede(self, key: PartitionKey, files: list[str], stamp: str) -> str:
        """Copy a partition's current files under `_superseded/{stamp}/`; return that folder."""
        dest = f"{SUPERSEDED_DIR}/{stamp}/{key.relpath}"
        for rel in files:
            self.io.copy(rel, f"{dest}/{rel.rsplit('/', 1)[-1]}")
        return dest

    def _replace_files(
        self, key: PartitionKey, table: pa.Table, old_files: list[str], max_rows: int | None = None
    ) -> list[str]:
        """Publish `table` as the partition's files; returns the new file paths (relative)."""
        chunks = split_rows(table, max_rows or self.max_rows_per_file)
        finals = [f"{key.relpath}/{part_name(n)}" for n in range(len(chunks))]
        direct = not self.io.is_local and len(chunks) == 1  # one S3 PUT is already atomic
        if direct:
            self.io.write_parquet(chunks[0], finals[0])
        else:
            tmp = self.io.new_tmp_dir()
            try:
                staged = [f"{tmp}/{part_name(n)}" for n in range(len(chunks))]
                for chunk, rel in zip(chunks, staged, strict=True):
                    self.io.write_parquet(chunk, rel)
                for src, dst in zip(staged, finals, strict=True):
                    self.io.move(src, dst)
            finally:
                self.io.remove_tree(tmp)
        stale = sorted(set(old_files) - set(finals))
        self.io.remove(stale)
        return finals

    # ================================================================== listing
    def _part_files(self, key: PartitionKey) -> list[str]:
        """The partition's `part-n.parquet` files, in n order (relative paths)."""
        names = [
            (part_index(n), n) for n, kind, _ in self.io.list_dir(key.relpath) if kind == "file"
        ]
        return [f"{key.relpath}/{n}" for i, n in sorted(x for x in names if x[0] is not None)]

    def _years(self, interval: str, symbol: str, base: str = "") -> list[int]:
        rel = f"{base}{DATASET_DIR}/interval={interval}/symbol={encode_symbol(symbol)}"
        out = []
        for name, kind, _ in self.io.list_dir(rel):
            if kind == "directory" and name.startswith("year=") and name[5:].isdigit():
                out.append(int(name[5:]))
        return sorted(out)

    def _symbols(self, interval: str, base: str = "") -> list[str]:
        out = []
        for name, kind, _ in self.io.list_dir(f"{base}{DATASET_DIR}/interval={interval}"):
            if kind == "directory" and name.startswith("symbol="):
                try:
                    out.append(decode_symbol(name[7:]))
                except ConfigError:  # a folder we did not write: skip it
                    continue
        return sorted(out)

    def _intervals(self, base: str = "") -> list[str]:
        out = []
        for name, kind, _ in self.io.list_dir(f"{base}{DATASET_DIR}"):
            if (
                kind == "directory"
                and name.startswith("interval=")
                and name[9:] in STORED_INTERVALS
            ):
                out.append(name[9:])
        return sorted(out)

    def partition_keys_list(
        self,
        interval: str | None = None,
        symbols: Iterable[str] | str | None = None,
        *,
        base: str = "",
    ) -> list[PartitionKey]:
        """Existing partitions, optionally limited to an interval and symbols (no file reads).
        `base` lists a copy of the layout under another folder (e.g. `_superseded/{stamp}/`)."""
        intervals = [validate_interval(interval)] if interval else self._intervals(base)
        wanted = _as_symbols(symbols)
        keys = []
        for iv in intervals:
            for sym in wanted if wanted is not None else self._symbols(iv, base):
                keys += [PartitionKey(iv, sym, y) for y in self._years(iv, sym, base)]
        return keys

    def partitions(
        self, interval: str | None = None, symbols: Iterable[str] | str | None = None
    ) -> list[PartitionInfo]:
        """(interval, symbol, year, files, rows, bytes) for each partition; rows from footers."""
        out = []
        for key in self.partition_keys_list(interval, symbols):
            entries = [
                (n, size)
                for n, kind, size in self.io.list_dir(key.relpath)
                if kind == "file" and part_index(n) is not None
            ]
            if not entries:
                continue
            files = [f"{key.relpath}/{n}" for n, _ in entries]
            rows = self.io.dataset(files).count_rows()
            out.append(
                PartitionInfo(
                    key.interval, key.symbol, key.year, len(files), rows, sum(s for _, s in entries)
                )
            )
        return out

    # ================================================================== read
    def read_bars(
        self,
        symbols: Iterable[str] | str,
        interval: str,
        start: object = None,
        end: object = None,
    ) -> pd.DataFrame:
        """Canonical bars with `start <= ts < end` (half-open, UTC, as the hot store), sorted.

        Only the partitions of the requested symbols and years are listed and opened.
        """
        validate_interval(interval)
        syms = sorted(_as_symbols(symbols) or [])
        lo, hi = _utc(start), _utc(end)
        last_exc: OSError | None = None
        for _ in range(_READ_ATTEMPTS):
            try:
                return self._read_once(syms, interval, lo, hi)
            except OSError as exc:  # a file replaced/removed between listing and reading
                if not _is_replaced_file(exc):
                    raise
                last_exc = exc
        raise StoreError(
            f"cold lake {self.io.display}: files kept changing during read"
        ) from last_exc

    def _read_once(self, syms, interval, lo, hi) -> pd.DataFrame:
        files: list[str] = []
        for sym in syms:
            for year in self._years(interval, sym):
                if (lo is not None and year < lo.year) or (hi is not None and year > hi.year):
                    continue
                files += self._part_files(PartitionKey(interval, sym, year))
        if not files:
            return empty_bars()
        # a bound that lies outside the partitions' years filters nothing: skip evaluating it
        years = [int(f.split("/year=")[1].split("/")[0]) for f in files]
        if lo is not None and lo <= pd.Timestamp(year=min(years), month=1, day=1, tz="UTC"):
            lo = None
        if hi is not None and hi >= pd.Timestamp(year=max(years) + 1, month=1, day=1, tz="UTC"):
            hi = None
        flt = None
        if lo is not None:
            flt = pads.field("ts") >= pa.scalar(lo, BARS_SCHEMA.field("ts").type)
        if hi is not None:
            cond = pads.field("ts") < pa.scalar(hi, BARS_SCHEMA.field("ts").type)
            flt = cond if flt is None else flt & cond
        table = self.io.read_parquet(files, filter=flt)
        df = to_bars_frame(table)
        if is_sorted_unique(table):  # files were read in (symbol, year, part) order
            return df
        # only while a multi-file partition is being rewritten: drop the doubled keys
        df = df.drop_duplicates(subset=["symbol", "ts"], keep="last")
        return df.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)

    def read_partition(self, interval: str, symbol: str, year: int) -> pd.DataFrame:
        """All bars of one partition (canonical frame, sorted by ts)."""
        key = PartitionKey(interval, symbol, int(year))
        files = self._part_files(key)
        if not files:
            return empty_bars()
        return to_bars_frame(self.io.read_parquet(files))

    def partition_keys(self, interval: str, symbol: str, year: int) -> pd.DatetimeIndex:
        """Sorted `ts` values stored in one partition (duplicates kept, so they can be detected)."""
        key = PartitionKey(interval, symbol, int(year))
        files = self._part_files(key)
        table = self.io.dataset(files).to_table(columns=["ts"]) if files else None
        if table is None or table.num_rows == 0:
            return pd.DatetimeIndex([], dtype="datetime64[us, UTC]", name="ts")
        idx = pd.DatetimeIndex(table.column("ts").to_pandas(), name="ts")
        return idx.sort_values()

    def verify_partition(
        self, interval: str, symbol: str, year: int, expected_keys: Iterable, *, exact: bool = False
    ) -> bool:
        """True when the partition has no duplicate keys and holds every expected ts
        (`exact=True`: exactly those). Used by tiering before deleting hot rows."""
        stored = self.partition_keys(interval, symbol, year)
        if stored.has_duplicates:
            return False
        expected = pd.DatetimeIndex(pd.to_datetime(list(expected_keys), utc=True)).unique()
        if exact:
            return len(stored) == len(expected) and bool(expected.isin(stored).all())
        return bool(expected.isin(stored).all())

    # ================================================================== maintenance
    def delete_partition_rows(self, interval: str, symbol: str, year: int, keys: Iterable) -> int:
        """Remove rows with these ts from one partition (previous files kept as superseded)."""
        key = PartitionKey(interval, symbol, int(year))
        files = self._part_files(key)
        if not files:
            return 0
        table = self.io.read_parquet(files)
        drop = pd.DatetimeIndex(pd.to_datetime(list(keys), utc=True)).as_unit("us")
        mask = np.isin(table.column("ts").cast(pa.int64()).to_numpy(), drop.asi8)
        removed = int(mask.sum())
        if removed:
            self._supersede(key, files, utc_stamp())
            kept = table.filter(pa.array(~mask))
            if kept.num_rows:
                self._replace_files(key, kept, files)
            else:
                self.io.remove(files)
        return removed

    def compact(
        self,
        interval: str | None = None,
        symbols: Iterable[str] | str | None = None,
        target_bytes: int = DEFAULT_TARGET_BYTES,
    ) -> CompactReport:
        """Rewrite partitions with more files than their size needs into files of about
        `target_bytes`. Contents unchanged; idempotent; new files land before old ones go."""
        report = CompactReport()
        for info in self.partitions(interval, symbols):
            report.files_before += info.files
            bytes_per_row = max(info.bytes / max(info.rows, 1), 1.0)
            rows_per_file = max(1, int(target_bytes // bytes_per_row))
            wanted = max(1, math.ceil(info.rows / rows_per_file))
            if info.files <= wanted:
                report.partitions_skipped += 1
                report.files_after += info.files
                continue
            files = self._part_files(info.key)
            table = sort_unique_last(self.io.read_parquet(files))
            new_files = self._replace_files(info.key, table, files, max_rows=rows_per_file)
            report.partitions_compacted.append(info.key)
            report.files_after += len(new_files)
            report.rows += table.num_rows
        return report

    # ================================================================== features
    def write_features(self, df: pd.DataFrame) -> int:
        """Processing output older than the hot window (see `feature_lake.FeatureLake`)."""
        from marketpipe.storage.feature_lake import FeatureLake

        return FeatureLake(self.io).write(df)

    def read_features(self, symbols, interval: str, start=None, end=None) -> pd.DataFrame:
        from marketpipe.storage.feature_lake import FeatureLake

        return FeatureLake(self.io).read(symbols, interval, start, end)

    def superseded(self) -> list[tuple[str, PartitionKey]]:
        """(stamp, partition) of every superseded copy, oldest first."""
        out = []
        for stamp, kind, _ in self.io.list_dir(SUPERSEDED_DIR):
            if kind == "directory":
                base = f"{SUPERSEDED_DIR}/{stamp}/"
                out += [(stamp, k) for k in self.partition_keys_list(base=base)]
        return out

    def restore_superseded(self, stamp: str, interval: str, symbol: str, year: int) -> int:
        """Make the copy superseded at `stamp` the partition's content again (the current
        content is itself superseded, so a restore can be undone). Returns rows restored."""
        key = PartitionKey(interval, symbol, int(year))
        if not _STAMP_RE.match(stamp):
            raise ConfigError(
                f"invalid superseded stamp {stamp[:40]!r}: expected e.g. {utc_stamp()}"
            )
        src_dir = f"{SUPERSEDED_DIR}/{stamp}/{key.relpath}"
        names = [n for n, kind, _ in self.io.list_dir(src_dir) if part_index(n) is not None]
        if not names:
            raise StoreError(f"no superseded copy of {key.relpath} at {stamp}")
        table = self.io.read_parquet([f"{src_dir}/{n}" for n in names])
        table = sort_unique_last(table)
        files = self._part_files(key)
        if files:
            self._supersede(key, files, utc_stamp())
        self._replace_files(key, table, files)
        return table.num_rows


def _is_replaced_file(exc: OSError) -> bool:
    # FileNotFoundError: removed (local or S3); s3fs `FileExpired`: ETag changed mid-read.
    return isinstance(exc, FileNotFoundError) or type(exc).__name__ == "FileExpired"


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
