"""Retry policy shared by every task that talks to a provider or a store.

`RETRYING`: 5 retries with exponential backoff for transient errors (429/5xx, timeouts, lost
connections, PostgreSQL deadlock/serialization rollbacks). `STORE_RETRYING`: the same, but a store
task also stops retrying once `MARKETPIPE_STORE_RETRY_BUDGET_S` (default 60 s) has passed since its
first try began, and says on the run log what it is waiting for before each retry.
"""

from __future__ import annotations

import threading
import time

from marketpipe.errors import ConfigError, is_retryable

RETRIES = 5
RETRY_JITTER = 0.5
DEFAULT_BACKOFF_S = 2.0


class _Backoff(list):
    """Exponential delays `base * 2**n`, with `base` the `retry_backoff_s` setting
    (`MARKETPIPE_RETRY_BACKOFF_S`, default 2) read each time Prefect asks for a delay -- i.e. when
    a run retries, not at import. The flow validated the setting when it started."""

    def __init__(self, retries: int):
        super().__init__(DEFAULT_BACKOFF_S * 2**n for n in range(retries))

    def __getitem__(self, n):  # type: ignore[override]
        if isinstance(n, slice):
            return [self[i] for i in range(len(self))[n]]
        return _base() * 2 ** range(len(self))[n]


def _base() -> float:
    from marketpipe.settings import load_settings

    try:
        return load_settings().retry_backoff_s
    except ConfigError:  # changed since the run started: keep retrying on the default
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


# [first-try start (monotonic), tries so far] per task run id, while that run keeps failing
_FIRST_TRY: dict[str, list[float]] = {}
_FIRST_TRY_LOCK = threading.Lock()


def _budget_s() -> float:
    from marketpipe.settings import load_settings

    return load_settings().store_retry_budget_s


def retry_within_budget(task, task_run, state) -> bool:
    """`retry_condition_fn` of store tasks: `retry_if_transient`, and only while the next try
    would start within the retry budget (counted from the first try's start)."""
    key = str(task_run.id)
    now = time.monotonic()
    with _FIRST_TRY_LOCK:
        if key not in _FIRST_TRY:  # first failure: the first try began at task_run.start_time
            began = task_run.start_time.timestamp() if task_run.start_time else time.time()
            _FIRST_TRY[key] = [now - max(0.0, time.time() - began), 0]
        entry = _FIRST_TRY[key]
        entry[1] += 1
        first, tries = entry[0], int(entry[1])
    if not retry_if_transient(task, task_run, state):
        _forget(key)
        return False
    budget = _budget_s()
    delay = RETRY_DELAYS[min(tries - 1, len(RETRY_DELAYS) - 1)]
    used = now - first
    error = _error_line(state)
    if used + delay > budget or tries > RETRIES:
        _log(
            f"{task_run.name}: {error}; retry budget of {budget:g} s used up after {tries} "
            f"tr{'y' if tries == 1 else 'ies'} ({used:.1f} s), giving up"
        )
        _forget(key)
        return False
    _log(
        f"{task_run.name}: {error}; retrying in {delay:.1f} s "
        f"({used:.1f} s of the {budget:g} s retry budget used)"
    )
    return True


def _forget(key: str) -> None:
    with _FIRST_TRY_LOCK:
        _FIRST_TRY.pop(key, None)


def _error_line(state) -> str:
    try:
        state.result()
    except Exception as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return "failed"


def _log(message: str) -> None:
    """A warning on the run's log (Prefect's console handler prints it), else on `marketpipe`."""
    import logging

    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning(message)
    except Exception:
        logging.getLogger("marketpipe.retry").warning(message)


STORE_RETRYING = dict(RETRYING, retry_condition_fn=retry_within_budget)
