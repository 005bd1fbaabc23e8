"""Polygon (now Massive) REST adapter, through the real `polygon.RESTClient`.

* Every HTTP request — each aggregates page reached through `next_url`, each reference call —
  acquires the provider's `RateLimiter` first: the client's urllib3 `PoolManager` is replaced by
  `_LimitedPool`, whose `urlopen` acquires before sending. The client's own urllib3 `Retry` is off
  (`retries=False`); statuses are classified here (429 → `RetryableError(retry_after)` and the
  limiter is deferred by `Retry-After`; 5xx / timeouts / connection errors → `RetryableError`;
  401/403 → `FatalError`).
* The key travels only in the client's `Authorization: Bearer` header. `next_url`s are followed
  with any `apiKey` query parameter removed, and every error message is redacted.
* Unknown ticker: Polygon answers aggregates for a ticker it does not know with HTTP 200,
  `status: OK` and no results — the same as a known ticker with no bars. So when a symbol has no
  bars we make ONE extra request, `/v3/reference/tickers/{ticker}`: 404 / `status: NOT_FOUND` →
  `UnknownSymbolError`; otherwise it is an empty symbol. An aggregates `status: NOT_FOUND` is
  also `UnknownSymbolError`.
* Prices are raw (`adjusted=false`); a page that says `adjusted: true` contradicts the request
  and fails the fetch with one line (`FatalError`) instead of being stored as raw. Daily `t` is
  midnight America/New_York → the ET session date at 00:00 UTC. Intraday `t` is the true UTC bar
  start.
* Bar starts follow `marketpipe.calendar`: Polygon buckets aggregates on the clock (multiples of
  the bucket since the epoch), which matches the 09:30 open for 1m/5m/15m but not for 1h (09:00,
  10:00, ... ET). So `1h` is fetched as 30-minute aggregates (the largest bucket dividing both the
  hour and the 09:30 offset) and resampled session-aware with `processing.resample` (09:30, 10:30,
  ..., 15:30-16:00); `extended_hours=True` keeps Polygon's native clock-hour buckets.
* Corporate actions: every split/dividend with an ex-date from the query's start on (no upper
  bound: a later split is what `read --adjusted` needs) is returned for storing. Dividend types
  and duplicate split records are handled by `providers._actions` (`CD`/`SC` adjust, others stored
  only; one event reported twice is merged, the duplicate logged and counted in
  `duplicate_actions`).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import urllib3
from pydantic import SecretStr

from marketpipe.errors import (
    ConfigError,
    FatalError,
    ProviderError,
    RetryableError,
    UnknownSymbolError,
)
from marketpipe.processing.resample import resample_bars, session_bins
from marketpipe.providers._actions import dividend_kind, merge_duplicate_splits
from marketpipe.providers._frames import (
    EXCHANGE_TZ,
    bars_frame,
    concat_bars,
    concat_rejected,
    corporate_actions_frame,
    in_range,
    rejected_frame,
    session_midnight_utc,
    to_json_text,
)
from marketpipe.providers._http import NotFoundError, redact, status_error
from marketpipe.providers._polygon_client import HTTPStatus, LimitedRESTClient, strip_api_key
from marketpipe.providers.base import BarsQuery, BaseProvider, FetchResult
from marketpipe.ratelimit import RateLimiter, get_limiter

log = logging.getLogger(__name__)
NAME = "polygon"
TIMESPANS: dict[str, tuple[int, str]] = {
    "1m": (1, "minute"),
    "5m": (5, "minute"),
    "15m": (15, "minute"),
    "1h": (1, "hour"),
    "1d": (1, "day"),
}
# intervals whose Polygon buckets do not start at the calendar's bar starts: (fetch grain, label)
FINER_GRAIN: dict[str, tuple[tuple[int, str], str]] = {"1h": ((30, "minute"), "30m")}
# vendor field -> canonical column
_AGG_FIELDS = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
_OPTIONAL_FIELDS = {"vw": "vwap", "n": "trades"}


class PolygonProvider(BaseProvider):
    """Aggregates (1m/5m/15m/1h/1d, raw) and corporate actions from Polygon's REST API."""

    name = NAME

    def __init__(
        self,
        settings: Any = None,
        *,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        page_limit: int = 50_000,
        include_actions: bool = False,
        extended_hours: bool = False,
        max_rate_limited: int = 0,
    ):
        if api_key is None and settings is not None:
            api_key = settings.polygon_api_key
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ConfigError(
                "polygon needs an API key: set POLYGON_API_KEY (deployment runs: the marketpipe-polygon block)"
            )
        self._key = SecretStr(key)  # only the client header holds it in clear
        self.base_url = (
            base_url or (settings.polygon_base_url if settings else "https://api.polygon.io")
        ).rstrip("/")
        self.limiter = limiter or get_limiter(NAME, settings)
        self.page_limit = page_limit
        self.include_actions = include_actions
        self.extended_hours = extended_hours
        self.max_rate_limited = max(0, int(max_rate_limited))
        self.client = LimitedRESTClient(key, self.base_url, self.limiter, timeout)
        self.duplicate_actions = 0  # duplicate split records merged (see providers._actions)

    # ------------------------------------------------------------------ I/O
    def _call(
        self, symbol: str | None, fn, *args: Any, list_results: bool = True, **kw: Any
    ) -> dict:
        """One HTTP request through the client; returns the decoded JSON object or raises ours.

        A 429 is re-sent here up to `max_rate_limited` times: the limiter was already deferred by
        its Retry-After, so re-sending never exceeds the limit, and a storm of 429s (dozens in a
        row) does not use up the task's few retries, which stay for 5xx / timeouts.
        """
        for _ in range(self.max_rate_limited):
            try:
                return self._call_once(symbol, fn, *args, list_results=list_results, **kw)
            except RetryableError as exc:
                if not getattr(exc, "rate_limited", False):
                    raise
        return self._call_once(symbol, fn, *args, list_results=list_results, **kw)

    def _call_once(
        self, symbol: str | None, fn, *args: Any, list_results: bool = True, **kw: Any
    ) -> dict:
        try:
            resp = fn(*args, raw=True, **kw)
        except HTTPStatus as exc:
            err = status_error(
                exc.status,
                provider=NAME,
                symbol=symbol,
                retry_after=exc.retry_after,
                body=redact(exc.body, self._key.get_secret_value()),
            )
            err.rate_limited = exc.status == 429
            raise err from None
        except urllib3.exceptions.HTTPError as exc:
            raise RetryableError(
                f"connection failed ({type(exc).__name__})", provider=NAME, symbol=symbol
            ) from None
        except ProviderError:
            raise
        try:
            obj = json.loads(resp.data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            kind = resp.headers.get("Content-Type", "?")
            raise FatalError(
                f"unexpected payload (not JSON, content-type {kind}: {type(exc).__name__})",
                provider=NAME,
                symbol=symbol,
            ) from None
        if not isinstance(obj, dict) or (
            list_results and not isinstance(obj.get("results", []), list)
        ):
            raise FatalError(
                "unexpected payload shape (no results list)", provider=NAME, symbol=symbol
            )
        if str(obj.get("status", "OK")).upper() == "ERROR":
            msg = redact(
                str(obj.get("error") or obj.get("message") or "status ERROR"),
                self._key.get_secret_value(),
            )
            raise FatalError(f"provider error: {msg[:160]}", provider=NAME, symbol=symbol)
        return obj

    def _pages(self, symbol: str | None, first) -> list[dict]:
        """The first page (a zero-arg call) and every page reached through `next_url`."""
        pages = [first()]
        while pages[-1].get("next_url"):
            path = strip_api_key(str(pages[-1]["next_url"]))
            pages.append(self._call(symbol, self.client._get, path=path))
        return pages

    def _grain(self, interval: str) -> tuple[tuple[int, str], str]:
        """(Polygon multiplier/timespan to request, interval label of what comes back)."""
        if interval in FINER_GRAIN and not self.extended_hours:
            return FINER_GRAIN[interval]
        return TIMESPANS[interval], interval

    def _agg_pages(self, symbol: str, query: BarsQuery) -> list[dict]:
        (mult, span), _ = self._grain(query.interval)
        pages = self._pages(
            symbol,
            lambda: self._call(
                symbol,
                self.client.get_aggs,
                symbol,
                mult,
                span,
                *_window(query),
                adjusted=False,
                sort="asc",
                limit=self.page_limit,
            ),
        )
        if any(p.get("adjusted") is True for p in pages):
            raise FatalError(
                "aggregates payload says adjusted=true but raw prices (adjusted=false) were "
                "requested; refusing to store adjusted prices as raw",
                provider=NAME,
                symbol=symbol,
            )
        return pages

    def _ticker_known(self, symbol: str) -> bool:
        try:
            obj = self._call(symbol, self.client.get_ticker_details, symbol, list_results=False)
        except NotFoundError:
            return False
        return str(obj.get("status", "OK")).upper() != "NOT_FOUND"

    def extract(self, query: BarsQuery) -> dict[str, Any]:
        """`{"pages": {symbol: [payload, ...]}, "unknown": [...], "actions": [...], "requests": n}`."""
        pages: dict[str, list[dict]] = {}
        unknown: list[str] = []
        requests = 0
        for sym in query.symbols:
            sym_pages = self._agg_pages(sym, query)
            requests += len(sym_pages)
            not_found = any(str(p.get("status", "")).upper() == "NOT_FOUND" for p in sym_pages)
            if not any(p.get("results") for p in sym_pages) and not not_found:
                requests += 1
                not_found = not self._ticker_known(sym)
            if not_found:
                unknown.append(sym)
            pages[sym] = sym_pages
        actions = None
        if self.include_actions:
            actions, n = self._action_pages(list(query.symbols), query.start, None)
            requests += n
        return {"pages": pages, "unknown": unknown, "actions": actions, "requests": requests}

    # ------------------------------------------------------------------ mapping
    def transform(self, raw: dict[str, Any], query: BarsQuery) -> FetchResult:
        if raw["unknown"]:
            sym = raw["unknown"][0]
            raise UnknownSymbolError(
                "unknown ticker (no aggregates, reference lookup not found)",
                provider=NAME,
                symbol=sym,
            )
        frames, rejected, empty = [], [], []
        _, grain = self._grain(query.interval)
        for sym, sym_pages in raw["pages"].items():
            rows = [r for p in sym_pages for r in p.get("results") or []]
            good, bad = self._map_rows(rows, sym, grain)
            fetched = bars_frame(good, symbol=sym, interval=grain, source=NAME)
            if grain != query.interval:
                fetched = resample_bars(fetched, query.interval)  # regular session only
                bad = [{**b, "interval": query.interval} for b in bad]
            bars = in_range(self._session_only(fetched), query.start, query.end)
            if bars.empty and not bad:
                empty.append(sym)
            frames.append(bars)
            rejected.extend(bad)
        actions = raw.get("actions")
        return FetchResult(
            bars=concat_bars(frames),
            rejected=concat_rejected([rejected_frame(rejected)]),
            empty_symbols=empty,
            requests=raw["requests"],
            corporate_actions=self._map_actions(actions) if actions is not None else None,
        )

    def _session_only(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Intraday: keep bars starting inside the session's regular hours `[open, close)` from
        `marketpipe.calendar` (as Yahoo's prepost=False; early closes end at 13:00 ET, and Polygon's
        post-market buckets after that are dropped) unless `extended_hours`."""
        if self.extended_hours or bars.empty or bars["interval"].iloc[0] == "1d":
            return bars
        inside, _ = session_bins(bars["ts"], "1d")
        return bars[inside].reset_index(drop=True)

    @staticmethod
    def _map_rows(
        rows: list[Any], symbol: str, interval: str
    ) -> tuple[list[dict] | pd.DataFrame, list[dict]]:
        clean = _map_clean_rows(rows, interval)  # the usual page: mapped column-wise
        if clean is not None:
            return clean, []
        good, bad = [], []
        for row in rows:
            rec, problem = _map_agg(row, interval)
            if problem:
                ts = row.get("t") if isinstance(row, dict) else None
                bad.append(
                    {
                        "symbol": symbol,
                        "interval": interval,
                        "ts": pd.to_datetime(ts, unit="ms", utc=True, errors="coerce")
                        if _is_num(ts)
                        else None,
                        "source": NAME,
                        "reason": "malformed",
                        "detail": problem,
                        "payload": to_json_text(row),
                    }
                )
            else:
                good.append(rec)
        if interval == "1d" and good:
            ts = session_midnight_utc(pd.Series([r["ts"] for r in good]))
            for rec, t in zip(good, ts, strict=True):
                rec["ts"] = t
        return good, bad

    # ------------------------------------------------------------------ corporate actions
    def _action_pages(self, symbols: list[str], start: date, end: date | None) -> tuple[dict, int]:
        """Split and dividend pages per symbol with ex-dates from `start` (to `end` when given)."""
        out: dict[str, dict[str, list[dict]]] = {}
        n = 0
        upto = {} if end is None else {"lte": end.isoformat()}
        split_bounds = {f"execution_date_{k}": v for k, v in upto.items()}
        div_bounds = {f"ex_dividend_date_{k}": v for k, v in upto.items()}
        for sym in symbols:
            splits = self._pages(
                sym,
                lambda s=sym: self._call(
                    s,
                    self.client.list_splits,
                    ticker=s,
                    execution_date_gte=start.isoformat(),
                    limit=1000,
                    **split_bounds,
                ),
            )
            divs = self._pages(
                sym,
                lambda s=sym: self._call(
                    s,
                    self.client.list_dividends,
                    ticker=s,
                    ex_dividend_date_gte=start.isoformat(),
                    limit=1000,
                    **div_bounds,
                ),
            )
            out[sym] = {"splits": splits, "dividends": divs}
            n += len(splits) + len(divs)
        return out, n

    def _map_actions(self, raw: dict[str, dict[str, list[dict]]]) -> pd.DataFrame:
        rows = []
        for sym, kinds in raw.items():
            for r in (r for p in kinds["splits"] for r in p.get("results") or []):
                try:
                    ratio = float(r["split_to"]) / float(r["split_from"])
                    rows.append(
                        {
                            "symbol": sym,
                            "ex_date": r["execution_date"],
                            "kind": "split",
                            "value": ratio,
                            "source": NAME,
                        }
                    )
                except (KeyError, TypeError, ValueError, ZeroDivisionError):
                    log.warning(
                        "polygon %s: skipping malformed split %s", sym, to_json_text(r)[:200]
                    )
            for r in (r for p in kinds["dividends"] for r in p.get("results") or []):
                try:
                    rows.append(
                        {
                            "symbol": sym,
                            "ex_date": r["ex_dividend_date"],
                            "kind": dividend_kind(r.get("dividend_type")),
                            "value": float(r["cash_amount"]),
                            "source": NAME,
                        }
                    )
                except (KeyError, TypeError, ValueError):
                    log.warning(
                        "polygon %s: skipping malformed dividend %s", sym, to_json_text(r)[:200]
                    )
        merged, dropped = merge_duplicate_splits(corporate_actions_frame(rows), NAME)
        self.duplicate_actions += len(dropped)
        return merged

    def fetch_corporate_actions(
        self, symbols: list[str] | tuple[str, ...], start: date, end: date
    ) -> pd.DataFrame:
        """Splits (value = split_to/split_from) and dividends with ex-dates in [start, end]."""
        raw, _ = self._action_pages(list(symbols), start, end)
        return self._map_actions(raw)


def _window(query: BarsQuery) -> tuple[str, str] | tuple[int, int]:
    """Aggregates `from`/`to`: dates for daily bars; for intraday, Unix ms spanning the ET dates."""
    if query.interval == "1d":
        return query.start.isoformat(), query.end.isoformat()
    first = pd.Timestamp(query.start, tz=EXCHANGE_TZ)
    after = pd.Timestamp(query.end, tz=EXCHANGE_TZ) + pd.Timedelta(days=1)
    return int(first.timestamp() * 1000), int(after.timestamp() * 1000) - 1


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _map_agg(row: Any, interval: str) -> tuple[dict | None, str | None]:
    """One aggregate → canonical record, or (None, why it cannot be mapped)."""
    if not isinstance(row, dict):
        return None, "row is not an object"
    missing = [k for k in ("t", *_AGG_FIELDS) if row.get(k) is None]
    if missing:
        return None, f"missing field(s) {', '.join(_canonical(k) for k in missing)}"
    bad = [k for k in ("t", *_AGG_FIELDS) if not _is_num(row[k])]
    if bad:
        return None, f"non-numeric {', '.join(_canonical(k) for k in bad)}"
    rec: dict[str, Any] = {"ts": pd.Timestamp(int(row["t"]), unit="ms", tz="UTC")}
    rec.update({canon: float(row[k]) for k, canon in _AGG_FIELDS.items()})
    for k, canon in _OPTIONAL_FIELDS.items():
        rec[canon] = float(row[k]) if _is_num(row.get(k)) else None
    return rec, None


def _map_clean_rows(rows: list[Any], interval: str) -> pd.DataFrame | None:
    """The mapped frame of a page whose every row has finite numeric t/o/h/l/c/v, built
    column-wise (the values `_map_agg` gives row by row); None when any row needs the row-wise
    path."""
    if not rows or not all(type(r) is dict for r in rows):
        return None
    df = pd.DataFrame(rows)
    need = ["t", *_AGG_FIELDS]
    for k in need:
        if k not in df or df[k].dtype.kind not in "if" or not np.isfinite(df[k]).all():
            return None
    ts = pd.Series(pd.to_datetime(df["t"].astype("int64"), unit="ms", utc=True))
    if interval == "1d":
        ts = session_midnight_utc(ts)
    out = {"ts": ts}
    for k, canon in _AGG_FIELDS.items():
        out[canon] = df[k].astype("float64")
    for k, canon in _OPTIONAL_FIELDS.items():
        col = pd.to_numeric(df[k], errors="coerce") if k in df else None
        if col is None or col.dtype.kind not in "if":
            out[canon] = pd.Series(np.nan, index=df.index)
        else:
            out[canon] = col.astype("float64").where(np.isfinite(col.astype("float64")))
    return pd.DataFrame(out, copy=False)


def _canonical(field: str) -> str:
    return "ts" if field == "t" else _AGG_FIELDS.get(field, field)
