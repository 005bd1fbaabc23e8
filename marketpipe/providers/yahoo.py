"""Yahoo Finance adapter through `yfinance` (its own request and chart-parsing code).

* `yf.config.debug.hide_exceptions = False`: yfinance raises instead of logging and returning an
  empty frame. `YFRateLimitError` → `RetryableError`; `YFTzMissingError` (Yahoo has no such
  ticker, so no exchange timezone) → `UnknownSymbolError`; `YFPricesMissingError` once the ticker
  is known (e.g. a weekend) → that chunk is empty, not an error.
* Every HTTP request yfinance makes (cookie, crumb, chart) goes through the session's `request`,
  which we wrap to acquire the provider's `RateLimiter` first. A chart response with 429 or 5xx
  is raised as `RetryableError` at once (Retry-After deferring the limiter) rather than letting
  yfinance re-request with another cookie strategy.
* Raw prices: `auto_adjust=False` gives OHLC that are NOT dividend-adjusted but ARE
  split-adjusted as of the fetch date (Yahoo serves no unadjusted history: AAPL's close on
  2020-08-28, 499.23 on the tape, comes back as 124.8075). With `unadjust_splits=True` (default)
  we undo that: one extra daily request per symbol fetches the split events from the day after
  the range to today, and every bar is multiplied by the product of the ratios of splits with a
  later ex-date (volume divided), so stored bars are raw like every other source. Dividend
  amounts, split-adjusted by Yahoo too, are scaled back the same way. Every split and dividend
  event the responses carry (`actions=True`, and the later events of the extra request) comes
  back in `FetchResult.corporate_actions`, whatever the requested range, so ingestion stores them
  all and `read --adjusted` can undo a split that happened after the ingested range.
* Intraday ranges are split into requests within Yahoo's limits (1m: 7 days per request, only the
  last 30 days; 5m/15m: 59 days, last 60 days; 1h: 729 days, last 730 days); a range Yahoo cannot
  serve at all is refused with `ConfigError` before any request.
* Daily bars: Yahoo stamps them at the session's exchange-local midnight → ET date at 00:00 UTC.
  Intraday: the bar start converted to UTC.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from marketpipe import metrics
from marketpipe.calendar import daily_bar_start, exchange_date, session_dates
from marketpipe.errors import ConfigError, FatalError, RetryableError, UnknownSymbolError
from marketpipe.providers._frames import (
    EXCHANGE_TZ,
    bars_frame,
    concat_bars,
    corporate_actions_frame,
    in_range,
    rejected_frame,
    split_factor,
    to_json_text,
    undo_split_adjustment,
)
from marketpipe.providers._http import status_error
from marketpipe.providers.base import BarsQuery, BaseProvider, FetchResult
from marketpipe.ratelimit import RateLimiter, get_limiter, parse_retry_after

NAME = "yahoo"
# interval -> (days of history Yahoo keeps, calendar days per request)
INTRADAY_LIMITS: dict[str, tuple[int, int]] = {
    "1m": (30, 7),
    "5m": (60, 59),
    "15m": (60, 59),
    "1h": (730, 729),
}
_VENDOR_COLUMNS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Volume": "volume",
}
_CHART_RE = re.compile(r"/v8/finance/chart/([^/?#]+)")


def plan_chunks(interval: str, start: date, end: date, today: date) -> list[tuple[date, date]]:
    """Inclusive date chunks for one symbol, or ConfigError when Yahoo cannot serve the range."""
    if interval not in INTRADAY_LIMITS:
        return [(start, end)]
    keep, per_request = INTRADAY_LIMITS[interval]
    oldest = today - timedelta(days=keep - 1)
    if start < oldest:
        raise ConfigError(
            f"yahoo serves {interval} bars only for the last {keep} days (from {oldest}); "
            f"start {start} is older — use a coarser interval or another source"
        )
    chunks, cur = [], start
    while cur <= end:
        last = min(cur + timedelta(days=per_request - 1), end)
        chunks.append((cur, last))
        cur = last + timedelta(days=1)
    return chunks


class YahooProvider(BaseProvider):
    """Bars (raw = not dividend-adjusted; see module doc) and split/dividend events from Yahoo."""

    name = NAME

    def __init__(
        self,
        settings: Any = None,
        *,
        session: Any = None,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        today: Callable[[], date] | None = None,
        unadjust_splits: bool = True,
    ):
        import yfinance as yf

        yf.config.debug.hide_exceptions = False
        if session is None:
            from yfinance._http import new_session

            session = new_session()
        self.limiter = limiter or get_limiter(NAME, settings)
        self.session = _limit_session(session, self.limiter)
        self.timeout = timeout
        self.unadjust_splits = unadjust_splits
        self._today = today or exchange_date

    # ------------------------------------------------------------------ I/O
    def _history(self, symbol: str, interval: str, start: date, end: date) -> pd.DataFrame:
        import yfinance as yf
        from yfinance.exceptions import YFPricesMissingError, YFRateLimitError, YFTzMissingError

        ticker = yf.Ticker(symbol, session=self.session)
        try:
            return ticker.history(
                start=start.isoformat(),
                end=(end + timedelta(days=1)).isoformat(),
                interval=interval,
                auto_adjust=False,
                actions=True,
                prepost=False,
                repair=False,
                keepna=False,
                timeout=self.timeout,
            )
        except UnknownSymbolError:
            raise
        except RetryableError as exc:
            raise RetryableError(
                str(exc).split(": ", 1)[-1],
                retry_after=exc.retry_after,
                provider=NAME,
                symbol=symbol,
            ) from None
        except YFRateLimitError:
            raise RetryableError(
                "rate limited (HTTP 429)",
                retry_after=self.session.last_retry_after,
                provider=NAME,
                symbol=symbol,
            ) from None
        except YFTzMissingError:
            raise UnknownSymbolError(
                "unknown ticker (Yahoo has no exchange timezone for it)",
                provider=NAME,
                symbol=symbol,
            ) from None
        except YFPricesMissingError:
            return pd.DataFrame()
        except Exception as exc:
            if _is_transport_error(exc):
                raise RetryableError(
                    f"connection failed ({type(exc).__name__})", provider=NAME, symbol=symbol
                ) from None
            raise FatalError(
                f"unexpected payload ({type(exc).__name__}: {str(exc)[:160]})",
                provider=NAME,
                symbol=symbol,
            ) from None

    def extract(self, query: BarsQuery) -> dict[str, Any]:
        """`{"frames": {symbol: [yfinance history frame per chunk]}, "requests": n}`."""
        chunks = plan_chunks(query.interval, query.start, query.end, self._today())
        before = self.session.request_count
        frames = {
            sym: [self._history(sym, query.interval, a, b) for a, b in chunks]
            for sym in query.symbols
        }
        later: dict[str, pd.DataFrame] = {}
        after, today = query.end + timedelta(days=1), self._today()
        if self.unadjust_splits and after <= today:
            # one daily request per symbol for split events after the range (Yahoo has applied them)
            later = {sym: self._history(sym, "1d", after, today) for sym in query.symbols}
        return {
            "frames": frames,
            "later": later,
            "requests": self.session.request_count - before,
        }

    # ------------------------------------------------------------------ mapping
    def transform(self, raw: dict[str, Any], query: BarsQuery) -> FetchResult:
        bars, rejected, actions, empty = [], [], [], []
        for sym, chunk_frames in raw["frames"].items():
            good, sym_bad = [], []
            for df in chunk_frames:
                g, b, a = _map_frame(df, sym, query.interval)
                good.append(g)
                sym_bad.extend(b)
                actions.extend(a)
            mapped = pd.concat([g for g in good if len(g)] or [pd.DataFrame()], ignore_index=True)
            frame = in_range(
                bars_frame(mapped, symbol=sym, interval=query.interval, source=NAME),
                query.start,
                query.end,
            )
            frame = frame.drop_duplicates(
                ["symbol", "interval", "ts"], keep="last", ignore_index=True
            )
            _, _, later = _map_frame(raw.get("later", {}).get(sym), sym, "1d")
            later = [a for a in later if a["ex_date"] > query.end]
            if self.unadjust_splits:
                events = [a for a in actions if a["symbol"] == sym and a["ex_date"] <= query.end]
                events += later
                splits = sorted(
                    {(a["ex_date"], a["value"]) for a in events if a["kind"] == "split"}
                )
                frame = undo_split_adjustment(frame, splits)
                for a in [*actions, *later]:
                    if a["symbol"] == sym and a["kind"] == "dividend":
                        a["value"] *= split_factor(a["ex_date"], splits)
            actions.extend(later)
            if frame.empty and not sym_bad:
                empty.append(sym)
            bars.append(frame)
            rejected.extend(sym_bad)
        # every action seen is stored, whatever the requested range: the split Yahoo applied
        # after the range is what `read --adjusted` needs to adjust the raw bars stored here
        ca = corporate_actions_frame(actions)
        ca = ca.drop_duplicates(["symbol", "ex_date", "kind"], ignore_index=True)
        return FetchResult(
            bars=concat_bars(bars),
            rejected=rejected_frame(rejected),
            empty_symbols=empty,
            requests=raw["requests"],
            corporate_actions=ca,
        )

    def fetch_corporate_actions(
        self, symbols: list[str] | tuple[str, ...], start: date, end: date
    ) -> pd.DataFrame:
        """Splits (ratio) and dividends (cash; raw when `unadjust_splits`) with ex-dates in [start, end]."""
        ca = self.fetch(BarsQuery(tuple(symbols), "1d", start, end)).corporate_actions
        keep = (ca["ex_date"] >= start) & (ca["ex_date"] <= end)
        return ca[keep].reset_index(drop=True)


def _map_frame(
    df: pd.DataFrame | None, symbol: str, interval: str
) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """(mapped bars, rejected rows, split/dividend events) of one yfinance frame, column-wise:
    only the rare rejected rows and events become Python records."""
    if df is None or df.empty:
        return pd.DataFrame(), [], []
    idx = pd.DatetimeIndex(df.index)
    idx = idx.tz_localize(EXCHANGE_TZ) if idx.tz is None else idx
    if interval == "1d":
        ts = pd.DatetimeIndex(daily_bar_start(pd.Series(idx)))
    else:
        ts = idx.tz_convert("UTC")
    ts = pd.Series(ts, dtype=ts.dtype).reset_index(drop=True)
    values = pd.DataFrame(
        {
            canon: pd.to_numeric(df[col].reset_index(drop=True), errors="coerce")
            if col in df.columns
            else np.nan
            for col, canon in _VENDOR_COLUMNS.items()
        },
        index=ts.index,
    ).astype("float64")
    missing = values.isna().to_numpy()
    bad_rows = missing.any(axis=1)
    good = values.loc[~bad_rows].assign(ts=ts.loc[~bad_rows])
    bad = []
    for i in np.flatnonzero(bad_rows):  # rejected rows only (each needs its own payload)
        row = df.iloc[i]
        names = [c for c, gone in zip(values.columns, missing[i], strict=True) if gone]
        bad.append(
            {
                "symbol": symbol,
                "interval": interval,
                "ts": ts.iloc[i],
                "source": NAME,
                "reason": "malformed",
                "detail": f"missing field(s) {', '.join(names)}",
                "payload": to_json_text({k: (None if pd.isna(v) else v) for k, v in row.items()}),
            }
        )
    sessions = session_dates(pd.DatetimeIndex(ts), interval)
    actions = []
    for col, kind in (("Stock Splits", "split"), ("Dividends", "dividend")):
        if col not in df.columns:
            continue
        amounts = pd.to_numeric(df[col].reset_index(drop=True), errors="coerce").fillna(0.0)
        for i in np.flatnonzero(amounts.to_numpy() != 0):  # event rows only
            ex_date = sessions[i].astype("datetime64[D]").item()
            actions.append(
                {
                    "symbol": symbol,
                    "ex_date": ex_date,
                    "kind": kind,
                    "value": float(amounts.iloc[i]),
                    "source": NAME,
                }
            )
    return good, bad, actions


def _is_transport_error(exc: Exception) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(
        names
        & {
            "ConnectionError",
            "Timeout",
            "ConnectTimeout",
            "ReadTimeout",
            "TimeoutError",
            "ChunkedEncodingError",
            "RemoteDisconnected",
            "CurlError",
        }
    )


def _limit_session(session: Any, limiter: RateLimiter) -> Any:
    """Wrap `session.request` (requests and curl_cffi route `get`/`post` through it) once."""
    if getattr(session, "_marketpipe_limited", False):
        session.limiter = limiter
        return session
    original = session.request
    counter_lock = threading.Lock()
    session.limiter = limiter
    session.request_count = 0
    session.last_retry_after = None

    def request(method: str, url: str, *args: Any, **kwargs: Any):
        session.limiter.acquire()
        with counter_lock:
            session.request_count += 1
        try:
            resp = original(method, url, *args, **kwargs)
        except Exception:
            metrics.provider_request(NAME, "error")
            raise
        status = int(getattr(resp, "status_code", 200))
        metrics.provider_request(NAME, "ok" if status == 200 else status)
        chart = _CHART_RE.search(url)
        if (
            status == 404 and chart
        ):  # Yahoo: 404 + chart.error "No data found, symbol may be delisted"
            raise UnknownSymbolError(
                "unknown ticker (chart: not found)", provider=NAME, symbol=chart.group(1)
            )
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            session.last_retry_after = retry_after
            if status == 429:
                session.limiter.defer(retry_after)
            if chart:
                raise status_error(
                    status, provider=NAME, symbol=chart.group(1), retry_after=retry_after
                )
        return resp

    session.request = request
    session._marketpipe_limited = True
    return session
