"""Named jobs with profiles: `marketpipe.yaml`.

```yaml
universes:                      # named symbol lists
  megacaps: [AAPL, MSFT, SPY]
jobs:
  daily:                        # marketpipe run --job daily [--profile prod]
    source: synthetic           # synthetic | replay | yahoo | polygon (or "polygon,yahoo")
    universe: megacaps          # or symbols: [AAPL, MSFT]
    interval: 1d
    stages: [ingestion, processing]
    schedule: "30 17 * * 1-5"   # cron; `make deploy` creates a deployment for each scheduled job
    timezone: America/New_York
profiles:                       # settings per environment (any MARKETPIPE_* setting, lower case)
  dev:  {data_dir: .marketpipe, hot_days: 30}
  prod: {hot_url: "postgresql+psycopg://mp@db/marketpipe", cold_url: "s3://bucket/lake",
         hot_days: 10, polygon_rate_limit: 100/min}
default_profile: dev
```

The file is found at `--config FILE`, else `$MARKETPIPE_CONFIG`, else `./marketpipe.yaml`. A relative
`data_dir` in a profile is taken relative to the file. Prefect-free: the CLI, the Python API, the
`job` flow and the deployments all read jobs through here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marketpipe.errors import ConfigError

DEFAULT_FILE = "marketpipe.yaml"
CONFIG_ENV = "MARKETPIPE_CONFIG"
_STAGES = ("ingestion", "processing", "historical")  # as flows.pipeline.STAGES (no Prefect here)
_MODES = ("batch", "realtime", "hybrid")


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = "synthetic"
    symbols: list[str] | None = None
    universe: str | None = None
    interval: str = "1d"
    stages: list[str] = Field(default_factory=lambda: ["ingestion"])
    mode: str = "batch"
    schedule: str | None = None
    timezone: str = "America/New_York"
    profile: str | None = None
    replay_path: str | None = None
    description: str | None = None

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        from marketpipe.bars import INTERVALS

        if v not in INTERVALS:
            raise ValueError(f"{v!r} is not one of {', '.join(INTERVALS)}")
        return v

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in _STAGES]
        if bad:
            raise ValueError(f"unknown stage(s) {', '.join(bad)}; use {', '.join(_STAGES)}")
        return v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in _MODES:
            raise ValueError(f"unknown mode {v!r}; use {', '.join(_MODES)}")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        from marketpipe.providers import source_names

        try:
            source_names(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        from marketpipe.symbols import parse_symbols

        if v is None:
            return None
        try:
            return parse_symbols(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is not None:
            check_cron(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class JobsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    universes: dict[str, list[str]] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    default_profile: str | None = None


# ---------------------------------------------------------------- cron (5 fields)
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = (
    {},
    {},
    {},
    {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
)
_ITEM_RE = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(\d+))?$")


def check_cron(expr: str) -> None:
    """A 5-field cron expression (minute hour day month weekday); ValueError naming the field."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r} needs 5 fields (minute hour day month weekday)")
    names = ("minute", "hour", "day", "month", "weekday")
    for field, (lo, hi), aliases, name in zip(
        fields, _CRON_RANGES, _CRON_NAMES, names, strict=True
    ):
        for item in field.lower().split(","):
            m = _ITEM_RE.match(item)
            if not m:
                raise ValueError(f"cron {expr!r}: bad {name} {item!r}")
            if m.group(1) == "*":
                continue
            for part in m.group(1).split("-"):
                value = aliases.get(part, int(part) if part.isdigit() else None)
                if value is None or not lo <= value <= hi:
                    raise ValueError(f"cron {expr!r}: {name} {part!r} is not in {lo}-{hi}")


# ---------------------------------------------------------------- loading
def config_path(config: str | os.PathLike | None = None) -> Path:
    return Path(config or os.environ.get(CONFIG_ENV) or DEFAULT_FILE)


def _load_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise ConfigError(f"no jobs file {path} (use --config FILE or {CONFIG_ENV})")
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or ["invalid YAML"])[0]
        raise ConfigError(f"{path}: not valid YAML ({first})") from None


def _pydantic_problems(path: Path, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            out.append(f"{path}: {where}: unknown key")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
            out.append(f"{path}: {where}: {msg}{shown}")
    return out


def parse_jobs_file(path: Path) -> tuple[JobsFile | None, list[str]]:
    """The parsed file and its structural problems (one line each)."""
    raw = _load_yaml(path)
    if not isinstance(raw, dict):
        return None, [f"{path}: top level must be a mapping (universes, jobs, profiles)"]
    try:
        return JobsFile.model_validate(raw), []
    except ValidationError as exc:
        return None, _pydantic_problems(path, exc)


def semantic_problems(path: Path, spec: JobsFile) -> list[str]:
    """Unknown universes/profiles, symbols and universe both or neither, bad profile settings."""
    from marketpipe.symbols import parse_symbols

    out = []
    for name, symbols in spec.universes.items():
        try:
            parse_symbols(symbols)
        except ConfigError as exc:
            out.append(f"{path}: universes.{name}: {exc}")
    for name, job in spec.jobs.items():
        where = f"{path}: jobs.{name}"
        if job.universe is not None and job.universe not in spec.universes:
            known = ", ".join(spec.universes) or "none defined"
            out.append(f"{where}.universe: unknown universe {job.universe!r} (known: {known})")
        if job.universe is not None and job.symbols is not None:
            out.append(f"{where}: give symbols or universe, not both")
        if job.profile is not None and job.profile not in spec.profiles:
            out.append(f"{where}.profile: unknown profile {job.profile!r}")
    if spec.default_profile is not None and spec.default_profile not in spec.profiles:
        out.append(f"{path}: default_profile: unknown profile {spec.default_profile!r}")
    for name in spec.profiles:
        try:
            profile_settings(path, spec, name)
        except ConfigError as exc:
            out.append(f"{path}: profiles.{name}: {exc}")
    return out


def load_jobs(config: str | os.PathLike | None = None) -> tuple[Path, JobsFile]:
    """The jobs file, parsed and checked (not stores); ConfigError with its first problem."""
    path = config_path(config)
    spec, problems = parse_jobs_file(path)
    if spec is not None:
        problems = semantic_problems(path, spec)
    if problems:
        more = f" (+{len(problems) - 1} more: marketpipe validate --config {path})"
        raise ConfigError(problems[0] + (more if len(problems) > 1 else ""))
    return path, spec


def profile_overrides(path: Path, spec: JobsFile, name: str | None) -> dict[str, Any]:
    """The settings a profile sets (`data_dir` relative to the jobs file)."""
    if name is None:
        return {}
    if name not in spec.profiles:
        known = ", ".join(spec.profiles) or "none defined"
        raise ConfigError(f"--profile: unknown profile {name!r} in {path} (known: {known})")
    values = dict(spec.profiles[name])
    data_dir = values.get("data_dir")
    if data_dir is not None and not Path(str(data_dir)).is_absolute():
        values["data_dir"] = str((path.parent / str(data_dir)).resolve())
    return values


def profile_settings(path: Path, spec: JobsFile, name: str):
    from marketpipe.api import resolve_settings

    try:
        return resolve_settings(profile_overrides(path, spec, name))
    except ConfigError as exc:
        raise ConfigError(str(exc).removeprefix("overrides: ")) from None


def job_symbols(spec: JobsFile, job: Job) -> list[str] | None:
    if job.universe is not None:
        from marketpipe.symbols import parse_symbols

        return parse_symbols(spec.universes[job.universe])
    return job.symbols


def job_run_parameters(
    name: str, profile: str | None = None, config: str | os.PathLike | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline parameters, settings overrides) for `marketpipe run --job NAME [--profile P]`."""
    path, spec = load_jobs(config)
    if name not in spec.jobs:
        known = ", ".join(spec.jobs) or "none defined"
        raise ConfigError(f"--job: unknown job {name!r} in {path} (known: {known})")
    job = spec.jobs[name]
    chosen = profile or job.profile or spec.default_profile
    params = dict(
        stages=list(job.stages),
        mode=job.mode,
        symbols=job_symbols(spec, job),
        start=None,
        end=None,
        interval=job.interval,
        source=job.source,
        replay_path=job.replay_path,
    )
    return params, profile_overrides(path, spec, chosen)


def scheduled_jobs(config: str | os.PathLike | None = None) -> tuple[Path, JobsFile, list[str]]:
    path, spec = load_jobs(config)
    return path, spec, [n for n, j in spec.jobs.items() if j.schedule]


def validate_config_file(config: str | os.PathLike, *, check_stores: bool = True) -> list[str]:
    """Every problem of a jobs file, one line each (empty when it is fine): unknown keys, bad
    values, unknown universes/profiles, and (with `check_stores`) unreachable stores."""
    from marketpipe.errors import MarketpipeError
    from marketpipe.preflight import check_stores_reachable

    path = Path(config)
    spec, problems = parse_jobs_file(path)
    if spec is None:
        return problems
    problems = semantic_problems(path, spec)
    if check_stores and not problems:
        for name in spec.profiles:
            try:
                check_stores_reachable(profile_settings(path, spec, name))
            except MarketpipeError as exc:
                problems.append(f"{path}: profiles.{name}: {exc}")
    return problems
