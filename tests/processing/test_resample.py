"""Session-aware resampling: early close, DST, 5m/15m alignment, VWAP weighting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketpipe.bars import BAR_COLUMNS, conform_bars
from marketpipe.processing.resample import resample_bars


def minute_bars(first_utc: str, last_utc: str, symbol: str = "AAPL", seed: int = 1) -> pd.DataFrame:
    """One bar per minute with bar starts first_utc..last_utc inclusive."""
    ts = pd.date_range(first_utc, last_utc, freq="1min", tz="UTC")
    rng = np.random.default_rng(seed)
    close = 190.0 + np.cumsum(rng.normal(0, 0.05, len(ts)))
    open_ = close + rng.normal(0, 0.02, len(ts))
    high = np.maximum(open_, close) + 0.03
    low = np.minimum(open_, close) - 0.03
    return conform_bars(
        pd.DataFrame(
            {
                "symbol": symbol,
                "interval": "1m",
                "ts": ts,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": rng.integers(1, 1000, len(ts)).astype(float),
                "vwap": (high + low + close) / 3 + 0.001,
                "trades": rng.integers(1, 20, len(ts)),
                "source": "polygon",
            }
        )
    )


def test_daily_bar_across_early_close():
    # 2024-11-29 (day after Thanksgiving): 09:30-13:00 ET = 14:30-18:00 UTC; add pre/post-market
    bars = minute_bars("2024-11-29 13:00", "2024-11-29 19:00")
    session = bars[(bars["ts"] >= "2024-11-29 14:30Z") & (bars["ts"] < "2024-11-29 18:00Z")]
    assert len(session) == 210
    session.loc[session.index[5], "vwap"] = np.nan  # falls back to typical price

    out = resample_bars(bars, "1d")
    assert list(out.columns) == list(BAR_COLUMNS) and len(out) == 1
    day = out.iloc[0]
    assert day["ts"] == pd.Timestamp("2024-11-29", tz="UTC")
    assert day["interval"] == "1d" and day["source"] == "polygon"
    assert day["open"] == session["open"].iloc[0]
    assert day["close"] == session["close"].iloc[-1]
    assert day["high"] == session["high"].max() and day["low"] == session["low"].min()
    assert day["volume"] == session["volume"].sum()
    assert day["trades"] == session["trades"].sum()

    bars.loc[session.index[5], "vwap"] = np.nan
    day = resample_bars(bars, "1d").iloc[0]
    v = session["vwap"].to_numpy().copy()
    tp = ((session["high"] + session["low"] + session["close"]) / 3).to_numpy()
    v[5] = tp[5]
    w = session["volume"].to_numpy()
    assert day["vwap"] == pytest.approx(float(np.dot(v, w) / w.sum()), rel=1e-12)


def test_hourly_bars_across_dst_and_early_close():
    fri = minute_bars("2024-03-08 14:30", "2024-03-08 20:59")  # EST: open 14:30 UTC
    mon = minute_bars("2024-03-11 13:30", "2024-03-11 19:59")  # EDT: open 13:30 UTC
    out = resample_bars(pd.concat([fri, mon], ignore_index=True), "1h")
    starts = out["ts"].dt.strftime("%Y-%m-%d %H:%M").tolist()
    assert starts == [
        "2024-03-08 14:30", "2024-03-08 15:30", "2024-03-08 16:30", "2024-03-08 17:30",
        "2024-03-08 18:30", "2024-03-08 19:30", "2024-03-08 20:30",
        "2024-03-11 13:30", "2024-03-11 14:30", "2024-03-11 15:30", "2024-03-11 16:30",
        "2024-03-11 17:30", "2024-03-11 18:30", "2024-03-11 19:30",
    ]  # fmt: skip
    last_fri = out.iloc[6]  # 15:30-16:00 ET, a 30-minute bar
    tail = fri[fri["ts"] >= "2024-03-08 20:30Z"]
    assert len(tail) == 30
    assert last_fri["volume"] == tail["volume"].sum()
    assert last_fri["close"] == tail["close"].iloc[-1] and last_fri["open"] == tail["open"].iloc[0]

    early = resample_bars(minute_bars("2024-11-29 14:30", "2024-11-29 17:59"), "1h")
    assert early["ts"].dt.strftime("%H:%M").tolist() == [
        "14:30", "15:30", "16:30", "17:30"
    ]  # fmt: skip  # 09:30 ... 12:30-13:00 ET


@pytest.mark.parametrize(("to", "n", "minutes"), [("5m", 78, 5), ("15m", 26, 15)])
def test_intraday_alignment(to, n, minutes):
    bars = minute_bars("2024-03-11 13:00", "2024-03-11 20:30")  # with extended hours
    out = resample_bars(bars, to)
    assert len(out) == n and (out["interval"] == to).all()
    assert out["ts"].iloc[0] == pd.Timestamp("2024-03-11 13:30", tz="UTC")
    offsets = (out["ts"] - out["ts"].iloc[0]) / pd.Timedelta(minutes=1)
    assert (offsets % minutes == 0).all()
    third = bars[
        (bars["ts"] >= out["ts"].iloc[2]) & (bars["ts"] < out["ts"].iloc[2] + pd.Timedelta(to))
    ]
    assert len(third) == minutes
    assert out["high"].iloc[2] == third["high"].max() and out["low"].iloc[2] == third["low"].min()
    assert (
        out["volume"].sum()
        == bars.loc[
            (bars["ts"] >= "2024-03-11 13:30Z") & (bars["ts"] < "2024-03-11 20:00Z"), "volume"
        ].sum()
    )


def test_symbols_and_sessions_never_mix():
    a = minute_bars("2024-03-08 14:30", "2024-03-08 20:59", symbol="AAPL", seed=1)
    b = minute_bars("2024-03-08 14:30", "2024-03-08 20:59", symbol="MSFT", seed=2)
    out = resample_bars(pd.concat([b, a], ignore_index=True), "1d")
    assert out["symbol"].tolist() == ["AAPL", "MSFT"]
    assert out["volume"].tolist() == [a["volume"].sum(), b["volume"].sum()]


def test_rejects_bad_targets():
    bars = minute_bars("2024-03-08 14:30", "2024-03-08 14:40")
    with pytest.raises(ValueError):
        resample_bars(bars, "2h")
    with pytest.raises(ValueError):
        resample_bars(resample_bars(bars, "15m"), "5m")
    assert resample_bars(bars.iloc[:0], "1d").empty
