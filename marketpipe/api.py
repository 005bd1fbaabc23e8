"""The Python API: `import marketpipe as mp`, for notebooks and scripts.

    >>> import marketpipe as mp
    >>> daily = mp.read("AAPL", "2024-01-02", "2024-03-28")              # one symbol, end inclusive
    >>> both = mp.read(["AAPL", "MSFT"], start, end, interval="1h", adjusted=True)
    >>> mp.sql("SELECT symbol, count(*) FROM bars GROUP BY symbol")
    >>> mp.run(symbols=["AAPL"], overrides={"data_dir": "/tmp/mp"})      # the pipeline, via Prefect

Date bounds follow the exchange's (XNYS) session calendar: a date, a date string or a timestamp
at exchange-local midnight means that whole session day, and `end` is inclusive, as in the CLI.
For daily bars any timestamp means its exchange-local date; for intraday bars a timestamp with a
time of day is an instant (`start <= ts <= end`). Naive timestamps are exchange-local time
(except `as_of`, a knowledge time: naive means UTC).

Settings come from the environment (`MARKETPIPE_*`) when a call starts; `overrides={...}` replaces
some of them for one call (keys are `Settings` field names: `data_dir`, `hot_url`, `hot_days`, …)
and an unknown or invalid key raises `ConfigError` naming it. Prefect is imported only by the
calls that run flows (`run`, `backfill`, `import_`).
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import os
import threading
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

import pandas as pd
from pydantic import SecretStr

from marketpipe.errors import ConfigError
from marketpipe.settings import Settings, load_settings

__all__ = ["backfill", "import_", "read", "resolve_settings", "run", "session_bounds", "sql"]

EXCHANGE = "XNYS"
# read from the environment by code outside `Settings` (flows/_runners.py, tasks/policy.py)
EXTRA_ENV_KEYS = ("task_runner", "retry_backoff_s")
_ENV_LOCK = threading.RLock()

DateLike = date | datetime | pd.Timestamp | str


# ---------------------------------------------------------------- settings and overrides
def _known_keys() -> list[str]:
    return sorted({*Settings.model_fields, *EXTRA_ENV_KEYS})


def resolve_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment with `overrides` on top; ConfigError naming a bad key."""
    overrides = dict(overrides or {})
    known = _known_keys()
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"overrides: unknown setting {key!r}{hint}")
    fields = {k: v for k, v in overrides.items() if k in Settings.model_fields}
    if not fields:
        return load_settings()
    try:
        return load_settings(**fields)
    except ConfigError as exc:
        load_settings()  # a bad environment variable is reported as itself
        raise ConfigError(f"overrides: {exc}") from None


def _env_name(key: str) -> str:
    return "POLYGON_API_KEY" if key == "polygon_api_key" else f"MARKETPIPE_{key.upper()}"


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return json.dumps(value)
    return str(value)


@contextlib.contextmanager
def overrides_applied(overrides: dict[str, Any] | None) -> Iterator[Settings]:
    """For the duration of the block, flows (which read the environment when they start) see the
    overridden settings: the keys are set as `MARKETPIPE_*` variables, then restored. Calls that
    override settings run one at a time in a process (the environment is process-wide)."""
    settings = resolve_settings(overrides)
    if not overrides:
        yield settings
        return
    with _ENV_LOCK:
        saved = {}
        try:
            for key, value in overrides.items():
                name = _env_name(key)
                saved[name] = os.environ.get(name)
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = _env_value(value)
            yield settings
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old


# ---------------------------------------------------------------- bounds
def _exchange_tz():
    from marketpipe.calendar import get_calendar

    return get_calendar(EXCHANGE).tz


def _local(value: DateLike) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{value!r} is not a date or timestamp like 2024-01-31") from None
    if pd.isna(ts):
        raise ConfigError(f"{value!r} is not a date or timestamp")
    tz = _exchange_tz()
    return ts.tz_localize(tz) if ts.tzinfo is None else ts.tz_convert(tz)


def _instant(value: DateLike, name: str) -> pd.Timestamp:
    """An instant in UTC (naive = UTC: a knowledge time, not a market time)."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise ConfigError(f"{name}: {str(value)[:40]!r} is not an ISO 8601 instant") from None
    if pd.isna(ts):
        raise ConfigError(f"{name}: {str(value)[:40]!r} is not an ISO 8601 instant")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def session_bounds(
    start: DateLike | None, end: DateLike | None, interval: str
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The half-open UTC `[lo, hi)` that `read_bars` takes for inclusive, session-day bounds."""
    lo = None if start is None else _bound(_local(start), interval, is_end=False)
    hi = None if end is None else _bound(_local(end), interval, is_end=True)
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigError(f"start {start} is after end {end}")
    return lo, hi


def _bound(local: pd.Timestamp, interval: str, *, is_end: bool) -> pd.Timestamp:
    day = local.normalize()
    if interval == "1d" or local == day:  # a session day
        if is_end:
            day = day + pd.Timedelta(days=1)
        if interval == "1d":  # daily bars are keyed by the session date at 00:00 UTC
            return pd.Timestamp(day.date().isoformat(), tz="UTC")
        # DST-safe: exchange-local midnight of the (next) calendar day
        return pd.Timestamp(day.date().isoformat()).tz_localize(local.tz).tz_convert("UTC")
    instant = local.tz_convert("UTC")
    return instant + pd.Timedelta(microseconds=1) if is_end else instant


def _symbols(symbols: str | Iterable[str]) -> list[str]:
    from marketpipe.symbols import parse_symbols

    if isinstance(symbols, str):
        return parse_symbols([symbols])  # a string is ONE symbol (never 'A', 'A', 'P', 'L')
    return parse_symbols(list(symbols))


# ---------------------------------------------------------------- reads
def read(
    symbols: str | Iterable[str],
    start: DateLike | None = None,
    end: DateLike | None = None,
    interval: str = "1d",
    adjusted: bool = False,
    source: str | Iterable[str] | None = None,
    as_of: DateLike | int | None = None,
    overrides: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Bars of `symbols` (a string is one symbol) from hot ∪ cold, hot winning on overlap.

    `end` is inclusive; `adjusted=True` back-adjusts splits and dividends; `source` keeps only
    rows served by that source (or those sources); `as_of` reads the lake as it was then.
    Raises ConfigError when the data directory does not exist (nothing is created).
    """
    from marketpipe.preflight import check_interval, require_existing_data
    from marketpipe.processing.adjusted_read import read_bars
    from marketpipe.storage import open_stores

    syms = _symbols(symbols)
    check_interval(interval, stored=True, flag="interval")
    lo, hi = session_bounds(start, end, interval)
    kwargs: dict[str, Any] = {}
    if as_of is not None:
        as_of = as_of if isinstance(as_of, int) else _instant(as_of, "--as-of")
        if "as_of" not in inspect.signature(read_bars).parameters:
            raise NotImplementedError(
                "read(as_of=…) needs a lake with history (the Delta lake); this lake keeps "
                "only the latest version of each row"
            )
        kwargs["as_of"] = as_of
    settings = resolve_settings(overrides)
    require_existing_data(settings)
    stores = open_stores(settings)
    try:
        frame = read_bars(stores, syms, lo, hi, interval, adjusted=adjusted, **kwargs)
    finally:
        stores.close()
    if source is not None:
        wanted = [source] if isinstance(source, str) else list(source)
        frame = frame.loc[frame["source"].isin(wanted)].reset_index(drop=True)
    return frame


def sql(query: str, overrides: dict[str, Any] | None = None) -> pd.DataFrame:
    """Run a DuckDB query over `bars` (hot ∪ cold, hot wins), `bars_adjusted`, `features`,
    `corporate_actions` and `quarantine`; returns a DataFrame."""
    from marketpipe.preflight import require_existing_data
    from marketpipe.sql_views import run_sql
    from marketpipe.storage import open_stores

    settings = resolve_settings(overrides)
    require_existing_data(settings)
    stores = open_stores(settings)
    try:
        return run_sql(stores, query)
    finally:
        stores.close()


# ---------------------------------------------------------------- runs (Prefect)
def run(
    stages: str | Iterable[str] = ("ingestion",),
    mode: str = "batch",
    source: str = "synthetic",
    symbols: str | Iterable[str] | None = None,
    start: DateLike | None = None,
    end: DateLike | None = None,
    interval: str = "1d",
    replay_path: str | None = None,
    duration: float | None = None,
    dry_run: bool = False,
    job: str | None = None,
    profile: str | None = None,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict | str:
    """Run the pipeline in this process through Prefect, with the CLI's defaults (offline
    synthetic daily bars for AAPL, MSFT, SPY over the last 90 days). Returns the per-stage
    reports; with `dry_run=True` the checked plan as text (nothing is fetched or written).
    `job="NAME"` takes the job's parameters (and `profile`'s settings) from `marketpipe.yaml`."""
    if job is not None:
        from marketpipe.jobs import job_run_parameters

        params, job_overrides = job_run_parameters(job, profile, config)
        overrides = {**job_overrides, **(overrides or {})}
    else:
        params = dict(
            stages=stages.split(",") if isinstance(stages, str) else list(stages),
            mode=mode,
            source=source,
            symbols=None if symbols is None else _symbols(symbols),
            start=start,
            end=end,
            interval=interval,
            replay_path=replay_path,
        )
    with overrides_applied(overrides) as settings:
        params = check_run(settings, **params)
        if dry_run:
            from marketpipe.plan import describe_plan

            return describe_plan(settings, **params)
        from flows.pipeline import pipeline

        return pipeline(**params, duration_s=duration)


def check_run(settings: Settings, *, local: bool = True, **params) -> dict:
    """Every input of a run checked before anything starts; returns the normalised parameters.
    `local=False` (a deployment run: the worker's keys, files and stores) checks names only."""
    from flows.pipeline import check_stages
    from marketpipe.preflight import (
        check_date_order,
        check_interval,
        check_sources,
        check_stores_reachable,
    )

    out = dict(params)
    out["stages"] = check_stages(list(out.get("stages") or ["ingestion"]), out["mode"])
    out["interval"] = check_interval(out["interval"])
    out["start"] = _as_date(out.get("start"), "start")
    out["end"] = _as_date(out.get("end"), "end")
    check_date_order(out["start"], out["end"])
    check_sources(out["source"], settings, out.get("replay_path"), local=local)
    if local:
        check_stores_reachable(settings)
    return out


def _as_date(value: DateLike | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    from marketpipe.dates import parse_day

    if isinstance(value, str | date) and not isinstance(value, datetime):
        return parse_day(value, name)
    return parse_day(_local(value).date(), name)


def backfill(
    symbols: str | Iterable[str],
    start: DateLike,
    end: DateLike,
    interval: str = "1d",
    source: str = "polygon",
    repair: bool = False,
    plan_only: bool = False,
    replay_path: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict:
    """Chunked, resumable history backfill (the `historical` flow), with the CLI's defaults.
    `plan_only=True` returns the plan without fetching (no Prefect run)."""
    with overrides_applied(overrides) as settings:
        p = check_backfill(settings, symbols, start, end, interval, source, replay_path)
        if plan_only:
            return {"plan": describe_backfill(settings, p, repair).describe()}
        from flows.historical import historical

        return historical(**p, repair=repair, replay_path=replay_path)


def check_backfill(settings, symbols, start, end, interval, source, replay_path=None) -> dict:
    from marketpipe.preflight import (
        check_date_order,
        check_interval,
        check_sources,
        check_stores_reachable,
    )

    syms = _symbols(symbols)
    lo, hi = _as_date(start, "start"), _as_date(end, "end")
    if lo is None or hi is None:
        raise ConfigError("backfill needs --start DATE and --end DATE")
    check_date_order(lo, hi)
    check_interval(interval)
    check_sources(source, settings, replay_path)
    check_stores_reachable(settings)
    return dict(symbols=syms, start=lo, end=hi, interval=interval, source=source)


def describe_backfill(settings, p: dict, repair: bool):
    """The backfill plan (chunks, requests, time) against the stored chunk ledger."""
    from marketpipe.backfill_run import build_plan
    from marketpipe.storage import open_stores

    stores = open_stores(settings)
    try:
        return build_plan(
            stores,
            settings,
            p["symbols"],
            p["start"],
            p["end"],
            p["interval"],
            p["source"],
            repair,
            pd.Timestamp.now(tz="UTC"),
        )
    finally:
        stores.close()


def import_(paths: str | Iterable[str], overrides: dict[str, Any] | None = None, **options) -> dict:
    """Bulk-import files, folders, globs or `s3://` prefixes (the import flow; resumable).
    `options` go to the flow (see `marketpipe import --help`)."""
    flow = import_flow()
    items = [paths] if isinstance(paths, str) else list(paths)
    with overrides_applied(overrides):
        return flow(paths=items, **options)


def import_flow():
    """The import flow of `flows/importing.py`; a clear error while it is not installed."""
    try:
        import flows.importing as importing
    except ImportError:
        raise ConfigError(
            "import is not available in this build (flows/importing.py is missing)"
        ) from None
    from prefect import Flow

    for name in ("import_bars", "importing", "import_files", "import_flow"):
        obj = getattr(importing, name, None)
        if isinstance(obj, Flow):
            return obj
    flows = [v for v in vars(importing).values() if isinstance(v, Flow)]
    if len(flows) != 1:
        raise ConfigError("flows/importing.py defines no single import flow")
    return flows[0]
