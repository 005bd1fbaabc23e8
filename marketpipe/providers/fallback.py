"""Try sources in order, per symbol: the first that serves bars wins (`bars.source` says which).

A source is skipped for a symbol when it fails fatally (`FatalError`, including
`UnknownSymbolError`), cannot serve the request (`ConfigError`, e.g. Yahoo 1m older than 30 days)
or has no bars for it. `RetryableError` is NOT swallowed: the calling task retries the whole call.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

from marketpipe.errors import ConfigError, FatalError, UnknownSymbolError
from marketpipe.providers._frames import concat_bars, concat_rejected
from marketpipe.providers.base import BarsProvider, BarsQuery, FetchResult

log = logging.getLogger(__name__)


def fetch_with_fallback(providers: list[BarsProvider], query: BarsQuery) -> FetchResult:
    """One `FetchResult` for `query`, each symbol served by the first provider that has its bars.

    A symbol no provider has bars for is in `empty_symbols` if any provider knew it; if every
    provider raised, the error is re-raised (`UnknownSymbolError` when all said unknown).
    """
    if not providers:
        raise ConfigError("fetch_with_fallback needs at least one provider")
    bars, rejected, actions, empty, requests = [], [], [], [], 0
    for symbol in query.symbols:
        sub = replace(query, symbols=(symbol,))
        errors: list[Exception] = []
        served = known_empty = False
        for provider in providers:
            try:
                res = provider.fetch(sub)
            except (FatalError, ConfigError) as exc:
                log.warning("%s: falling back after %s", symbol, exc)
                errors.append(exc)
                continue
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
