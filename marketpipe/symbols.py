"""Symbol validation: the one gate before a symbol reaches SQL, a file path or an S3 key."""

from __future__ import annotations

import re

from marketpipe.errors import ConfigError

MAX_SYMBOL_LEN = 32
# letters, digits and . - ^ = / (Yahoo indices ^GSPC, FX EURUSD=X, share classes BRK.B / BRK-B, pairs BTC/USD)
SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.\-^=/]{0,31}$"
_SYMBOL_RE = re.compile(SYMBOL_PATTERN)


def is_valid_symbol(symbol: object) -> bool:
    if not isinstance(symbol, str) or not symbol.isascii():
        return False
    return bool(_SYMBOL_RE.match(symbol)) and ".." not in symbol and "//" not in symbol


def validate_symbol(symbol: str) -> str:
    """Return the symbol unchanged, or raise ConfigError with one clear line."""
    if not is_valid_symbol(symbol):
        shown = symbol[:40] + ("…" if isinstance(symbol, str) and len(symbol) > 40 else "")
        raise ConfigError(
            f"invalid symbol {shown!r}: use ≤{MAX_SYMBOL_LEN} ASCII letters, digits and . - ^ = /"
        )
    return symbol


def parse_symbols(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """Parse 'AAPL, msft' or a list into validated, upper-cased, de-duplicated symbols (order kept)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for raw in items:
        sym = raw.strip()
        if not sym:
            continue
        sym = validate_symbol(sym).upper()
        if sym not in out:
            out.append(sym)
    if not out:
        raise ConfigError("no symbols given")
    return out
