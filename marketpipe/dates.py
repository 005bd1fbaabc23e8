"""Parsing of user-given calendar days (command-line `--start/--end`, API bounds), one line on error.

Days are limited to `MIN_DAY`..`MAX_DAY`: far enough for any market history and any schedule,
and far inside what pandas timestamps (1677..2262) and `date + timedelta` can represent, so no
later arithmetic (end + 1 day, UTC midnights, session lookups) can overflow.
"""

from __future__ import annotations

from datetime import date

from marketpipe.errors import ConfigError

MIN_DAY = date(1900, 1, 1)
MAX_DAY = date(2200, 12, 31)


def parse_day(value: str | date | None, name: str) -> date | None:
    """'2024-01-31' -> date(2024, 1, 31); None/'' -> None. ConfigError('--start: …') naming the
    input for text that is not a date or a day outside MIN_DAY..MAX_DAY."""
    if value is None or value == "":
        return None
    label = name if name.startswith("-") or not name.isidentifier() else f"--{name}"
    if isinstance(value, date):
        day = value
    else:
        try:
            day = date.fromisoformat(str(value).strip())
        except (ValueError, OverflowError):
            raise ConfigError(f"{label}: {value!r} is not a date like 2024-01-31") from None
    if not MIN_DAY <= day <= MAX_DAY:
        raise ConfigError(
            f"{label}: {day.isoformat()} is outside the supported days "
            f"{MIN_DAY.isoformat()} .. {MAX_DAY.isoformat()}"
        )
    return day
