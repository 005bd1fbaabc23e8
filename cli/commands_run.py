"""`marketpipe run`: the main job (in-process through Prefect)."""

from __future__ import annotations

import typer

from cli.main import app
from cli.options import parse_date, parse_interval, parse_list


@app.command()
def run(
    stages: str = typer.Option(
        "ingestion", help="Comma-separated: ingestion,processing,historical."
    ),
    mode: str = typer.Option("batch", help="batch | realtime | hybrid."),
    source: str = typer.Option(
        "synthetic", help="synthetic | replay | yahoo | polygon (or a,b fallback)."
    ),
    symbols: str = typer.Option(None, help="Comma-separated symbols (default AAPL,MSFT,SPY)."),
    start: str = typer.Option(None, help="First date YYYY-MM-DD (default: 90 days ago)."),
    end: str = typer.Option(None, help="Last date YYYY-MM-DD (default: today)."),
    interval: str = typer.Option("1d", help="1m | 5m | 15m | 1h | 1d."),
    replay_path: str = typer.Option(None, "--replay-path", help="File for --source replay."),
    duration: float = typer.Option(
        None, help="Seconds to stream in --mode realtime|hybrid (default: until the XNYS close)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate the plan; touch no store."),
    deployment: str = typer.Option(
        None, help="Run through this Prefect deployment (e.g. daily-ingestion); needs a worker."
    ),
    watch: bool = typer.Option(
        False, "--watch", help="With --deployment: follow the run; exit 0 only if it completes."
    ),
):
    """Run the pipeline (default: offline synthetic daily bars for AAPL, MSFT, SPY, last 90 days)."""
    from flows.pipeline import check_stages
    from marketpipe.settings import load_settings
    from marketpipe.symbols import parse_symbols

    settings = load_settings()
    params = dict(
        stages=check_stages(parse_list(stages) or ["ingestion"], mode),
        mode=mode,
        symbols=parse_symbols(symbols) if symbols else None,
        start=parse_date(start, "start"),
        end=parse_date(end, "end"),
        interval=parse_interval(interval),
        source=source,
        replay_path=replay_path,
    )
    if dry_run:
        from marketpipe.plan import describe_plan

        typer.echo(describe_plan(settings, **params))
        return
    if deployment:
        from cli.deployment_runs import trigger_deployment

        raise SystemExit(trigger_deployment(deployment, params, watch))
    from cli.main import quiet_prefect_tracebacks
    from flows.pipeline import pipeline

    quiet_prefect_tracebacks()
    reports = pipeline(**params, duration_s=duration)
    _print_reports(reports)


def _print_reports(reports: dict) -> None:
    for stage, rep in reports.items():
        if stage == "ingestion":
            typer.echo(
                f"ingestion {rep['interval']} {rep['start']}..{rep['end']} (run {rep['run_id']})"
            )
            for row in rep["rows"]:
                typer.echo(
                    f"  {row['symbol']:<8} {row['fetched']:>7} fetched → {row['hot']:>7} hot, "
                    f"{row['cold']:>7} cold, {row['quarantined']:>5} quarantined  [{row['source']}]"
                )
            t = rep["totals"]
            typer.echo(
                f"  total    {t['fetched']:>7} fetched → {t['hot']:>7} hot, {t['cold']:>7} cold, "
                f"{t['quarantined']:>5} quarantined"
            )
            typer.echo(f"  hot store: {rep['hot']}")
            typer.echo(f"  cold lake: {rep['cold']}")
            if rep.get("stages"):
                from marketpipe.stage_timer import format_stages

                typer.echo(f"  {format_stages(rep)}")
        elif stage == "realtime":
            typer.echo("realtime session: " + ", ".join(f"{k}={v}" for k, v in rep.items()))
        elif stage == "processing":
            t = rep["totals"]
            typer.echo(f"processing {rep['interval']} {rep['start']}..{rep['end']}: {t}")
            for sym, why in rep.get("failed", {}).items():
                typer.echo(f"  {sym:<8} failed, quarantined: {why}")
            for q in rep["quality"]:
                typer.echo(
                    f"  {q['symbol']:<8} {q['sessions']:>5} sessions  quality mean {q['mean_score']:.3f}"
                    f" min {q['min_score']:.3f}  missing {q['missing']}  outliers {q['outliers']}"
                )
        else:
            t = rep.get("totals", {})
            typer.echo(f"{stage}: {rep.get('plan', '')} {t}")
