"""Try sources in order, per symbol: the first that serves bars wins (`bars.source` says which).

A source is skipped for a symbol when it fails fatally (`FatalError`, including
`UnknownSymbolError`), cannot serve the request (`ConfigError`, e.g. Yahoo 1m older than 30 days)
or has no bars for it. `RetryableError` is NOT swallowed: the calling task retries the whole call. With circuit
breakers (what `fetch_from` passes for several sources), consecutive failures of a provider open
its circuit and it is skipped for a cool-down (`marketpipe.providers.circuit`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

from marketpipe.errors import ConfigError, FatalError, RetryableError, UnknownSymbolError
from marketpipe.providers._frames import concat_bars, concat_rejected
from marketpipe.providers.base import BarsProvider, BarsQuery, FetchResult
from marketpipe.providers.circuit import CircuitBreakers, counts_as_failure

log = logging.getLogger(__name__)


def fetch_with_fallback(
    providers: list[BarsProvider], query: BarsQuery, breakers: CircuitBreakers | None = None
) -> FetchResult:
    """One `FetchResult` for `query`, each symbol served by the first provider that has its bars.

    A symbol no provider has bars for is in `empty_symbols` if any provider knew it; if every
    provider raised, the error is re-raised (`UnknownSymbolError` when all said unknown).
    With `breakers`, a provider whose circuit is open is skipped (`marketpipe.providers.circuit`);
    when every provider's circuit is open, a `RetryableError` says when the first one reopens.
    """
    if not providers:
        raise ConfigError("fetch_with_fallback needs at least one provider")
    bars, rejected, actions, empty, requests = [], [], [], [], 0
    for symbol in query.symbols:
        sub = replace(query, symbols=(symbol,))
        errors: list[Exception] = []
        served = known_empty = False
        tried = 0
        for i, provider in enumerate(providers):
            name = getattr(provider, "name", type(provider).__name__)
            if breakers is not None and not breakers.allow(name):
                continue
            tried += 1
            try:
                res = provider.fetch(sub)
            except (FatalError, ConfigError, RetryableError) as exc:
                if breakers is not None and counts_as_failure(exc):
                    nxt = next((getattr(p, "name", "?") for p in providers[i + 1 :]), None)
                    breakers.failure(name, exc, fallback=nxt)
                if isinstance(exc, RetryableError):
                    raise  # the calling task retries the whole call
                log.warning("%s: falling back after %s", symbol, exc)
                errors.append(exc)
                continue
            if breakers is not None:
                breakers.success(name)
            requests += res.requests
            if res.rejected is not None and len(res.rejected):
                rejected.append(res.rejected)
            if res.bars.empty:
                known_empty = True
                continue
            bars.append(res.bars)
            if res.corporate_actions is not None and len(res.corporate_actions):
                actions.append(res.corporate_actions)
            served = True
            break
        if served:
            continue
        if tried == 0:
            wait = min(breakers.retry_in(getattr(p, "name", "?")) for p in providers)
            raise RetryableError(
                f"every source's circuit is open; next probe in {wait:.0f} s",
                provider="fallback",
                symbol=symbol,
                retry_after=wait,
            )
        if known_empty:
            empty.append(symbol)
        elif errors:
            if all(isinstance(e, UnknownSymbolError) for e in errors):
                raise UnknownSymbolError(
                    "unknown to every source", provider="fallback", symbol=symbol
                )
            detail = "; ".join(str(e) for e in errors)
            raise FatalError(
                f"no source could serve it ({detail})", provider="fallback", symbol=symbol
            )
    return FetchResult(
        bars=concat_bars(bars),
        rejected=concat_rejected(rejected),
        empty_symbols=empty,
        requests=requests,
        corporate_actions=pd.concat(actions, ignore_index=True) if actions else None,
    )
