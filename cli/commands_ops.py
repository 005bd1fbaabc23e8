"""`marketpipe status`: last runs, freshness, rows per tier, quarantine — exit 1 when stale."""

from __future__ import annotations

import json

import typer

from cli.help_format import examples
from cli.main import app


@app.command(
    epilog=examples("marketpipe status", "marketpipe status --json --symbols AAPL,MSFT || alert")
)
def status(
    as_json: bool = typer.Option(False, "--json", help="Print the status as one JSON document."),
    symbols: str = typer.Option(
        None,
        metavar="SYMBOLS",
        help="Comma-separated symbols to check (default: every symbol with daily bars).",
    ),
):
    """Pipeline status; exit code 1 when any symbol's daily bars are older than the last closed
    XNYS session (usable from cron), 0 when everything is fresh."""
    from marketpipe.health import health_for_status
    from marketpipe.settings import load_settings
    from marketpipe.status import compute_status, format_status
    from marketpipe.storage import open_stores
    from marketpipe.symbols import parse_symbols

    settings = load_settings()
    wanted = parse_symbols(symbols) if symbols else None
    stores = open_stores(settings)
    try:
        report = compute_status(stores, symbols=wanted)
        report["health"] = health_for_status(stores, settings)
    finally:
        stores.close()
    report["hot"] = settings.hot_url_masked
    report["cold"] = settings.cold_url_resolved
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        typer.echo(format_status(report) + "\n" + report["health"]["line"])
        typer.echo(f"hot store: {report['hot']}\ncold lake: {report['cold']}")
    if report["stale"]:
        raise SystemExit(1)  # cli.main returns SystemExit codes (click swallows typer.Exit)
