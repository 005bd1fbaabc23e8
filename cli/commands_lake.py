"""`marketpipe lake …`: the cold lake's own commands (migrate from the first, Hive-Parquet layout)."""

from __future__ import annotations

import typer

from cli.help_format import examples
from cli.main import app

lake_app = typer.Typer(
    help="Cold lake (Delta Lake) commands.",
    no_args_is_help=True,
    epilog=examples("marketpipe lake migrate", "marketpipe lake migrate --to s3://bucket/lake"),
)
app.add_typer(lake_app, name="lake")


@lake_app.command(
    epilog=examples("marketpipe lake migrate", "marketpipe lake migrate --to s3://bucket/lake")
)
def migrate(
    to: str = typer.Option(
        None, "--to", help="Write the Delta tables at this lake URL (default: in place)."
    ),
):
    """Convert a Hive-Parquet lake (earlier versions) into Delta tables; verified, resumable."""
    from marketpipe.settings import load_settings
    from marketpipe.storage.lake_migrate import migrate_lake

    settings = load_settings()
    opts = settings.storage_options
    target_opts = None
    if to:
        target = load_settings(cold_url=to)
        to, target_opts = target.cold_url_resolved, target.storage_options
    report = migrate_lake(settings.cold_url_resolved, opts, to, target_opts)
    typer.echo(
        f"migrated {report.rows} rows in {len(report.partitions)} partition(s) "
        f"from {report.source} to {report.target}"
    )
