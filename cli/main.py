"""marketpipe: market data from providers and files into a hot store and a lake, kept correct,
complete and fresh (Prefect-orchestrated).

Run `marketpipe COMMAND --help` for a command's options and an example. Exit codes: 0 success;
1 failure (for `gaps`/`status`: gaps found / stale data); 2 bad input, one line on stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer
from typer.core import TyperGroup

from marketpipe.errors import ConfigError, ContractError, MarketpipeError

# Workflow order of `marketpipe --help`. Commands register on `app` from their modules below;
# a new command module goes into COMMAND_MODULES and its command name into COMMAND_ORDER.
COMMAND_ORDER = (
    "run",
    "backfill",
    "import",
    "read",
    "sql",
    "gaps",
    "status",
    "monitor",
    "validate",
    "tier",
    "compact",
    "lake",
)
COMMAND_MODULES = (
    "cli.commands_run",  # run
    "cli.commands_history",  # backfill, gaps
    "cli.commands_import",  # import           (optional: the `import` engineer's module)
    "cli.commands_data",  # read, sql, validate
    "cli.commands_ops",  # status
    "cli.commands_monitor",  # monitor         (optional)
    "cli.commands_store",  # tier, compact
    "cli.commands_lake",  # lake               (optional)
)
OPTIONAL_MODULES = ("cli.commands_import", "cli.commands_monitor", "cli.commands_lake")
# accepted anywhere before `--`, on every command: stripped before click parses the rest
GLOBAL_FLAGS = {"--debug": "debug", "-v": "verbose", "--verbose": "verbose", "-vv": "verbose"}
STATE = {"debug": False, "verbose": 0}


class WorkflowGroup(TyperGroup):
    """Commands listed in workflow order (COMMAND_ORDER), then any others alphabetically."""

    def list_commands(self, ctx):
        names = list(self.commands)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


app = typer.Typer(
    cls=WorkflowGroup,
    add_completion=False,
    no_args_is_help=False,
    help=__doc__,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(
    epilog="Example:  marketpipe run && marketpipe read AAPL --interval 1d",
    invoke_without_command=True,
)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks on errors (any command, before or after it)."
    ),
    verbose: bool = typer.Option(
        False, "-v", "--verbose", help="Show Prefect's per-task log lines (any command)."
    ),
):
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def split_global_flags(args: list[str]) -> tuple[list[str], bool, int, bool]:
    """(args without the global flags, debug, verbosity, version) — flags may stand anywhere
    before a `--`."""
    rest, debug, verbose, version = [], False, 0, False
    for i, arg in enumerate(args):
        if arg == "--":
            rest += args[i:]
            break
        kind = GLOBAL_FLAGS.get(arg)
        if kind == "debug":
            debug = True
        elif kind == "verbose":
            verbose += 2 if arg == "-vv" else 1
        elif arg == "--version":
            version = True
        else:
            rest.append(arg)
    return rest, debug, verbose, version


def configure_output(verbose: int) -> None:
    """Before Prefect is imported: its console shows warnings and errors only (per-task INFO
    lines with `-v`; the API still receives every log line), and no telemetry offline."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if verbose:
        level = "DEBUG" if verbose > 1 else "INFO"
        for name in ("LEVEL", "HANDLERS_CONSOLE_LEVEL", "HANDLERS_CONSOLE_FLOW_RUNS_LEVEL"):
            os.environ[f"PREFECT_LOGGING_{name}"] = level
        os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL"] = level
    else:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL", "WARNING")
        # the temporary server's own lines ("Starting temporary server…", telemetry)
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")


def _register() -> None:
    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module)  # importing registers the commands on `app`
        except ModuleNotFoundError as exc:
            if module not in OPTIONAL_MODULES or exc.name != module:
                raise


def build_command():
    """The click command tree, with help that shows real metavars and no `<bool>`."""
    from cli.help_format import add_global_options, patch_help_display, reflow_help

    patch_help_display()
    command = typer.main.get_command(app)
    add_global_options(command)
    reflow_help(command)
    return command


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args, debug, verbose, version = split_global_flags(
        list(argv if argv is not None else sys.argv[1:])
    )
    STATE.update(debug=debug, verbose=verbose)
    if version:
        from marketpipe import __version__

        print(f"marketpipe {__version__}")
        return 0
    configure_output(verbose)
    try:
        _register()
        command = build_command()
        # without standalone mode click *returns* a `typer.Exit(code)`'s code instead of raising
        rv = command.main(args=args, prog_name="marketpipe", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (ConfigError, ContractError) as exc:
        return _fail(exc, 2, debug)
    except MarketpipeError as exc:
        return _fail(exc, 1, debug)
    except (typer.Abort, KeyboardInterrupt):
        print("marketpipe: aborted", file=sys.stderr)
        return 130
    except NotImplementedError as exc:
        return _fail(exc, 2, debug)
    except Exception as exc:  # click usage errors carry their own exit code
        click_exc, click_exit = _click_classes()
        if isinstance(exc, click_exc):  # one line, exit 2 for usage errors
            if debug:
                traceback.print_exception(exc)
            print(f"marketpipe: error: {exc.format_message()}", file=sys.stderr)
            return exc.exit_code
        if isinstance(exc, click_exit):
            return exc.exit_code
        return _fail(exc, 1, debug, prefix=f"{type(exc).__name__}: ")
    return 0


def _click_classes() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Click's exception classes: typer >= 0.2x vendors click as `typer._click`, so an error raised
    by typer is not a `click.ClickException` (it used to end as 'BadOptionUsage: …', exit 1)."""
    import click

    exc, exit_ = [click.ClickException], [click.exceptions.Exit]
    try:
        from typer import _click

        exc.append(_click.ClickException)
        exit_.append(_click.exceptions.Exit)
    except (ImportError, AttributeError):
        pass
    return tuple(exc), tuple(exit_)


def quiet_prefect_tracebacks() -> None:
    """Unless `--debug`: Prefect's console log lines keep their one-line message but drop the
    traceback (the flow-run logs sent to the Prefect API keep it). Call after Prefect is imported."""
    import logging

    if STATE["debug"]:
        return
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for lg in loggers:
        for handler in getattr(lg, "handlers", ()):
            if type(handler).__name__ == "PrefectConsoleHandler" and handler.formatter:
                handler.formatter = _NoTraceback(handler.formatter)


class _NoTraceback:
    """Wraps a logging formatter: the record is formatted without exc_info/exc_text/stack_info
    (restored afterwards, so other handlers still get the traceback)."""

    def __init__(self, inner):
        self.inner = inner

    def format(self, record):
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _fail(exc: BaseException, code: int, debug: bool, prefix: str = "") -> int:
    if debug:
        traceback.print_exception(exc)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    print(f"marketpipe: error: {prefix}{first}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
