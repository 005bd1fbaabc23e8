"""HTTP helpers shared by the adapters: status → error class, secret redaction, retry loop."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

from marketpipe.errors import FatalError, ProviderError, RetryableError, is_retryable

T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 425, 429, 499, 500, 502, 503, 504})


class NotFoundError(FatalError):
    """HTTP 404 from a provider (the adapter decides whether that means an unknown symbol)."""


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret (and any `apiKey=…` query value) replaced by `***`."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return re.sub(r"(?i)(api_?key=)[^&\s\"']+", r"\1***", text)


def status_error(
    status: int,
    *,
    provider: str,
    symbol: str | None = None,
    retry_after: float | None = None,
    body: str = "",
) -> ProviderError:
    """Map an HTTP status to our error classes (body excerpt kept short; caller redacts)."""
    snippet = " ".join(body.split())[:120]
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if status == 429:
        wait = f" (retry after {retry_after:g}s)" if retry_after is not None else ""
        return RetryableError(
            f"rate limited, {detail}{wait}",
            retry_after=retry_after,
            provider=provider,
            symbol=symbol,
        )
    if status in RETRYABLE_STATUS or status >= 500:
        return RetryableError(
            f"server error, {detail}", retry_after=retry_after, provider=provider, symbol=symbol
        )
    if status in (401, 403):
        return FatalError(
            f"not authorised ({detail}); check the API key", provider=provider, symbol=symbol
        )
    if status == 404:
        return NotFoundError(f"not found ({detail})", provider=provider, symbol=symbol)
    return FatalError(f"unexpected response {detail}", provider=provider, symbol=symbol)


def call_with_retries(
    fn: Callable[[], T],
    *,
    attempts: int = 3,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn`, retrying `RetryableError`s (waiting `retry_after` when given, else backoff).

    A stand-in for the Prefect task's retries (`retry_condition_fn=is_retryable`), for scripts and
    tests; the rate limiter already spaces requests, this only decides whether to try again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            delay = getattr(exc, "retry_after", None)
            sleep(base_delay * 2 ** (attempt - 1) if delay is None else delay)
    raise AssertionError("unreachable")  # pragma: no cover
