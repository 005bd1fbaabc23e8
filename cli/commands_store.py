"""Storage commands: `tier` (hot → cold) and `compact` (merge small lake files)."""

from __future__ import annotations

import typer

from cli.help_format import examples
from cli.main import app


@app.command(epilog=examples("marketpipe tier", "MARKETPIPE_HOT_DAYS=7 marketpipe tier"))
def tier():
    """Move rows older than MARKETPIPE_HOT_DAYS from the hot store into the lake (verified first)."""
    import pandas as pd

    from cli.tables import print_table
    from marketpipe.preflight import check_stores_reachable
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores
    from marketpipe.storage.tiering import tier_hot_to_cold

    settings = load_settings()
    check_stores_reachable(settings)
    stores = open_stores(settings)
    try:
        report = tier_hot_to_cold(stores, pd.Timestamp.now(tz="UTC"), settings.hot_days)
    finally:
        stores.close()
    typer.echo(
        f"tiered {report.rows_moved} rows in {len(report.partitions)} partition(s) "
        f"older than {report.cutoff:%Y-%m-%d %H:%M} UTC"
    )
    if report.partitions:
        print_table(
            None,
            ["symbol", "interval", "year", "rows moved"],
            [[p["symbol"], p["interval"], p["year"], int(p["rows"])] for p in report.partitions],
        )


@app.command(epilog=examples("marketpipe compact", "marketpipe compact --target-mb 64"))
def compact(
    target_mb: int = typer.Option(128, metavar="MB", help="Target file size in MB."),
):
    """Merge many small Parquet files per partition into files of about the target size."""
    from cli.tables import print_kv
    from marketpipe.preflight import check_stores_reachable
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    if target_mb < 1:
        from marketpipe.errors import ConfigError

        raise ConfigError(f"--target-mb: {target_mb} must be at least 1")
    settings = load_settings()
    check_stores_reachable(settings)
    stores = open_stores(settings)
    try:
        report = stores.cold.compact(target_bytes=target_mb * 1024 * 1024)
    finally:
        stores.close()
    print_kv("compaction", report)
