"""Result records of `ParquetLake` operations (small, printable, no frames)."""

from __future__ import annotations

from dataclasses import dataclass, field

from marketpipe.storage.lake_paths import PartitionKey


@dataclass
class PartitionInfo:
    interval: str
    symbol: str
    year: int
    files: int
    rows: int
    bytes: int = 0

    @property
    def key(self) -> PartitionKey:
        return PartitionKey(self.interval, self.symbol, self.year)


@dataclass
class Restatement:
    partition: PartitionKey
    changed_rows: int
    superseded_path: str  # relative to the lake root


@dataclass
class WriteReport:
    """What `write_bars` did. `rows_written` = rows added + rows changed."""

    rows_received: int = 0
    rows_added: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    partitions: list[PartitionKey] = field(default_factory=list)  # rewritten
    partitions_unchanged: list[PartitionKey] = field(default_factory=list)
    restated: list[Restatement] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # written, relative to the lake root

    @property
    def rows_written(self) -> int:
        return self.rows_added + self.rows_changed

    def __int__(self) -> int:
        return self.rows_written

    def merge(self, other: WriteReport) -> None:
        """Add another (per-partition) report's counts and lists to this one."""
        self.rows_added += other.rows_added
        self.rows_changed += other.rows_changed
        self.rows_unchanged += other.rows_unchanged
        self.partitions += other.partitions
        self.partitions_unchanged += other.partitions_unchanged
        self.restated += other.restated
        self.files += other.files

    def summary(self) -> dict:
        """JSON-safe counts for flow results and artifacts (no frames, no full file lists)."""
        return {
            "rows_received": self.rows_received,
            "rows_written": self.rows_written,
            "rows_added": self.rows_added,
            "rows_changed": self.rows_changed,
            "rows_unchanged": self.rows_unchanged,
            "partitions_rewritten": len(self.partitions),
            "partitions_unchanged": len(self.partitions_unchanged),
            "files_written": len(self.files),
            "restated": [
                {
                    "partition": r.partition.relpath,
                    "changed_rows": r.changed_rows,
                    "superseded": r.superseded_path,
                }
                for r in self.restated
            ],
        }


@dataclass
class CompactReport:
    """What `compact` did (file counts over every partition it looked at)."""

    partitions_compacted: list[PartitionKey] = field(default_factory=list)
    partitions_skipped: int = 0
    files_before: int = 0
    files_after: int = 0
    rows: int = 0

    def summary(self) -> dict:
        return {
            "partitions_compacted": len(self.partitions_compacted),
            "partitions_skipped": self.partitions_skipped,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "rows": self.rows,
        }
