"""Parsing of command-line values into typed values, with one-line errors."""

from __future__ import annotations

from datetime import date

from marketpipe.bars import STORED_INTERVALS
from marketpipe.dates import parse_day
from marketpipe.errors import ConfigError


def parse_date(value: str | None, name: str) -> date | None:
    """`--start/--end` text -> date (see `marketpipe.dates.parse_day`: bounded, one-line error)."""
    return parse_day(value, name)


def parse_interval(value: str) -> str:
    if value not in STORED_INTERVALS:  # providers refuse sub-minute fetches with their own line
        raise ConfigError(f"--interval: {value!r} is not one of {', '.join(STORED_INTERVALS)}")
    return value


def parse_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None
