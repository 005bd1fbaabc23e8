"""`marketpipe run`: the main job (in-process through Prefect, or through a deployment)."""

from __future__ import annotations

import typer

from cli.help_format import examples
from cli.main import app
from cli.options import parse_list


@app.command(
    epilog=examples(
        "marketpipe run",
        "marketpipe run --symbols AAPL,MSFT --start 2024-01-02 --dry-run",
        "marketpipe run --stages ingestion,processing --source yahoo --interval 1h",
        "marketpipe run --job daily --profile prod",
    )
)
def run(
    stages: str = typer.Option(
        "ingestion", metavar="STAGES", help="Comma-separated: ingestion,processing,historical."
    ),
    mode: str = typer.Option("batch", metavar="MODE", help="batch | realtime | hybrid."),
    source: str = typer.Option(
        "synthetic",
        metavar="SOURCE",
        help="synthetic | replay | yahoo | polygon (or a,b: fallback in order).",
    ),
    symbols: str = typer.Option(
        None, metavar="SYMBOLS", help="Comma-separated symbols (default AAPL,MSFT,SPY)."
    ),
    start: str = typer.Option(
        None, metavar="DATE", help="First day YYYY-MM-DD (default: each symbol's watermark)."
    ),
    end: str = typer.Option(None, metavar="DATE", help="Last day YYYY-MM-DD (default: today)."),
    interval: str = typer.Option("1d", metavar="INTERVAL", help="1m | 5m | 15m | 1h | 1d."),
    replay_path: str = typer.Option(
        None, "--replay-path", metavar="FILE", help="File for --source replay."
    ),
    duration: float = typer.Option(
        None,
        metavar="SECONDS",
        help="Seconds to stream in --mode realtime|hybrid (default: until the XNYS close).",
    ),
    job: str = typer.Option(
        None, metavar="NAME", help="Run the named job of marketpipe.yaml (see --config)."
    ),
    profile: str = typer.Option(
        None, metavar="PROFILE", help="With --job: the profile (stores, limits, hot days)."
    ),
    config: str = typer.Option(
        None, metavar="FILE", help="Jobs file (default: ./marketpipe.yaml or MARKETPIPE_CONFIG)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check everything and print the plan; fetch and write nothing."
    ),
    deployment: str = typer.Option(
        None,
        metavar="NAME",
        help="Run through this Prefect deployment (e.g. daily-ingestion); needs a worker.",
    ),
    watch: bool = typer.Option(
        False, "--watch", help="With --deployment: follow the run; exit 0 only if it completes."
    ),
):
    """Run the pipeline (default: offline synthetic daily bars for AAPL, MSFT, SPY, last 90 days).

    Every input is checked first (sources, keys, dates, interval, stores), also with --dry-run.
    """
    from marketpipe.api import _symbols, check_run, overrides_applied

    overrides: dict = {}
    if job:
        from marketpipe.jobs import job_run_parameters

        given = {
            "--stages": stages != "ingestion",
            "--mode": mode != "batch",
            "--source": source != "synthetic",
            "--symbols": symbols is not None,
            "--start": start is not None,
            "--end": end is not None,
            "--interval": interval != "1d",
            "--replay-path": replay_path is not None,
        }
        if clash := [flag for flag, set_ in given.items() if set_]:
            from marketpipe.errors import ConfigError

            raise ConfigError(f"--job takes its parameters from the jobs file; drop {clash[0]}")
        params, overrides = job_run_parameters(job, profile, config)
    elif profile:
        from marketpipe.errors import ConfigError

        raise ConfigError("--profile needs --job NAME")
    else:
        params = dict(
            stages=parse_list(stages) or ["ingestion"],
            mode=mode,
            symbols=_symbols(parse_list(symbols)) if symbols else None,
            start=start,
            end=end,
            interval=interval,
            source=source,
            replay_path=replay_path,
        )
    with overrides_applied(overrides) as settings:
        if deployment:
            from cli.deployment_runs import trigger_deployment

            # a job deployment resolves the job when it runs (flows/jobs.py); others get values
            sent = (
                {"job": job, "profile": profile}
                if job
                else check_run(settings, local=False, **params)
            )
            raise SystemExit(trigger_deployment(deployment, sent, watch))
        params = check_run(settings, **params)
        if dry_run:
            from marketpipe.plan import describe_plan

            if job:
                typer.echo(f"job {job}" + (f" (profile {profile})" if profile else ""))
            typer.echo(describe_plan(settings, **params))
            return
        from cli.main import quiet_prefect_tracebacks
        from cli.reports import print_reports
        from flows.pipeline import pipeline

        quiet_prefect_tracebacks()
        reports = pipeline(**params, duration_s=duration)
    print_reports(reports)
