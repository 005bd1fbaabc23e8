"""Settings from `MARKETPIPE_*` environment variables (pydantic-settings).

Call `load_settings()` when a command or flow starts -- never at import. An invalid value raises
`ConfigError` whose message is one line naming the variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from marketpipe.errors import ConfigError

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
HOT_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")
COLD_SCHEMES = ("file", "local", "s3", "memory")


def parse_rate(text: str) -> tuple[int, float]:
    """'5/min' -> (5, 60.0); '100/10s' -> (100, 10.0). Raises ValueError."""
    m = _RATE_RE.match(text)
    if not m:
        raise ValueError(f"rate limit {text!r} is not like '5/min', '100/s' or '300/10min'")
    count, mult, unit = int(m.group(1)), m.group(2), m.group(3).lower()
    if count <= 0:
        raise ValueError("rate limit count must be > 0")
    return count, float(int(mult or 1) * _PERIOD_SECONDS[unit])


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
    polygon_rate_limit: str = "5/min"
    yahoo_rate_limit: str = "60/min"
    # cross-process provider limits through Prefect: auto = only for deployment runs (workers)
    global_rate_limits: Literal["auto", "on", "off"] = "auto"
    polygon_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("POLYGON_API_KEY", "MARKETPIPE_POLYGON_API_KEY")
    )
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    default_symbols: str = "AAPL,MSFT,SPY"

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
        return v

    @field_validator("cold_url")
    @classmethod
    def _cold_scheme(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if "://" in v:
            scheme = v.split("://", 1)[0].lower()
            if scheme not in COLD_SCHEMES:
                raise ValueError(
                    f"unknown scheme {scheme!r}; use a local path, file://… or s3://bucket/prefix"
                )
        return v.rstrip("/")

    @field_validator("polygon_rate_limit", "yahoo_rate_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        parse_rate(v)
        return v

    # ---- derived values -------------------------------------------------------------------
    @property
    def hot_url_resolved(self) -> str:
        return self.hot_url or f"sqlite:///{self.data_dir / 'hot.db'}"

    @property
    def cold_url_resolved(self) -> str:
        return self.cold_url or str(self.data_dir / "lake")

    @property
    def storage_options(self) -> dict:
        """fsspec storage options for the cold lake (s3fs reads AWS_* from the environment)."""
        if self.cold_url_resolved.startswith("s3://") and self.s3_endpoint_url:
            return {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}}
        return {}

    def rate_limit(self, provider: str) -> tuple[int, float]:
        text = {"polygon": self.polygon_rate_limit, "yahoo": self.yahoo_rate_limit}.get(provider)
        return parse_rate(text) if text else (1_000_000, 1.0)

    @property
    def hot_url_masked(self) -> str:
        return mask_url(self.hot_url_resolved)


def mask_url(url: str) -> str:
    """The URL with any password replaced by '***' (safe to print or log)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _env_name(loc: tuple) -> str:
    field = str(loc[0]) if loc else "?"
    if field in ("polygon_api_key", "POLYGON_API_KEY"):
        return "POLYGON_API_KEY"
    return "MARKETPIPE_" + field.upper()


def load_settings(**overrides) -> Settings:
    """Read settings now. Raises ConfigError('MARKETPIPE_HOT_DAYS: …') on the first bad value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        value = err.get("input")
        name = _env_name(err.get("loc", ()))
        secret = "KEY" in name or isinstance(value, dict) or value is None
        shown = "" if secret else f" (got {mask_url(str(value))[:80]!r})"
        raise ConfigError(f"{name}: {msg}{shown}") from None
