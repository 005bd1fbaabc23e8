"""The Polygon `RESTClient` wired for strict pacing: every HTTP request acquires the limiter.

`_LimitedPool` replaces the client's urllib3 `PoolManager`: `urlopen` acquires the provider's
`RateLimiter` before each request (redirects included), urllib3's own `Retry` is off, and any
non-200 is raised as `HTTPStatus` (status, Retry-After, body) for the adapter to classify; a 429
defers the limiter by its Retry-After.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

import certifi
import urllib3
from polygon import RESTClient

from marketpipe import metrics
from marketpipe.ratelimit import RateLimiter, parse_retry_after


class HTTPStatus(Exception):
    def __init__(self, status: int, retry_after: float | None, body: str):
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after, self.body = status, retry_after, body


class _LimitedPool(urllib3.PoolManager):
    """A PoolManager whose every request acquires the limiter and whose non-200s raise."""

    def __init__(self, limiter: RateLimiter, timeout: urllib3.Timeout, **kw: Any):
        super().__init__(**kw)
        self.limiter = limiter
        self._timeout = timeout

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any):  # type: ignore[override]
        self.limiter.acquire(hold=True)  # held until the answer (settle below)
        kw.setdefault("timeout", self._timeout)
        try:
            resp = super().urlopen(method, url, redirect=redirect, **kw)
        except Exception:
            metrics.provider_request("polygon", "error")
            raise
        finally:
            self.limiter.settle()  # the slot counts from the answer (server-side arrival ≤ it)
        metrics.provider_request("polygon", "ok" if resp.status == 200 else resp.status)
        if resp.status != 200 and not (redirect and resp.get_redirect_location()):
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if resp.status == 429:
                self.limiter.defer(retry_after)
            raise HTTPStatus(resp.status, retry_after, resp.data.decode("utf-8", "replace"))
        return resp


class LimitedRESTClient(RESTClient):
    """`RESTClient` with urllib3 retries off and a rate-limited connection pool."""

    def __init__(self, api_key: str, base: str, limiter: RateLimiter, timeout: float):
        super().__init__(
            api_key=api_key,
            base=base.rstrip("/"),
            retries=0,
            connect_timeout=timeout,
            read_timeout=timeout,
            pagination=False,
            trace=False,
        )
        self.client = _LimitedPool(
            limiter,
            self.timeout,
            num_pools=10,
            headers=self.headers,
            ca_certs=certifi.where(),
            cert_reqs="CERT_REQUIRED",
            retries=False,
        )


def strip_api_key(next_url: str) -> str:
    """Path + query of a `next_url`, without any `apiKey` parameter (the header authenticates)."""
    parsed = urlparse(next_url)
    query = [
        (k, v) for k, v in parse_qsl(parsed.query, keep_blank_values=True) if k.lower() != "apikey"
    ]
    return parsed.path + (f"?{urlencode(query)}" if query else "")
