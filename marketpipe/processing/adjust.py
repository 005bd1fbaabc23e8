"""Back-adjustment for splits and cash dividends (CRSP style), applied at read time only.

Raw prices are never modified in storage; `adjust_bars` returns a new frame.

Conventions (corporate actions per docs/ARCHITECTURE.md: `symbol, ex_date, kind, value, source`)
--------------------------------------------------------------------------------------------------
* A bar is *before* an ex-date `E` when its session date is strictly earlier than `E` (session
  date: the exchange-local date for intraday bars, the UTC date of `ts` for daily bars).
* Split, `value = r` = shares after / shares before (4-for-1 -> 4.0, 1-for-10 reverse -> 0.1):
  bars before `E` get prices x `1/r` and volume x `r`.
* Cash dividend, `value = D` (raw cash per share): bars before `E` get prices x `(1 - D / P)`,
  where `P` is the raw close of the session just before `E` (the last XNYS session before `E`) in
  the same `(symbol, interval)` series (for intraday bars: that session's last intraday close). If
  a split shares the ex-date, `P` is first divided by the split ratio so both are per post-split
  share. When that session's bar is not among the bars given (e.g. only January is stored and
  the dividend is in November), the dividend cannot be measured: its factor is NaN in the events
  table and it adjusts nothing (a stale close from weeks earlier, possibly before a split, would
  give a wrong factor).
* Dividend kinds: `dividend` (regular cash; Polygon `CD`, Yahoo's dividends) and
  `special_dividend` (Polygon `SC`) adjust; on the same ex-date their cash is added. Every other
  kind starting with `dividend_` (e.g. `dividend_lt`, `dividend_st`: Polygon's long/short-term
  capital-gain distributions) is stored but adjusts nothing. Any other kind is an error.
* Factors compound multiplicatively back in time: a bar's factor is the product of the factors of
  every event with ex-date after the bar's session date.
* `open, high, low, close, vwap` are multiplied by the price factor, `volume` by the volume factor;
  `trades` is left alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketpipe.action_kinds import ADJUSTING_KINDS, STORED_ONLY_PREFIX
from marketpipe.calendar import get_calendar
from marketpipe.calendar import session_labels as session_dates

PRICE_ADJUSTED: tuple[str, ...] = ("open", "high", "low", "close", "vwap")
NON_ADJUSTING_PREFIX = STORED_ONLY_PREFIX  # stored, never applied (e.g. capital-gain distributions)
FACTOR_COLUMNS: tuple[str, ...] = (
    "symbol",
    "interval",
    "ex_date",
    "kind",
    "value",
    "close_prev",
    "price_factor",
    "volume_factor",
)


def _day(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).dt.tz_localize(None).astype("datetime64[ns]").dt.normalize()


def _last_close_per_session(bars: pd.DataFrame) -> pd.DataFrame:
    day = session_dates(bars["ts"], bars["interval"]).astype("datetime64[ns]")
    frame = pd.DataFrame(
        {"symbol": bars["symbol"], "interval": bars["interval"], "day": day, "ts": bars["ts"]}
    ).assign(close=bars["close"].astype("float64"))
    frame = frame.sort_values(["ts"], kind="mergesort")
    return frame.groupby(["symbol", "interval", "day"], as_index=False, observed=True)[
        "close"
    ].last()


def adjustment_factors(bars: pd.DataFrame, corporate_actions: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, interval of `bars`, event): the event's own price and volume factor."""
    cols = list(FACTOR_COLUMNS)
    ca = corporate_actions
    if ca is None or ca.empty or bars.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}).astype(
            {"symbol": "str", "interval": "str", "kind": "str", "ex_date": "datetime64[ns]"}
        )
    kind = ca["kind"].astype("str")
    stored_only = kind.str.startswith(NON_ADJUSTING_PREFIX)
    kinds = set(kind[~stored_only].unique()) - set(ADJUSTING_KINDS)
    if kinds:
        raise ValueError(f"unknown corporate action kind(s): {sorted(kinds)}")
    ca = ca.loc[~stored_only.to_numpy()]
    if ca.empty:
        return adjustment_factors(bars.iloc[:0], ca)
    series = bars[["symbol", "interval"]].drop_duplicates()
    ev = ca[["symbol", "ex_date", "kind", "value"]].assign(
        ex_date=_day(ca["ex_date"]), value=ca["value"].astype("float64")
    )
    # the table's key is (symbol, ex_date, kind): a repeated action must not compound twice
    ev = ev.drop_duplicates(["symbol", "ex_date", "kind"], keep="last")
    # regular and special cash on one ex-date: one dividend of their total
    ev["kind"] = ev["kind"].where(ev["kind"] == "split", "dividend")
    ev = ev.groupby(["symbol", "ex_date", "kind"], as_index=False, sort=False)["value"].sum()
    ev = ev.merge(series, on="symbol", how="inner").sort_values("ex_date", kind="mergesort")
    if ev.empty:
        return adjustment_factors(bars.iloc[:0], ca)

    closes = _last_close_per_session(bars).sort_values("day", kind="mergesort")
    closes["close_day"] = closes["day"]
    ev = pd.merge_asof(
        ev,
        closes.rename(columns={"day": "ex_date", "close": "close_prev"}),
        on="ex_date",
        by=["symbol", "interval"],
        direction="backward",
        allow_exact_matches=False,
    )
    # a dividend is measured only against the close of the session right before its ex-date
    stale = (ev["kind"] != "split") & (ev["close_day"] != previous_sessions(ev["ex_date"]))
    ev.loc[stale.to_numpy(), "close_prev"] = np.nan
    is_split = (ev["kind"] == "split").to_numpy()
    value = ev["value"].to_numpy()
    # split ratio on the same ex-date (1.0 when none), so a dividend is measured per post-split share
    same_day = (
        ev.assign(r=np.where(is_split, value, 1.0))
        .groupby(["symbol", "interval", "ex_date"], observed=True)["r"]
        .transform("prod")
    )
    price_close = ev["close_prev"].to_numpy() / same_day.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        price = np.where(is_split, 1.0 / value, 1.0 - value / price_close)
    price = np.where(ev["close_prev"].isna().to_numpy(), np.nan, price)
    ev["price_factor"] = price
    ev["volume_factor"] = np.where(is_split, value, 1.0)
    ev = ev.sort_values(["symbol", "interval", "ex_date", "kind"], kind="mergesort")
    return ev[cols].reset_index(drop=True)


def previous_sessions(days: pd.Series) -> pd.Series:
    """The last XNYS session strictly before each (naive, midnight) date."""
    labels = get_calendar().sessions.tz_localize(None).astype("datetime64[ns]")
    at = np.searchsorted(labels.to_numpy(), days.to_numpy(dtype="datetime64[ns]"), side="left")
    prev = labels.take(np.clip(at - 1, 0, len(labels) - 1)).to_numpy()
    return pd.Series(np.where(at > 0, prev, np.datetime64("NaT")), index=days.index)


def bar_factors(bars: pd.DataFrame, corporate_actions: pd.DataFrame) -> pd.DataFrame:
    """Cumulative `price_factor`, `volume_factor` per bar, aligned with `bars.index`."""
    ones = pd.DataFrame({"price_factor": 1.0, "volume_factor": 1.0}, index=bars.index)
    ev = adjustment_factors(bars, corporate_actions)
    ev = ev[ev["price_factor"].notna()]
    if ev.empty:
        return ones
    # one row per (series, ex_date), then the product of this and every later event
    per_day = ev.groupby(["symbol", "interval", "ex_date"], as_index=False, observed=True)[
        ["price_factor", "volume_factor"]
    ].prod()
    per_day = per_day.sort_values(["symbol", "interval", "ex_date"], ascending=[True, True, False])
    cum = per_day.groupby(["symbol", "interval"], observed=True)[["price_factor", "volume_factor"]]
    per_day[["price_factor", "volume_factor"]] = cum.cumprod()
    per_day = per_day.sort_values("ex_date", kind="mergesort")

    left = pd.DataFrame(
        {
            "symbol": bars["symbol"],
            "interval": bars["interval"],
            "day": session_dates(bars["ts"], bars["interval"]).astype("datetime64[ns]"),
            "row": np.arange(len(bars)),
        }
    ).sort_values("day", kind="mergesort")
    hit = pd.merge_asof(
        left,
        per_day.rename(columns={"ex_date": "day"}),
        on="day",
        by=["symbol", "interval"],
        direction="forward",
        allow_exact_matches=False,
    ).sort_values("row")
    out = hit[["price_factor", "volume_factor"]].fillna(1.0)
    out.index = bars.index
    return out


def adjust_bars(bars: pd.DataFrame, corporate_actions: pd.DataFrame) -> pd.DataFrame:
    """Back-adjusted copy of `bars` (prices and vwap x price factor, volume x volume factor)."""
    f = bar_factors(bars, corporate_actions)
    out = bars.copy()
    for col in PRICE_ADJUSTED:
        if col in out.columns:
            out[col] = out[col].astype("float64") * f["price_factor"]
    out["volume"] = out["volume"].astype("float64") * f["volume_factor"]
    return out
