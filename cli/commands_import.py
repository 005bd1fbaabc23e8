"""`marketpipe import PATH…`: bulk import of bar files (resumable: finished files are skipped)."""

from __future__ import annotations

import sys

import typer

from cli.main import app
from cli.options import parse_interval

EXAMPLE = """
Examples:

  marketpipe import bars.parquet

  marketpipe import ~/flatfiles/us_stocks_sip/day_aggs_v1/2024/ --interval 1d

  marketpipe import 's3://flatfiles/us_stocks_sip/minute_aggs_v1/2024/01/*' (a prefix: no glob)

  marketpipe import AAPL.csv --symbol AAPL
"""


@app.command(name="import", epilog=EXAMPLE)
def import_command(
    paths: list[str] = typer.Argument(
        ...,
        help="Files, directories (recursive), globs or s3://bucket/prefix (CSV, CSV.gz, Parquet).",
    ),
    symbol: str = typer.Option(
        None, help="Symbol of files without a symbol column (default: the file name's stem)."
    ),
    interval: str = typer.Option(
        None, help="1m | 5m | 15m | 1h | 1d (default: the file's interval column, or detected)."
    ),
    workers: int = typer.Option(1, min=1, help="Files imported in parallel (threads)."),
    batch_rows: int = typer.Option(500_000, min=1000, help="Rows per batch (bounds memory)."),
    force: bool = typer.Option(False, "--force", help="Import files the ledger already holds."),
):
    """Import bar files in the canonical columns, the common OHLCV download shape
    (Date/Open/High/Low/Close/Adj Close/Volume) or Polygon flat files (day/minute aggregates):
    the same contract, quarantine and hot/cold routing as every other path. A bad file fails
    alone (one line naming it; exit 1 once the others have landed)."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from cli.main import quiet_prefect_tracebacks
    from flows.importing import import_bars
    from marketpipe import importer
    from marketpipe.stage_timer import format_stages
    from marketpipe.symbols import validate_symbol

    sym = validate_symbol(symbol).upper() if symbol else None
    ivl = parse_interval(interval) if interval else None
    quiet_prefect_tracebacks()
    listener = _Progress()
    importer.add_listener(listener)
    try:
        flow = import_bars.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))
        rep = flow(paths=list(paths), symbol=sym, interval=ivl, batch_rows=batch_rows, force=force)
    finally:
        listener.close()
        importer.remove_listener(listener)
    f, t = rep["files"], rep["totals"]
    typer.echo(
        f"import: {f['imported']} files imported, {f['skipped']} skipped (already imported), "
        f"{f['failed']} failed (run {rep['run_id']})"
    )
    typer.echo(
        f"  rows {t['rows']} → {t['hot']} hot, {t['cold']} cold, {t['quarantined']} quarantined"
    )
    typer.echo(f"  {format_stages(rep)}")
    typer.echo(f"  hot store: {rep['hot']}")
    typer.echo(f"  cold lake: {rep['cold']}")
    for line in rep["failed"]:
        print(f"marketpipe: error: {line}", file=sys.stderr)
    if rep["failed"]:
        raise SystemExit(1)


class _Progress:
    """A rich progress bar on a terminal; one line per finished file otherwise (logs, pipes)."""

    def __init__(self):
        from rich.progress import Progress

        self.tty = sys.stderr.isatty()
        self.bar = Progress(transient=False) if self.tty else None
        self.task = None

    def planned(self, todo: int, skipped: int) -> None:
        if skipped:
            typer.echo(f"import: {skipped} files already imported (skipped), {todo} to import")
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("importing", total=todo)

    def finished(self, report) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task)
        if not self.tty or report.status == "failed":
            what = report.error if report.status == "failed" else report.url
            # not print(): the flow's log_prints would send it to the run log instead
            sys.stdout.write(
                f"  {report.status:<8} {what} ({report.rows} rows: {report.hot} hot, "
                f"{report.cold} cold, {report.quarantined} quarantined)\n"
            )
            sys.stdout.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
