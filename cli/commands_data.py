"""Data commands: `read`, `sql`, `validate`."""

from __future__ import annotations

import sys

import typer

from cli.help_format import examples
from cli.main import app

TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@app.command(
    epilog=examples(
        "marketpipe read AAPL --interval 1d > aapl.csv",
        "marketpipe read AAPL,MSFT --start \"$(date -d '30 days ago' +%F)\" --adjusted",
        "marketpipe read SPY --start 2024-03-01 --end 2024-03-01 --interval 5m",
    )
)
def read(
    symbols: str = typer.Argument(..., metavar="SYMBOLS", help="Symbol(s), comma-separated."),
    start: str = typer.Option(None, metavar="DATE", help="First day YYYY-MM-DD (inclusive)."),
    end: str = typer.Option(None, metavar="DATE", help="Last day YYYY-MM-DD (inclusive)."),
    interval: str = typer.Option("1d", metavar="INTERVAL", help="1s | 1m | 5m | 15m | 1h | 1d."),
    adjusted: bool = typer.Option(False, "--adjusted", help="Split/dividend back-adjusted prices."),
    as_of: str = typer.Option(
        None,
        "--as-of",
        metavar="INSTANT",
        help="Data as known at this instant (ISO 8601, UTC if no offset; needs the Delta lake).",
    ),
):
    """Print bars from hot ∪ cold (hot wins on overlap) as CSV with the canonical header.

    Days are XNYS session days; `ts` is the UTC bar start in ISO 8601. Stderr says how many rows
    matched and, when none did, what is stored for the symbol.
    """
    import marketpipe.api as api
    from cli.options import parse_date
    from marketpipe.symbols import parse_symbols

    syms = parse_symbols(symbols)
    lo, hi = parse_date(start, "start"), parse_date(end, "end")
    from marketpipe.preflight import check_date_order, check_interval

    check_date_order(lo, hi)
    check_interval(interval, stored=True)
    frame = api.read(syms, lo, hi, interval=interval, adjusted=adjusted, as_of=as_of or None)
    frame.to_csv(sys.stdout, index=False, date_format=TS_FORMAT)
    span = f"{lo or 'first'}..{hi or 'last'}"
    typer.echo(f"{len(frame)} row(s) matched ({', '.join(syms)} {interval} {span})", err=True)
    if frame.empty:
        for line in stored_summary(syms):
            typer.echo(line, err=True)


def stored_summary(symbols: list[str]) -> list[str]:
    """One line per symbol: the date range stored per interval (hot ∪ cold)."""
    from marketpipe.settings import load_settings
    from marketpipe.sql_views import stored_ranges
    from marketpipe.storage import open_stores

    stores = open_stores(load_settings())
    try:
        lines = []
        for sym in symbols:
            ranges = stored_ranges(stores, sym)
            if not ranges:
                lines.append(f"  stored for {sym}: nothing (any interval)")
                continue
            parts = [f"{iv} {lo:%Y-%m-%d}..{hi:%Y-%m-%d} ({n} rows)" for iv, lo, hi, n in ranges]
            lines.append(f"  stored for {sym}: " + "; ".join(parts))
        return lines
    finally:
        stores.close()


@app.command(
    epilog=examples(
        'marketpipe sql "SELECT symbol, count(*) AS n, max(ts) FROM bars GROUP BY symbol"',
        "marketpipe sql \"SELECT * FROM bars_adjusted WHERE symbol = 'AAPL' ORDER BY ts\" > aapl.csv",
    )
)
def sql(
    query: str = typer.Argument(
        ...,
        metavar="QUERY",
        help="DuckDB SQL over bars, bars_adjusted, features, corporate_actions, quarantine.",
    ),
):
    """Run SQL over one view of everything stored (hot ∪ cold, hot wins) and print CSV."""
    import marketpipe.api as api

    frame = api.sql(query)
    frame.to_csv(sys.stdout, index=False, date_format=TS_FORMAT)


@app.command(
    epilog=examples(
        "marketpipe validate bars.csv",
        "marketpipe validate .marketpipe/lake/bars/interval=1d/symbol=AAPL/year=2024/part-0.parquet",
        "marketpipe validate --config marketpipe.yaml",
    )
)
def validate(
    path: str = typer.Argument(
        None, metavar="FILE", help="CSV (or .csv.gz) or Parquet file of bars, lake files too."
    ),
    config: str = typer.Option(
        None, metavar="FILE", help="Check a jobs file (marketpipe.yaml) instead of bars."
    ),
    limit: int = typer.Option(50, metavar="N", help="List at most N failing rows."),
):
    """Check a bars file against the Bars contract: list failing rows (row number, key, reason
    codes) and a summary line; exit 1 when any row fails, 2 when the file is not bars at all."""
    from marketpipe.errors import ConfigError

    if config:
        from marketpipe.jobs import validate_config_file

        problems = validate_config_file(config)
        for line in problems:
            typer.echo(line)
        typer.echo(f"{config}: {len(problems)} problem(s)" if problems else f"{config}: ok")
        if problems:
            raise typer.Exit(1)
        return
    if not path:
        raise ConfigError("validate needs FILE (or --config FILE)")
    _validate_bars_file(path, limit)


def _validate_bars_file(path: str, limit: int) -> None:
    from cli.bars_file import ROW_COLUMN, read_bars_file
    from cli.tables import print_table
    from marketpipe.contract import validate_bars
    from marketpipe.errors import ContractError

    frame = read_bars_file(path)
    try:
        result = validate_bars(frame)
    except ContractError as exc:
        raise ContractError(f"{path}: {exc}") from None
    bad = result.quarantine
    if not bad.empty:
        rows = bad["payload"].str.extract(rf'"{ROW_COLUMN}":(\d+)')[0]
        shown = bad.head(limit)
        print_table(
            f"failing rows of {path}",
            ["row", "symbol", "interval", "ts", "reason"],
            [
                [rows.iloc[i], r.symbol, r.interval, _ts(r.ts), r.reason]
                for i, r in enumerate(shown.itertuples(index=False))
            ],
        )
        if len(bad) > limit:
            typer.echo(f"  … and {len(bad) - limit} more (--limit N)")
    counts = bad["reason"].str.split(",").explode().value_counts() if len(bad) else []
    why = ", ".join(f"{reason} {n}" for reason, n in counts.items()) if len(bad) else ""
    typer.echo(
        f"{path}: {len(frame)} rows, {len(result.valid)} valid, {len(bad)} failing"
        + (f" ({why})" if why else "")
    )
    if len(bad):
        raise typer.Exit(1)


def _ts(value) -> str:
    import pandas as pd

    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime(TS_FORMAT)
