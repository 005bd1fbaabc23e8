"""Settings from `MARKETPIPE_*` environment variables (pydantic-settings).

Call `load_settings()` when a command or flow starts -- never at import. An invalid value raises
`ConfigError` whose message is one line naming the variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketpipe.errors import ConfigError
from marketpipe.providers.registry import RECORDS
from marketpipe.redact import encode_userinfo, mask_url

__all__ = ["Settings", "load_settings", "mask_url", "parse_rate"]

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour)s?\s*$", re.I)
_PERIOD_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}
_TASK_RUNNER_RE = re.compile(
    r"^\s*(threads?(:\d+)?|dask(:\d+(:(inproc|processes))?)?|dask:(tcp|tls)://\S+|dask://\S+)?\s*$",
    re.I,
)
HOT_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")
COLD_SCHEMES = ("file", "local", "s3", "memory")
# bounds that keep a limiter's log and its waits finite (a bigger count or period is a typo)
MAX_RATE_COUNT = 1_000_000
MAX_RATE_PERIOD_S = 86_400.0
_S3_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$")
_SCHEME_ONLY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")  # `s3:x` (not `C:\x`)


def parse_rate(text: str) -> tuple[int, float]:
    """'5/min' -> (5, 60.0); '100/10s' -> (100, 10.0). Raises ValueError (one line) for a
    malformed text, a count outside 1..1,000,000 or a window outside (0 s, 24 h]."""
    m = _RATE_RE.match(text)
    if not m:
        raise ValueError(f"rate limit {text!r} is not like '5/min', '100/s' or '300/10min'")
    count, mult, unit = m.group(1), m.group(2), m.group(3).lower()
    if len(count) > 7 or not 0 < int(count) <= MAX_RATE_COUNT:
        raise ValueError(f"rate limit count must be between 1 and {MAX_RATE_COUNT:,}")
    multiple = int(mult) if mult and len(mult) <= 6 else (1 if not mult else -1)
    period = float(multiple * _PERIOD_SECONDS[unit])
    if not 0 < period <= MAX_RATE_PERIOD_S:
        raise ValueError("rate limit window must be longer than 0 s and at most 24 h")
    return int(count), period


def check_cold_url(v: str) -> str:
    """The lake URL without a trailing `/`; ValueError for an S3 URL without a bucket or with
    empty, `.` or `..` path segments, and for `scheme:` text that lacks `//`."""
    if "://" not in v:
        if _SCHEME_ONLY_RE.match(v) and not re.match(r"^[A-Za-z]:[\\/]", v):
            raise ValueError("looks like a URL without '//'; use s3://bucket/prefix or a path")
        return v.rstrip("/") or v
    scheme, _, rest = v.partition("://")
    scheme = scheme.lower()
    if scheme not in COLD_SCHEMES:
        raise ValueError(
            f"unknown scheme {scheme!r}; use a local path, file://… or s3://bucket/prefix"
        )
    if scheme == "s3":
        rest = rest.rstrip("/")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError("s3:// URL has no bucket; use s3://bucket/prefix")
        if not _S3_BUCKET_RE.match(bucket):
            raise ValueError(f"{bucket!r} is not an S3 bucket name")
        for seg in prefix.split("/") if prefix else ():
            if unquote(seg).strip() in ("", ".", ".."):
                raise ValueError("S3 prefix has an empty, '.' or '..' segment")
        return f"s3://{rest}"
    return v.rstrip("/")


class Settings(BaseSettings):
    """Runtime configuration. Field `x` is read from `MARKETPIPE_X`."""

    model_config = SettingsConfigDict(
        env_prefix="MARKETPIPE_", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Path(".marketpipe")
    hot_url: str | None = None
    cold_url: str | None = None
    s3_endpoint_url: str | None = None
    hot_days: Annotated[int, Field(ge=0, le=36500)] = 30
    polygon_base_url: str = "https://api.polygon.io"
    polygon_ws_host: str = "socket.polygon.io"
    polygon_ws_secure: bool = True
    # per network provider: `{name}_rate_limit`, default from its registry record
    polygon_rate_limit: str = RECORDS["polygon"].default_rate_limit
    yahoo_rate_limit: str = RECORDS["yahoo"].default_rate_limit
    # cross-process provider limits through Prefect: auto = only for deployment runs (workers)
    global_rate_limits: Literal["auto", "on", "off"] = "auto"
    polygon_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("POLYGON_API_KEY", "MARKETPIPE_POLYGON_API_KEY")
    )
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    default_symbols: str = "AAPL,MSFT,SPY"
    # S3 (s3fs and delta-rs): a request waits at most connect + read timeout; a store task keeps
    # retrying a failed write for at most the retry budget (counted from its first try)
    s3_connect_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    s3_read_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    store_retry_budget_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    # base of the exponential backoff (with jitter) of retried tasks, seconds
    retry_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 2.0
    # threads[:N] | dask[:N[:inproc]] | dask:tcp://host:port (processing and backfill runs);
    # plain "threads": each flow's own thread count (4; a backfill 2)
    task_runner: str = "threads"
    # threads issuing a backfill task's requests while it stores earlier chunks (each request is
    # paced by the rate limiter; 500-symbol daily bench at 100 req/s: 4-8 used 0.78-0.82 of the
    # limit, 16 only 0.71 — more threads than cores cost more in GIL contention than they hide)
    backfill_fetchers: Annotated[int, Field(ge=1, le=64)] = 6
    # health score and alerts (marketpipe.health; docs/operations.md "Health")
    latency_max_ms: Annotated[float, Field(gt=0)] = 250.0
    throughput_min_per_s: Annotated[float, Field(ge=0)] = 0.0  # 0 = no throughput floor
    error_rate_max: Annotated[float, Field(ge=0, le=1)] = 0.05
    health_score_min: Annotated[int, Field(ge=0, le=100)] = 80
    # data of a session is due this many minutes after its close (early closes move it)
    freshness_deadline_min: Annotated[int, Field(ge=0, le=24 * 60)] = 120
    # circuit breaker per provider (several sources only): skip after N failures for a cool-down
    circuit_failures: Annotated[int, Field(ge=1, le=1000)] = 3
    circuit_cooldown_s: Annotated[float, Field(ge=0)] = 120.0
    # where `make deploy`'s automations send alerts (a Prefect webhook block); unset = no block
    alert_webhook_url: SecretStr | None = None
    # lake `vacuum` keeps the files every version of the last N hours needs (as-of reads, restore)
    lake_vacuum_retention_hours: Annotated[int, Field(ge=0, le=87600)] = 7 * 24

    @field_validator("hot_url")
    @classmethod
    def _hot_scheme(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme not in HOT_SCHEMES:
            raise ValueError(
                f"unknown scheme {scheme or '(none)'!r}; use sqlite:///PATH or postgresql+psycopg://…"
            )
        if scheme in ("postgresql", "postgres"):
            v = "postgresql+psycopg://" + v.split("://", 1)[1]
        # a password with an unencoded `@` means what a human reads: everything up to the host
        return encode_userinfo(v)

    @field_validator("cold_url")
    @classmethod
    def _cold_scheme(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        return check_cold_url(v)

    @field_validator("task_runner")
    @classmethod
    def _runner(cls, v: str) -> str:
        if not _TASK_RUNNER_RE.match(v):
            raise ValueError("use threads[:N], dask[:N[:inproc]] or dask:tcp://host:port")
        return v.strip()

    @field_validator("default_symbols")
    @classmethod
    def _symbols(cls, v: str) -> str:
        from marketpipe.symbols import parse_symbols

        try:
            parse_symbols(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("polygon_rate_limit", "yahoo_rate_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        parse_rate(v)
        return v

    def __repr_args__(self):
        """repr()/str() show URLs masked (a Settings object may end up in a log line)."""
        for name, value in super().__repr_args__():
            masked = mask_url(value) if name.endswith("_url") and isinstance(value, str) else value
            yield name, masked

    # ---- derived values -------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        """`default_symbols` as a list: what a run covers when it is given no symbols."""
        from marketpipe.symbols import parse_symbols

        return parse_symbols(self.default_symbols)

    @property
    def hot_url_resolved(self) -> str:
        return self.hot_url or f"sqlite:///{self.data_dir / 'hot.db'}"

    @property
    def cold_url_resolved(self) -> str:
        return self.cold_url or str(self.data_dir / "lake")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("use http://host:port or https://host")
        return v.rstrip("/")

    @property
    def storage_options(self) -> dict:
        """fsspec storage options for the cold lake (= `s3fs_options()` for an s3:// lake)."""
        if self.cold_url_resolved.startswith("s3://"):
            return self.s3fs_options()
        return {}

    def s3fs_options(self) -> dict:
        """`s3fs.S3FileSystem(**options)` / fsspec storage options for any s3:// URL: endpoint,
        connect/read timeouts, and one botocore attempt per request. s3fs also retries a call
        itself (`fs.retries`, a class attribute it does not take as an option): pass the
        filesystem to `bound_s3fs_retries(fs)`. Then a hanging endpoint costs one read timeout
        per request, and the store task's retries, bounded by `store_retry_budget_s`, do the
        retrying. Credentials come from the standard AWS_* variables, as s3fs reads them."""
        opts: dict = {
            "config_kwargs": {
                "connect_timeout": self.s3_connect_timeout_s,
                "read_timeout": self.s3_read_timeout_s,
                "retries": {"total_max_attempts": 1, "mode": "standard"},
            },
        }
        if self.s3_endpoint_url:
            opts["client_kwargs"] = {"endpoint_url": self.s3_endpoint_url}
        return opts

    def delta_storage_options(self) -> dict[str, str]:
        """delta-rs (`deltalake`) storage options for an s3:// table: endpoint (plain HTTP
        allowed for loopback/MinIO), conditional put for safe concurrent commits, and the same
        bounds as `s3fs_options()`: object_store's `connect_timeout`, `timeout` (whole request)
        and a retry budget (`retry_timeout`; `max_retries` attempts within it). Values are
        strings, as delta-rs wants them. AWS_* credentials are read from the environment."""
        opts = {
            "conditional_put": "etag",
            "connect_timeout": _duration(self.s3_connect_timeout_s),
            "timeout": _duration(self.s3_connect_timeout_s + self.s3_read_timeout_s),
            "max_retries": "3",
            "retry_timeout": _duration(self.store_retry_budget_s),
        }
        if self.s3_endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
            if self.s3_endpoint_url.startswith("http://"):
                opts["AWS_ALLOW_HTTP"] = "true"
        return opts

    @property
    def cold_url_masked(self) -> str:
        """The lake URL as marketpipe prints it, with endpoint and S3 timeouts when on S3."""
        url = mask_url(self.cold_url_resolved)
        if not url.startswith("s3://"):
            return url
        where = f" (endpoint {mask_url(self.s3_endpoint_url)})" if self.s3_endpoint_url else ""
        return (
            f"{url}{where}; S3 timeouts connect {self.s3_connect_timeout_s:g} s, "
            f"read {self.s3_read_timeout_s:g} s, retry budget {self.store_retry_budget_s:g} s"
        )

    def rate_limit(self, provider: str) -> tuple[int, float]:
        """Requests per window for `provider`: its setting, else its record's default; local
        providers are unlimited."""
        rec = RECORDS.get(provider)
        text = getattr(self, f"{provider}_rate_limit", None) or (rec and rec.default_rate_limit)
        return parse_rate(text) if text else (1_000_000, 1.0)

    @property
    def hot_url_masked(self) -> str:
        return mask_url(self.hot_url_resolved)


S3FS_ATTEMPTS = 1


def bound_s3fs_retries(fs) -> None:
    """Make an s3fs filesystem try each call once (its default is 5 tries, each waiting up to
    the read timeout); other filesystems are left alone."""
    if type(fs).__module__.startswith("s3fs") and hasattr(fs, "retries"):
        fs.retries = S3FS_ATTEMPTS


def _duration(seconds: float) -> str:
    """A duration as object_store parses it (`humantime`): whole milliseconds."""
    return f"{max(1, round(seconds * 1000))}ms"


def _env_name(loc: tuple) -> str:
    field = str(loc[0]) if loc else "?"
    if field in ("polygon_api_key", "POLYGON_API_KEY"):
        return "POLYGON_API_KEY"
    return "MARKETPIPE_" + field.upper()


_DEFAULTS_SOURCES: list = []


def add_defaults_source(fn) -> None:
    """Register `fn() -> {field: value}`: defaults below the environment (e.g. Prefect blocks for
    deployment runs, `blocks.loader`). Registering twice is harmless."""
    if fn not in _DEFAULTS_SOURCES:
        _DEFAULTS_SOURCES.append(fn)


def _env_names(field: str) -> list[str]:
    if field == "polygon_api_key":
        return ["POLYGON_API_KEY", "MARKETPIPE_POLYGON_API_KEY"]
    return ["MARKETPIPE_" + field.upper()]


def _source_defaults() -> dict:
    import os

    out: dict = {}
    for fn in _DEFAULTS_SOURCES:
        out.update(fn() or {})
    env = {k.upper() for k in os.environ}
    return {k: v for k, v in out.items() if not any(n in env for n in _env_names(k))}


def load_settings(**overrides) -> Settings:
    """Read settings now. Raises ConfigError('MARKETPIPE_HOT_DAYS: …') on the first bad value.

    Precedence: `overrides` > environment > registered defaults sources > field defaults.
    """
    try:
        return Settings(**(_source_defaults() | overrides))
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        value = err.get("input")
        name = _env_name(err.get("loc", ()))
        secret = "KEY" in name or isinstance(value, dict) or value is None
        shown = "" if secret else f" (got {mask_url(str(value))[:80]!r})"
        raise ConfigError(f"{name}: {msg}{shown}") from None
