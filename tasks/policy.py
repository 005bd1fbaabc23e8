"""Retry policy shared by every task that talks to a provider or a store."""

from __future__ import annotations

import os

from marketpipe.errors import is_retryable

RETRIES = 5
RETRY_JITTER = 0.5
DEFAULT_BACKOFF_S = 2.0


class _Backoff(list):
    """Exponential delays `base * 2**n`, with `base` read from `MARKETPIPE_RETRY_BACKOFF_S` (default 2)
    each time Prefect asks for a delay -- i.e. when a run retries, not at import."""

    def __init__(self, retries: int):
        super().__init__(DEFAULT_BACKOFF_S * 2**n for n in range(retries))

    def __getitem__(self, n):  # type: ignore[override]
        if isinstance(n, slice):
            return [self[i] for i in range(len(self))[n]]
        return _base() * 2 ** range(len(self))[n]


def _base() -> float:
    try:
        return max(0.0, float(os.environ.get("MARKETPIPE_RETRY_BACKOFF_S", DEFAULT_BACKOFF_S)))
    except ValueError:
        return DEFAULT_BACKOFF_S


RETRY_DELAYS = _Backoff(RETRIES)


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect `retry_condition_fn`: retry 429/5xx/timeouts/lost connections, never fatal errors."""
    try:
        state.result()
    except Exception as exc:  # the task's own exception, re-raised by the failed state
        return is_retryable(exc)
    return False


RETRYING = dict(
    retries=RETRIES,
    retry_delay_seconds=RETRY_DELAYS,
    retry_jitter_factor=RETRY_JITTER,
    retry_condition_fn=retry_if_transient,
)
