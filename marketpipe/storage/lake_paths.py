"""Lake names shared by the Delta store and the migration: the canonical bars schema, partition
keys, interval and symbol checks. Pure functions, no I/O.

The first version's Hive-Parquet layout (what `marketpipe lake migrate` converts)::

    {url}/bars/interval={interval}/symbol={uri-quoted symbol}/year={YYYY}/part-{n}.parquet
    {url}/_superseded/{UTC stamp}/bars/…      (restated copies; removed by the migration)
    {url}/_tmp/{token}/…                      (staging; removed by the migration)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


def part_index(name: str) -> int | None:
    """`part-3.parquet` -> 3; anything else -> None."""
    m = PART_RE.match(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None
