"""Data commands: `read`, `validate`, `status`."""

from __future__ import annotations

import sys

import typer

from cli.main import app
from cli.options import parse_date, parse_interval


@app.command()
def read(
    symbol: str = typer.Argument(..., help="Symbol to read."),
    start: str = typer.Option(None, help="First date YYYY-MM-DD (inclusive)."),
    end: str = typer.Option(None, help="Last date YYYY-MM-DD (inclusive)."),
    interval: str = typer.Option("1d", help="1m | 5m | 15m | 1h | 1d."),
    adjusted: bool = typer.Option(False, "--adjusted", help="Split/dividend back-adjusted prices."),
    as_of: str = typer.Option(
        None, "--as-of", help="Data as known at this instant (ISO 8601, UTC if no offset)."
    ),
):
    """Print bars from hot ∪ cold (the newer copy of a key wins) as CSV, canonical header."""
    from datetime import timedelta

    from marketpipe.processing.adjusted_read import read_bars
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from marketpipe.symbols import validate_symbol

    settings = load_settings()
    sym = validate_symbol(symbol).upper()
    lo, hi = parse_date(start, "start"), parse_date(end, "end")
    known_at = _parse_instant(as_of, "--as-of") if as_of else None
    stores = open_stores(settings)
    try:
        frame = read_bars(
            stores,
            [sym],
            lo,
            hi + timedelta(days=1) if hi else None,
            parse_interval(interval),
            adjusted,
            as_of=known_at,
        )
    finally:
        stores.close()
    frame.to_csv(sys.stdout, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")


def _parse_instant(text: str, name: str):
    import pandas as pd

    from marketpipe.errors import ConfigError

    try:
        ts = pd.Timestamp(text)
    except (ValueError, OverflowError):
        raise ConfigError(f"{name}: {text[:40]!r} is not an ISO 8601 instant") from None
    if pd.isna(ts):
        raise ConfigError(f"{name}: {text[:40]!r} is not an ISO 8601 instant")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@app.command()
def validate(
    path: str = typer.Argument(..., help="CSV or Parquet file of bars in canonical columns."),
):
    """Check a file against the Bars contract; print valid/quarantined counts per reason."""
    import pandas as pd

    from marketpipe.contract import validate_bars
    from marketpipe.errors import ConfigError

    try:
        frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None
    result = validate_bars(frame)
    typer.echo(
        f"{len(frame)} rows: {len(result.valid)} valid, {len(result.quarantine)} quarantined"
    )
    if not result.quarantine.empty:
        for reason, n in result.quarantine["reason"].value_counts().items():
            typer.echo(f"  {reason}: {n}")
        raise typer.Exit(1)
