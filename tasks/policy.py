"""Retry policy shared by every task that talks to a provider or a store."""

from __future__ import annotations

import os

from prefect.tasks import exponential_backoff

from marketpipe.errors import is_retryable

RETRIES = 5
# Prefect fixes a task's retry delays when the task is defined (at import), so this one knob is
# read from the environment then: MARKETPIPE_RETRY_BACKOFF_S (seconds, default 2; tests use ~0.1).
BACKOFF_FACTOR = float(os.environ.get("MARKETPIPE_RETRY_BACKOFF_S", "2") or 2)
RETRY_DELAYS = exponential_backoff(backoff_factor=BACKOFF_FACTOR)
RETRY_JITTER = 0.5


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
