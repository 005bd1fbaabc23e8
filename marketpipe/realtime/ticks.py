"""Tick records and source events shared by sources, queue, aggregator and session.

A tick is `symbol, ts (UTC event time), price, size, source` (docs/ARCHITECTURE.md). For speed on
the hot path `ts` is held as integer nanoseconds since the Unix epoch (UTC). The instant a tick
entered the process is stamped per batch by the queue (tick -> commit latency).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import pandas as pd

TICK_COLUMNS: tuple[str, ...] = ("symbol", "ts", "price", "size", "source")


class Tick(NamedTuple):
    """One trade. A named tuple: cheap to create and to unpack on the hot path."""

    symbol: str
    ts: int  # event time, ns since epoch, UTC
    price: float
    size: float
    source: str

    @property
    def timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(self.ts, unit="ns", tz="UTC")

    def to_json(self) -> str:
        return json.dumps(
            {
                "symbol": self.symbol,
                "ts": self.timestamp.isoformat(),
                "price": self.price,
                "size": self.size,
                "source": self.source,
            }
        )


def to_ns(value: datetime | pd.Timestamp | int) -> int:
    """UTC nanoseconds since the epoch; naive datetimes are taken as UTC."""
    if isinstance(value, int):
        return value
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


def from_ns(ns: int) -> datetime:
    return pd.Timestamp(ns - ns % 1000, unit="ns", tz="UTC").to_pydatetime()


def now_ns() -> int:
    return int(datetime.now(UTC).timestamp() * 1e9)


def ticks_frame(ticks: list[Tick]) -> pd.DataFrame:
    """Ticks as the architecture's tick frame (`ts` as datetime64[us, UTC])."""
    return pd.DataFrame(
        {
            "symbol": pd.Series([t.symbol for t in ticks], dtype="str"),
            "ts": pd.to_datetime([t.ts for t in ticks], unit="ns", utc=True).astype(
                "datetime64[us, UTC]"
            ),
            "price": pd.Series([t.price for t in ticks], dtype="float64"),
            "size": pd.Series([t.size for t in ticks], dtype="float64"),
            "source": pd.Series([t.source for t in ticks], dtype="str"),
        }
    )


@dataclass
class SourceEnd:
    """Why `TickSource.run` returned: `disconnected` (never silent), `exhausted` or `stopped`."""

    kind: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_tick_ts: int | None = None  # ns; event time of the newest tick received so far
    error: str | None = None
