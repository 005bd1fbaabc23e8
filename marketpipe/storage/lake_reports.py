"""Result records of `DeltaLake` operations (small, printable, no frames)."""

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
class WriteReport:
    """What `write_bars` did. `rows_written` = rows added + rows changed."""

    rows_received: int = 0
    rows_added: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    partitions: list[PartitionKey] = field(default_factory=list)  # rewritten
    partitions_unchanged: list[PartitionKey] = field(default_factory=list)
    conflicts_retried: int = 0  # commits lost to a concurrent writer and re-run
    version: int | None = None  # the table version the write was based on
    write_path: str = "noop"  # "insert" (no stored key overlapped) | "merge" | "noop"

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
        self.conflicts_retried += other.conflicts_retried

    def summary(self) -> dict:
        """JSON-safe counts for flow results and artifacts (no frames, no full file lists)."""
        return {
            "rows_received": self.rows_received,
            "rows_written": self.rows_written,
            "rows_added": self.rows_added,
            "rows_changed": self.rows_changed,
            "rows_unchanged": self.rows_unchanged,
            "partitions_written": len(self.partitions),
            "partitions_unchanged": len(self.partitions_unchanged),
            "conflicts_retried": self.conflicts_retried,
            "write_path": self.write_path,
        }


@dataclass
class CompactReport:
    """What `compact` did (file counts over every partition it looked at)."""

    partitions_compacted: list[PartitionKey] = field(default_factory=list)
    partitions_skipped: int = 0
    files_before: int = 0
    files_after: int = 0
    files_removed: int = 0
    rows: int = 0
    conflicts_retried: int = 0

    def summary(self) -> dict:
        return {
            "partitions_compacted": len(self.partitions_compacted),
            "partitions_skipped": self.partitions_skipped,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "rows": self.rows,
            "conflicts_retried": self.conflicts_retried,
        }
