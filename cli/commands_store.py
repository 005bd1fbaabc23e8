"""Storage commands: `tier` (hot → cold) and `compact` (merge small lake files)."""

from __future__ import annotations

import typer

from cli.main import app


@app.command()
def tier():
    """Move rows older than MARKETPIPE_HOT_DAYS from the hot store into the lake (verified first)."""
    import pandas as pd

    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from marketpipe.storage.tiering import tier_hot_to_cold

    settings = load_settings()
    stores = open_stores(settings)
    try:
        report = tier_hot_to_cold(stores, pd.Timestamp.now(tz="UTC"), settings.hot_days)
    finally:
        stores.close()
    typer.echo(
        f"tiered {report.rows_moved} rows in {len(report.partitions)} partition(s) "
        f"older than {report.cutoff:%Y-%m-%d %H:%M} UTC"
    )
    for p in report.partitions:
        typer.echo(f"  {p['symbol']} {p['interval']} {p['year']}: {p['rows']} rows")


@app.command()
def compact(
    target_mb: int = typer.Option(128, help="Target file size in MB."),
):
    """Merge many small Parquet files per partition into files of about the target size."""
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    settings = load_settings()
    stores = open_stores(settings)
    try:
        report = stores.cold.compact(target_bytes=target_mb * 1024 * 1024)
    finally:
        stores.close()
    typer.echo(str(report))
