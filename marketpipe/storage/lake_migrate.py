"""`marketpipe lake migrate`: convert a Hive-Parquet lake (the first version's layout, see
`lake_paths`) into the Delta tables, in place or into another lake URL.

Per old partition: read its `part-N.parquet` files, upsert them into the Delta table (one commit;
a re-run finds the keys stored and changes nothing), verify that every key is there exactly once,
then — in place only — remove the old files. While an in-place migration runs a `_migrating`
marker makes every reader refuse the lake; it goes once the last partition is verified, with the
old `_superseded/` and `_tmp/` folders. Interrupted at any point, a re-run resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketpipe.bars import conform_bars
from marketpipe.errors import ConfigError, StoreError
from marketpipe.storage.delta_io import MIGRATING_MARKER, DeltaLocation
from marketpipe.storage.lake_paths import (
    DATASET_DIR,
    SUPERSEDED_DIR,
    TMP_DIR,
    PartitionKey,
    decode_symbol,
    part_index,
)

FEATURES_DIR = "features"


@dataclass
class MigrationReport:
    source: str
    target: str
    partitions: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(p["rows"] for p in self.partitions)


def _old_partitions(location: DeltaLocation, dataset: str) -> dict[PartitionKey, list[str]]:
    """{partition: [absolute paths of its part-N.parquet files]} of the old layout."""
    fs, root = location.fsspec()
    root = root.rstrip("/")
    with location.guard("listing the old lake layout"):
        paths = fs.glob(f"{root}/{dataset}/interval=*/symbol=*/year=*/part-*.parquet")
    out: dict[PartitionKey, list[str]] = {}
    for path in sorted(paths):
        rel = path[len(root) + 1 :].split("/")
        if part_index(rel[-1]) is None:
            continue
        try:
            fields = dict(p.split("=", 1) for p in rel[1:4])
            key = PartitionKey(
                fields["interval"], decode_symbol(fields["symbol"]), int(fields["year"])
            )
        except (KeyError, ValueError, ConfigError):
            continue
        out.setdefault(key, []).append(path)
    return out


def has_old_layout(location: DeltaLocation) -> bool:
    """True when `{url}/bars` holds files of the old Hive-Parquet layout."""
    fs, root = location.fsspec()
    with location.guard("checking the lake layout"):
        hits = fs.glob(
            f"{root.rstrip('/')}/{DATASET_DIR}/interval=*/symbol=*/year=*/part-*.parquet"
        )
    return any(part_index(p) is not None for p in hits)


def _read_old(location: DeltaLocation, key: PartitionKey, paths: list[str]) -> pd.DataFrame:
    fs, _ = location.fsspec()
    tables = []
    with location.guard(f"reading {key.relpath}"):
        for path in paths:
            with fs.open(path, "rb") as fh:
                tables.append(pq.read_table(fh))
    table = pa.concat_tables(tables, promote_options="default")
    df = table.to_pandas()
    df = df.drop(columns=[c for c in ("interval", "symbol", "year") if c in df.columns])
    df.insert(0, "interval", key.interval)
    df.insert(0, "symbol", key.symbol)
    return df


def migrate_lake(
    source_url: str,
    storage_options: dict | None = None,
    target_url: str | None = None,
    target_options: dict | None = None,
) -> MigrationReport:
    """Convert the old lake at `source_url` into Delta tables at `target_url` (default: in place)."""
    from marketpipe.storage.delta_lake import DeltaLake

    src = DeltaLocation(source_url, storage_options)
    in_place = target_url is None or DeltaLocation(target_url, target_options).url == src.url
    lake = DeltaLake(
        src.url if in_place else target_url, storage_options if in_place else target_options
    )
    lake._layout_checked = True  # the marker is ours
    report = MigrationReport(src.display, lake.location.display)
    fs, root = src.fsspec()
    root = root.rstrip("/")
    marker = f"{root}/{MIGRATING_MARKER}"
    if in_place:
        with src.guard("marking the migration"):
            fs.pipe_file(marker, b"marketpipe lake migrate in progress\n")
    for key, paths in _old_partitions(src, DATASET_DIR).items():
        old = _read_old(src, key, paths)
        old = conform_bars(old).drop_duplicates(["symbol", "interval", "ts"], keep="last")
        lake.write_bars(old)
        if not lake.verify_partition(key.interval, key.symbol, key.year, old["ts"]):
            raise StoreError(f"migrating {key.relpath}: the Delta table lacks some of its rows")
        report.partitions.append(
            {"dataset": DATASET_DIR, "partition": key.relpath, "rows": len(old)}
        )
        if in_place:
            with src.guard(f"removing old files of {key.relpath}"):
                fs.rm(paths)
    for key, paths in _old_partitions(src, FEATURES_DIR).items():
        old = _read_old(src, key, paths)
        written_before = len(lake.read_features([key.symbol], key.interval))
        lake.write_features(old)
        stored = lake.read_features([key.symbol], key.interval)
        if len(stored) < max(written_before, old["ts"].nunique()):
            raise StoreError(f"migrating features {key.relpath}: rows missing after the write")
        report.partitions.append(
            {"dataset": FEATURES_DIR, "partition": key.relpath, "rows": len(old)}
        )
        if in_place:
            with src.guard(f"removing old files of {key.relpath}"):
                fs.rm(paths)
    if in_place:
        with src.guard("removing old staging folders"):
            for rel in (SUPERSEDED_DIR, TMP_DIR):
                if fs.exists(f"{root}/{rel}"):
                    fs.rm(f"{root}/{rel}", recursive=True)
            fs.rm(marker)
    return report
