"""History commands: `backfill` (chunked, resumable) and `gaps` (missing bars as ranges)."""

from __future__ import annotations

import threading
from datetime import timedelta

import typer

from cli.help_format import examples
from cli.main import app
from cli.options import parse_date, parse_interval


@app.command(
    epilog=examples(
        "marketpipe backfill --symbols AAPL,MSFT --start 2022-01-03 --end 2023-12-29 --plan-only",
        "marketpipe backfill --source synthetic --symbols AAPL --start 2024-01-02 --end 2024-06-28",
        "marketpipe backfill --symbols AAPL --start 2024-01-02 --end 2024-06-28 --repair",
    )
)
def backfill(
    symbols: str = typer.Option(..., metavar="SYMBOLS", help="Comma-separated symbols."),
    start: str = typer.Option(..., metavar="DATE", help="First day YYYY-MM-DD."),
    end: str = typer.Option(..., metavar="DATE", help="Last day YYYY-MM-DD (inclusive)."),
    interval: str = typer.Option("1d", metavar="INTERVAL", help="1m | 5m | 15m | 1h | 1d."),
    source: str = typer.Option(
        "polygon", metavar="SOURCE", help="synthetic | replay | yahoo | polygon (or a,b)."
    ),
    repair: bool = typer.Option(False, "--repair", help="Fetch only the ranges `gaps` reports."),
    plan_only: bool = typer.Option(
        False, "--plan-only", help="Print requests and time; fetch nothing."
    ),
    replay_path: str = typer.Option(
        None, "--replay-path", metavar="FILE", help="File for --source replay."
    ),
):
    """Backfill history in provider-sized chunks; a re-run continues with unfinished chunks only.

    Prints the plan (chunks, requests, time) first, then a progress bar while it runs.
    """
    from marketpipe.api import check_backfill, describe_backfill
    from marketpipe.settings import load_settings

    settings = load_settings()
    p = check_backfill(settings, symbols.split(","), start, end, interval, source, replay_path)
    plan = describe_backfill(settings, p, repair)
    typer.echo(plan.describe())
    if plan_only:
        return
    from cli.main import quiet_prefect_tracebacks
    from cli.reports import print_backfill
    from flows.historical import historical

    quiet_prefect_tracebacks()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_progress, args=(settings, plan, stop), daemon=True)
    watcher.start()
    try:
        summary = historical(**p, repair=repair, replay_path=replay_path)
    finally:
        stop.set()
        watcher.join(timeout=5)
    print_backfill(summary)


def _watch_progress(settings, plan, stop: threading.Event) -> None:
    """Draw a progress bar (stderr) from the chunk ledger while the flow runs in this process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from cli.tables import console
    from marketpipe.storage import open_stores

    total = len(plan.chunks)
    stores = open_stores(settings)
    try:
        columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console(stderr=True)) as bar:
            task = bar.add_task("chunks", total=total, completed=len(plan.done))
            while not stop.wait(0.5):
                bar.update(task, completed=len(stores.hot.done_chunks(plan.job_key)))
            bar.update(task, completed=len(stores.hot.done_chunks(plan.job_key)))
    finally:
        stores.close()


@app.command(
    epilog=examples("marketpipe gaps --symbols AAPL,MSFT --start 2024-01-02 --end 2024-03-28")
)
def gaps(
    symbols: str = typer.Option(..., metavar="SYMBOLS", help="Comma-separated symbols."),
    start: str = typer.Option(..., metavar="DATE", help="First day YYYY-MM-DD."),
    end: str = typer.Option(..., metavar="DATE", help="Last day YYYY-MM-DD (inclusive)."),
    interval: str = typer.Option("1d", metavar="INTERVAL", help="1m | 5m | 15m | 1h | 1d."),
):
    """List missing bars per symbol as ranges across hot ∪ cold; exit 1 when anything is missing."""
    import pandas as pd

    from marketpipe.gaps import find_gaps
    from marketpipe.preflight import check_date_order, require_existing_data
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from marketpipe.storage.read import read_bars
    from marketpipe.symbols import parse_symbols

    settings = load_settings()
    syms = parse_symbols(symbols)
    lo, hi = parse_date(start, "start"), parse_date(end, "end")
    check_date_order(lo, hi)
    ivl = parse_interval(interval)
    require_existing_data(settings)
    stores = open_stores(settings)
    try:
        present = read_bars(stores, syms, lo, hi + timedelta(days=1), ivl)
    finally:
        stores.close()
    found = find_gaps(present, syms, lo, hi, ivl, now=pd.Timestamp.now(tz="UTC"))
    missing = 0
    for sym in syms:  # a listing (one line per range), stable for scripts
        ranges = found.get(sym, [])
        n = sum(g.count for g in ranges)
        missing += n
        typer.echo(f"{sym}: {n} missing in {len(ranges)} range(s)")
        for g in ranges:
            typer.echo(f"  {g.first.isoformat()} .. {g.last.isoformat()}  ({g.count} bars)")
    if missing:
        raise typer.Exit(1)
