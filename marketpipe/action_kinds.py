"""Corporate-action kinds (`corporate_actions.kind`), shared by adapters, the actions contract and
back-adjustment.

- `split`: value = shares after / shares before; adjusts prices and volume.
- `dividend` (regular cash; Polygon `CD`, Yahoo's dividends) and `special_dividend` (Polygon
  `SC`): value = cash per share; adjust prices.
- `dividend_<type>` (any other vendor dividend type, lower case, e.g. `dividend_lt` / `dividend_st`
  for Polygon's long/short-term capital-gain distributions): cash per share, stored, never applied.
"""

from __future__ import annotations

ADJUSTING_KINDS: tuple[str, ...] = ("split", "dividend", "special_dividend")
CASH_KINDS: tuple[str, ...] = ("dividend", "special_dividend")
STORED_ONLY_PREFIX = "dividend_"


def is_stored_only(kind: object) -> bool:
    """A dividend type that is stored but does not adjust prices (`dividend_lt`, ...)."""
    return (
        isinstance(kind, str)
        and kind.startswith(STORED_ONLY_PREFIX)
        and len(kind) > len(STORED_ONLY_PREFIX)
    )


def is_known_kind(kind: object) -> bool:
    return kind in ADJUSTING_KINDS or is_stored_only(kind)


def is_cash_kind(kind: object) -> bool:
    """Every kind whose value is cash per share (all but `split`)."""
    return kind in CASH_KINDS or is_stored_only(kind)
