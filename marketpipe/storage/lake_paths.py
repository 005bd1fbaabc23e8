"""Cold-lake layout: partition keys, Hive paths, file schema. Pure functions, no I/O.

Layout under the lake root `url`::

    {url}/bars/interval={interval}/symbol={uri-quoted symbol}/year={YYYY}/part-{n}.parquet
    {url}/_superseded/{UTC stamp}/bars/interval=…/symbol=…/year=…/part-{n}.parquet
    {url}/_tmp/{token}/…                      (staging; never inside `bars/`)

The dataset root is `{url}/bars`: point readers there, not at `{url}` (DuckDB's `**/*.parquet`
glob does not skip `_`-prefixed folders, so superseded copies would be read twice).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

import pyarrow as pa

from marketpipe.bars import STORED_INTERVALS
from marketpipe.errors import ConfigError
from marketpipe.symbols import validate_symbol

DATASET_DIR = "bars"
SUPERSEDED_DIR = "_superseded"
TMP_DIR = "_tmp"
PART_RE = re.compile(r"^part-(\d+)\.parquet$")

# The canonical bars as an Arrow schema (what the lake takes in and hands out).
BARS_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("interval", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("vwap", pa.float64()),
        ("trades", pa.int64()),
        ("source", pa.string()),
    ]
)
# Files hold everything but the partition columns: `interval` and `symbol` live only in the
# path (plain Hive style). Had they been in the files too, `pq.read_table(root)` and
# `pd.read_parquet(root)` fail ("Field interval has incompatible types: string vs dictionary")
# because they infer dictionary-typed partition fields. pyarrow (segment_encoding="uri") and
# DuckDB both percent-decode the symbol segment.
PARTITION_COLUMNS = ("interval", "symbol")
FILE_SCHEMA = pa.schema([f for f in BARS_SCHEMA if f.name not in PARTITION_COLUMNS])
PARTITION_SCHEMA = pa.schema(
    [("interval", pa.string()), ("symbol", pa.string()), ("year", pa.int32())]
)
DATASET_SCHEMA = pa.schema(list(FILE_SCHEMA) + list(PARTITION_SCHEMA))


def validate_interval(interval: str) -> str:
    """Return `interval` if it is a known bar interval, else raise ConfigError."""
    if interval not in STORED_INTERVALS:
        raise ConfigError(
            f"invalid interval {str(interval)[:20]!r}: use one of {', '.join(STORED_INTERVALS)}"
        )
    return interval


def encode_symbol(symbol: str) -> str:
    """Validated symbol, percent-encoded for one path segment (`^GSPC` -> `%5EGSPC`, `/` -> `%2F`)."""
    return quote(validate_symbol(symbol), safe="")


def decode_symbol(segment: str) -> str:
    """Inverse of `encode_symbol`; the result is validated again (never trust a listed path)."""
    return validate_symbol(unquote(segment))


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One Hive partition: all bars of one interval, symbol and calendar year (UTC)."""

    interval: str
    symbol: str
    year: int

    def __post_init__(self) -> None:
        validate_interval(self.interval)
        validate_symbol(self.symbol)
        if not 1900 <= int(self.year) <= 2999:
            raise ConfigError(f"invalid partition year {self.year!r}")

    @property
    def relpath(self) -> str:
        """Path of the partition folder relative to the lake root."""
        return (
            f"{DATASET_DIR}/interval={self.interval}/symbol={encode_symbol(self.symbol)}"
            f"/year={int(self.year):04d}"
        )


def part_name(n: int) -> str:
    """Deterministic file name of the n-th file (0-based) in a partition."""
    return f"part-{n}.parquet"


def part_index(name: str) -> int | None:
    """`part-3.parquet` -> 3; anything else -> None."""
    m = PART_RE.match(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def parse_partition_dir(relpath: str) -> PartitionKey | None:
    """`bars/interval=1m/symbol=%5EGSPC/year=2024` -> PartitionKey; None if it is not one."""
    parts = relpath.strip("/").split("/")
    if len(parts) != 4 or parts[0] != DATASET_DIR:
        return None
    try:
        fields = dict(p.split("=", 1) for p in parts[1:])
        return PartitionKey(
            fields["interval"], decode_symbol(fields["symbol"]), int(fields["year"])
        )
    except (KeyError, ValueError, ConfigError):
        return None


def utc_stamp(now: datetime | None = None) -> str:
    """Sortable UTC timestamp for a superseded folder, e.g. `20261121T201530.123456Z`."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.strftime("%Y%m%dT%H%M%S.%fZ")
