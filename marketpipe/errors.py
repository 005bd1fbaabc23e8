"""Exception classes shared by every layer.

`RetryableError` is what tasks retry (429, 5xx, timeouts, dropped connections); `FatalError`
fails fast with one clear line. The CLI prints `str(exc)` of any `MarketpipeError` without a traceback.
"""

from __future__ import annotations


class MarketpipeError(Exception):
    """Base class; `str()` is one line a user can act on."""


class ConfigError(MarketpipeError):
    """An invalid setting or command-line value."""


class ContractError(MarketpipeError):
    """A frame cannot be checked at all (missing columns, wrong shape) -- rejected before any write."""


class StoreError(MarketpipeError):
    """A storage tier failed."""


class ServiceUnavailable(StoreError):
    """A required service (PostgreSQL, S3) cannot be reached."""


class WriteConflict(StoreError):
    """PostgreSQL rolled a transaction back to break a deadlock or a serialization conflict
    (SQLSTATE in `RETRYABLE_SQLSTATES`): nothing of it was written, and trying again is safe."""


# the one list of SQLSTATEs that mean "rolled back because of a concurrent transaction; retry"
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def is_retryable_sqlstate(state: str | None) -> bool:
    """True for a SQLSTATE whose transaction is worth running again (see `RETRYABLE_SQLSTATES`)."""
    return state is not None and state.upper() in RETRYABLE_SQLSTATES


class ProviderError(MarketpipeError):
    """A provider failed. `provider` and `symbol` name what failed."""

    def __init__(self, message: str, *, provider: str = "", symbol: str | None = None):
        self.provider = provider
        self.symbol = symbol
        prefix = provider + (f" {symbol}" if symbol else "")
        super().__init__(f"{prefix}: {message}" if prefix else message)


class RetryableError(ProviderError):
    """Transient: rate limited, 5xx, timeout, connection reset. Safe to retry after `retry_after` s."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        self.retry_after = retry_after
        super().__init__(message, **kw)


class FatalError(ProviderError):
    """Permanent: bad credentials, unknown symbol, unexpected payload shape. Never retried."""


class UnknownSymbolError(FatalError):
    """The provider does not know this symbol (distinct from a known symbol with no bars)."""


def is_retryable(exc: BaseException) -> bool:
    """True for errors worth retrying (used by Prefect `retry_condition_fn`)."""
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, FatalError | ConfigError | ContractError):
        return False
    # connection-level failures from drivers / network stacks
    return isinstance(exc, ConnectionError | TimeoutError | ServiceUnavailable | WriteConflict)
