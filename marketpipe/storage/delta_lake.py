"""Cold tier: Delta Lake tables (delta-rs) on a local folder or S3.

Layout under the lake root `url` (one Delta table per dataset)::

    {url}/bars/_delta_log/…                                  (the transaction log)
    {url}/bars/interval={interval}/symbol={escaped}/year={YYYY}/part-….parquet
    {url}/features/…                                         (same shape, processing output)

`bars` columns: the canonical bar columns + `session` (date32, the exchange session date) +
`ingested_at` (UTC, when the values were stored) + `year` (partition). Keyed on
`(symbol, interval, ts)`. Concurrency, restatements and time travel come from the Delta log: a write
is one MERGE commit (see `delta_table`), a reader sees one version, `read_bars(as_of=T)` reads the
version current at T, `restore(version)` undoes. Any Delta reader (deltalake, polars `scan_delta`,
DuckDB over `to_pyarrow_dataset()`, Spark) reads `{url}/bars`. See docs/LAKE.md.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from marketpipe.bars import BAR_COLUMNS, BAR_KEY
from marketpipe.errors import ConfigError
from marketpipe.storage.delta_frames import (
    INT64_AS_NULLABLE,
    PARTITION_BY,
    TS,
    _as_datetime,
    _as_symbols,
    _empty,
    _partition_keys,
    _to_frame,
    _utc,
    feature_field,
    lake_batch,
)
from marketpipe.storage.delta_io import MIGRATING_MARKER, DeltaLocation, retry_conflicts
from marketpipe.storage.delta_table import DeltaDataset
from marketpipe.storage.lake_paths import BARS_SCHEMA, validate_interval
from marketpipe.storage.lake_reports import CompactReport, PartitionInfo, WriteReport
from marketpipe.symbols import validate_symbol

BARS = "bars"
FEATURES = "features"
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024
DEFAULT_VACUUM_HOURS = 7 * 24
DELTA_BARS_SCHEMA = pa.schema(
    list(BARS_SCHEMA) + [("session", pa.date32()), ("ingested_at", TS), ("year", pa.int32())]
)
VALUE_COLUMNS = tuple(c for c in BAR_COLUMNS if c not in BAR_KEY)


def _year_start(ts: pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(year=ts.year, month=1, day=1, tz="UTC")


class DeltaLake:
    """The cold lake at `url` (local folder, `file://…` or `s3://bucket/prefix`)."""

    def __init__(
        self, url: str, storage_options: dict | None = None, delta_options: dict | None = None
    ):
        """`storage_options`: fsspec/s3fs options; `delta_options`: delta-rs options that override
        the ones derived from them (`Settings.delta_storage_options()`)."""
        self.location = DeltaLocation(url, storage_options, delta_options)
        self.url = self.location.url
        self.bars = DeltaDataset(
            self.location,
            BARS,
            key=("interval", "symbol", "year", "ts"),
            partition_by=PARTITION_BY,
            compare=VALUE_COLUMNS,
            version_column="ingested_at",
        )
        self.features = DeltaDataset(
            self.location,
            FEATURES,
            key=("interval", "symbol", "year", "ts"),
            partition_by=PARTITION_BY,
        )
        self._layout_checked = False

    def __repr__(self) -> str:
        return f"DeltaLake({self.location.display})"

    @property
    def dataset_url(self) -> str:
        """The bars table URI to hand to deltalake/polars/DuckDB (`{url}/bars`)."""
        return self.bars.uri

    def check_layout(self) -> None:
        """Refuse (one line) a lake holding the old Hive-Parquet layout or a half-done migration."""
        if self._layout_checked:
            return
        from marketpipe.storage.lake_migrate import has_old_layout

        if self.location.exists(MIGRATING_MARKER) or (
            not self.location.exists(f"{BARS}/_delta_log") and has_old_layout(self.location)
        ):
            raise ConfigError(
                f"cold lake {self.location.display} holds the old Hive-Parquet layout: "
                "run `marketpipe lake migrate` first"
            )
        self._layout_checked = True

    # ================================================================== write
    def write_bars(self, df: pd.DataFrame) -> WriteReport:
        """Upsert canonical bars in ONE commit (new keys added; changed values replace stored
        ones unless the stored row is newer by `ingested_at`). A frame may carry `ingested_at`
        (tiering keeps the hot row's); otherwise it is now."""
        report = WriteReport(rows_received=len(df))
        if len(df) == 0:
            return report
        batch, parts = lake_batch(df)  # validates symbols and intervals before any I/O
        self.check_layout()
        result = self.bars.upsert(batch, groups=parts)
        report.rows_added, report.rows_changed = result.inserted, result.updated
        report.rows_unchanged = batch.num_rows - result.inserted - result.updated
        report.rows_unchanged += len(df) - batch.num_rows  # duplicate keys inside the frame
        report.conflicts_retried = result.conflicts_retried
        report.version, report.write_path = result.version, result.path
        keys = _partition_keys(parts)
        if result.inserted + result.updated:
            report.partitions = keys
        else:
            report.partitions_unchanged = keys
        return report

    # ================================================================== read
    def read_bars(
        self,
        symbols: Iterable[str] | str,
        interval: str,
        start: object = None,
        end: object = None,
        *,
        as_of: object = None,
        with_ingested_at: bool = False,
    ) -> pd.DataFrame:
        """Canonical bars with `start <= ts < end` (half-open, UTC), sorted by symbol, ts.

        Only the partitions of the requested symbols and years are opened. `as_of` reads the
        table version that was current at that instant (nothing stored yet → empty).
        """
        validate_interval(interval)
        syms = sorted(_as_symbols(symbols) or [])
        lo, hi = _utc(start), _utc(end)
        cols = list(BAR_COLUMNS) + (["ingested_at"] if with_ingested_at else [])
        if not syms:
            return _empty(with_ingested_at)  # built only when needed: ~5 ms a frame
        self.check_layout()
        flt = (pads.field("interval") == interval) & pads.field("symbol").isin(syms)
        prune = [("interval", "=", interval), ("symbol", "in", syms)]
        prune += [("year", ">=", lo.year)] if lo is not None else []
        prune += [("year", "<=", hi.year)] if hi is not None else []
        # bounds on a UTC year boundary prune by the `year` partition alone (no row filter)
        if lo is not None:
            flt = flt & (pads.field("year") >= lo.year)
            if lo != _year_start(lo):
                flt = flt & (pads.field("ts") >= pa.scalar(lo, TS))
        if hi is not None:
            if hi == _year_start(hi):
                flt = flt & (pads.field("year") < hi.year)
            else:
                flt = flt & (pads.field("year") <= hi.year) & (pads.field("ts") < pa.scalar(hi, TS))
        table = self.bars.scan(flt, cols, as_of=_as_datetime(as_of), prune=prune)
        if table is None or table.num_rows == 0:
            return _empty(with_ingested_at)  # built only when needed: ~5 ms a frame
        return _to_frame(table, with_ingested_at)

    def read_partition(self, interval: str, symbol: str, year: int) -> pd.DataFrame:
        """All bars of one partition (canonical frame, sorted by ts)."""
        lo = pd.Timestamp(year=int(year), month=1, day=1, tz="UTC")
        return self.read_bars([symbol], interval, lo, lo + pd.DateOffset(years=1))

    def partition_keys(self, interval: str, symbol: str, year: int) -> pd.DatetimeIndex:
        """Sorted `ts` values stored in one partition (duplicates kept, so they can be detected)."""
        flt = (
            (pads.field("interval") == validate_interval(interval))
            & (pads.field("symbol") == validate_symbol(symbol))
            & (pads.field("year") == int(year))
        )
        prune = [("interval", "=", interval), ("symbol", "=", symbol), ("year", "=", int(year))]
        table = self.bars.scan(flt, ["ts"], prune=prune)
        if table is None or table.num_rows == 0:
            return pd.DatetimeIndex([], dtype="datetime64[us, UTC]", name="ts")
        return pd.DatetimeIndex(table.column("ts").to_pandas(), name="ts").sort_values()

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

    def partitions(
        self, interval: str | None = None, symbols: Iterable[str] | str | None = None
    ) -> list[PartitionInfo]:
        """(interval, symbol, year, files, rows, bytes) per partition, from the log alone."""
        files = self.bars.files()
        if files is None or files.num_rows == 0:
            return []
        df = files.select(
            [
                "partition.interval",
                "partition.symbol",
                "partition.year",
                "num_records",
                "size_bytes",
            ]
        ).to_pandas()
        df.columns = ["interval", "symbol", "year", "rows", "bytes"]
        if interval is not None:
            df = df.loc[df["interval"] == validate_interval(interval)]
        wanted = _as_symbols(symbols)
        if wanted is not None:
            df = df.loc[df["symbol"].isin(wanted)]
        out = []
        grouped = df.groupby(["interval", "symbol", "year"], sort=True)
        for (iv, sym, year), g in grouped:
            out.append(
                PartitionInfo(
                    str(iv),
                    str(sym),
                    int(year),
                    len(g),
                    int(g["rows"].sum()),
                    int(g["bytes"].sum()),
                )
            )
        return out

    # ================================================================== history
    def versions(self) -> list[dict]:
        """[{version, timestamp (UTC), operation}] of the bars table, newest first."""
        return [
            {
                "version": int(h["version"]),
                "timestamp": pd.Timestamp(h.get("timestamp", 0), unit="ms", tz="UTC"),
                "operation": h.get("operation"),
            }
            for h in self.bars.history()
        ]

    def restore(self, version: int) -> dict:
        """Make `version` the current content again (a new commit; history keeps both)."""
        dt = self.bars.table()
        if dt is None:
            raise ConfigError(f"cold lake {self.location.display} has no bars table to restore")
        with self.location.guard("restoring"):
            return dt.restore(int(version))

    # ================================================================== maintenance
    def delete_partition_rows(self, interval: str, symbol: str, year: int, keys: Iterable) -> int:
        """Remove rows with these ts from one partition (one commit; earlier versions keep them)."""
        ts = pd.DatetimeIndex(pd.to_datetime(list(keys), utc=True)).as_unit("us").unique()
        if len(ts) == 0:
            return 0
        n = len(ts)
        table = pa.table(
            {
                "interval": pa.array([validate_interval(interval)] * n),
                "symbol": pa.array([validate_symbol(symbol)] * n),
                "year": pa.array([int(year)] * n, pa.int32()),
                "ts": pa.array(ts, TS),
            }
        )
        return self.bars.delete_keys(table).deleted

    def compact(
        self,
        interval: str | None = None,
        symbols: Iterable[str] | str | None = None,
        target_bytes: int = DEFAULT_TARGET_BYTES,
    ) -> CompactReport:
        """Delta `optimize` (bin-packing small files into files of about `target_bytes`).
        Contents unchanged; safe beside writers (a lost race is retried)."""
        report = CompactReport()
        before = self.partitions(interval, symbols)
        if not before:
            return report
        report.files_before = sum(p.files for p in before)
        filters = []
        if interval is not None:
            filters.append(("interval", "=", validate_interval(interval)))
        wanted = _as_symbols(symbols)
        if wanted is not None:
            filters.append(("symbol", "in", wanted))

        def attempt() -> dict:
            dt = self.bars.table()
            with self.location.guard("compacting"):
                return dt.optimize.compact(
                    partition_filters=filters or None, target_size=int(target_bytes)
                )

        metrics, report.conflicts_retried = retry_conflicts(attempt)
        after = {p.key: p for p in self.partitions(interval, symbols)}
        report.files_after = sum(p.files for p in after.values())
        for p in before:
            if p.key in after and after[p.key].files < p.files:
                report.partitions_compacted.append(p.key)
                report.rows += after[p.key].rows
            else:
                report.partitions_skipped += 1
        report.files_removed = int(metrics.get("numFilesRemoved", 0))
        return report

    def vacuum(self, retention_hours: int = DEFAULT_VACUUM_HOURS) -> list[str]:
        """Delete data files no version newer than `retention_hours` needs; returns their paths."""
        removed: list[str] = []
        for ds in (self.bars, self.features):
            dt = ds.table()
            if dt is None:
                continue
            with self.location.guard(f"vacuuming {ds.name}"):
                removed += dt.vacuum(
                    retention_hours=int(retention_hours),
                    dry_run=False,
                    enforce_retention_duration=False,
                )
        return removed

    # ================================================================== features
    def write_features(self, df: pd.DataFrame) -> int:
        """Upsert processing output (keyed like bars) into the `features` table; rows written."""
        if df.empty:
            return 0
        frame = df.drop_duplicates(list(BAR_KEY), keep="last").reset_index(drop=True)
        frame = frame.assign(year=frame["ts"].dt.year.astype("int32"))
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        table = table.cast(pa.schema([feature_field(f) for f in table.schema]))
        result = self.features.upsert(table, merge_schema=True)
        return result.inserted + result.updated

    def read_features(self, symbols, interval: str, start=None, end=None) -> pd.DataFrame:
        syms = sorted(_as_symbols(symbols) or [])
        flt = (pads.field("interval") == validate_interval(interval)) & pads.field("symbol").isin(
            syms
        )
        lo, hi = _utc(start), _utc(end)
        if lo is not None:
            flt = flt & (pads.field("ts") >= pa.scalar(lo, TS))
        if hi is not None:
            flt = flt & (pads.field("ts") < pa.scalar(hi, TS))
        table = self.features.scan(flt)
        if table is None or table.num_rows == 0:
            return pd.DataFrame()
        df = table.to_pandas(types_mapper=INT64_AS_NULLABLE.get).drop(columns=["year"])
        return df.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
