"""History commands: `backfill` (chunked, resumable) and `gaps` (missing bars as ranges)."""

from __future__ import annotations

import threading
from datetime import timedelta

import typer

from cli.main import app
from cli.options import parse_date, parse_interval


@app.command()
def backfill(
    symbols: str = typer.Option(..., help="Comma-separated symbols."),
    start: str = typer.Option(..., help="First date YYYY-MM-DD."),
    end: str = typer.Option(..., help="Last date YYYY-MM-DD."),
    interval: str = typer.Option("1d", help="1m | 5m | 15m | 1h | 1d."),
    source: str = typer.Option("polygon", help="synthetic | replay | yahoo | polygon."),
    repair: bool = typer.Option(False, "--repair", help="Fetch only the ranges `gaps` reports."),
    plan_only: bool = typer.Option(
        False, "--plan-only", help="Print requests and time; fetch nothing."
    ),
    replay_path: str = typer.Option(None, "--replay-path", help="File for --source replay."),
):
    """Backfill history in provider-sized chunks; a re-run continues with unfinished chunks only."""
    import pandas as pd

    from marketpipe.historical import build_plan
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from marketpipe.symbols import parse_symbols

    settings = load_settings()
    syms = parse_symbols(symbols)
    lo, hi = parse_date(start, "start"), parse_date(end, "end")
    ivl = parse_interval(interval)
    stores = open_stores(settings)
    try:
        plan = build_plan(
            stores, settings, syms, lo, hi, ivl, source, repair, pd.Timestamp.now(tz="UTC")
        )
    finally:
        stores.close()
    typer.echo(plan.describe())
    if plan_only:
        return
    from flows.historical import historical

    stop = threading.Event()
    watcher = threading.Thread(target=_watch_progress, args=(settings, plan, stop), daemon=True)
    watcher.start()
    try:
        summary = historical(
            symbols=syms,
            start=lo,
            end=hi,
            interval=ivl,
            source=source,
            repair=repair,
            replay_path=replay_path,
        )
    finally:
        stop.set()
        watcher.join(timeout=5)
    t = summary["totals"]
    typer.echo(
        f"done: {t['chunks_run']} chunks run ({summary['chunks_skipped']} skipped as finished), "
        f"{t['requests']} requests, {t['hot']} hot, {t['cold']} cold, {t['quarantined']} quarantined"
    )
    if summary.get("stages"):
        from marketpipe.stage_timer import format_stages

        typer.echo(f"  {format_stages(summary)}")
    for row in summary["completeness"]:
        typer.echo(
            f"  {row['symbol']:<8} expected {row['expected']:>7}  present {row['present']:>7}  "
            f"missing {row['missing']:>6}  quarantined {row['quarantined']:>5}"
        )


def _watch_progress(settings, plan, stop: threading.Event) -> None:
    """Draw a progress bar from the chunk ledger while the flow runs in this process."""
    from marketpipe.storage import open_stores

    total = len(plan.chunks)
    stores = open_stores(settings)
    try:
        with typer.progressbar(length=total, label="chunks", show_pos=True) as bar:
            shown = len(plan.done)
            bar.update(shown)
            while not stop.wait(0.5):
                done = len(stores.hot.done_chunks(plan.job_key))
                if done > shown:
                    bar.update(done - shown)
                    shown = done
            done = len(stores.hot.done_chunks(plan.job_key))
            bar.update(max(0, done - shown))
    finally:
        stores.close()


@app.command()
def gaps(
    symbols: str = typer.Option(..., help="Comma-separated symbols."),
    start: str = typer.Option(..., help="First date YYYY-MM-DD."),
    end: str = typer.Option(..., help="Last date YYYY-MM-DD."),
    interval: str = typer.Option("1d", help="1m | 5m | 15m | 1h | 1d."),
):
    """List missing bars per symbol as ranges across hot ∪ cold; exit 1 when anything is missing."""
    import pandas as pd

    from marketpipe.gaps import find_gaps
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from marketpipe.storage.read import read_bars
    from marketpipe.symbols import parse_symbols

    settings = load_settings()
    syms = parse_symbols(symbols)
    lo, hi = parse_date(start, "start"), parse_date(end, "end")
    ivl = parse_interval(interval)
    stores = open_stores(settings)
    try:
        present = read_bars(stores, syms, lo, hi + timedelta(days=1), ivl)
    finally:
        stores.close()
    found = find_gaps(present, syms, lo, hi, ivl, now=pd.Timestamp.now(tz="UTC"))
    missing = 0
    for sym in syms:
        ranges = found.get(sym, [])
        n = sum(g.count for g in ranges)
        missing += n
        typer.echo(f"{sym}: {n} missing in {len(ranges)} range(s)")
        for g in ranges:
            typer.echo(f"  {g.first.isoformat()} .. {g.last.isoformat()}  ({g.count} bars)")
    if missing:
        raise typer.Exit(1)
