"""`marketpipe` command line. Every command has `--help`; errors are one line on stderr.

Exit codes: 0 success; 1 failure (or, for `gaps`/`status`, gaps found / stale data); 2 bad input.
"""

from __future__ import annotations

import sys
import traceback

import typer

from marketpipe.errors import ConfigError, ContractError, MarketpipeError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
STATE = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")):
    STATE["debug"] = debug


def _register() -> None:
    from cli import (  # noqa: F401  (importing registers the commands on `app`)
        commands_data,
        commands_history,
        commands_import,
        commands_ops,
        commands_run,
        commands_store,
    )


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    _register()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        # without standalone mode click *returns* a `typer.Exit(code)`'s code instead of raising
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except SystemExit as exc:
        return int(exc.code or 0)
    except (ConfigError, ContractError) as exc:
        return _fail(exc, 2, debug)
    except MarketpipeError as exc:
        return _fail(exc, 1, debug)
    except typer.Abort:
        print("marketpipe: aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # click usage errors carry their own exit code
        click_exc, click_exit = _click_classes()
        if isinstance(exc, click_exc):  # one line, exit 2 for usage errors
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
