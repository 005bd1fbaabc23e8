"""Each indicator against an independent reference: TA-Lib (`talib.SMA/EMA/RSI/BBANDS`, its own C
definitions) for the classic indicators, explicit formulas for returns and realised volatility."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandera.errors
import pytest
import talib

from marketpipe.processing.contract import features_schema, validate_features
from marketpipe.processing.features import compute_features, feature_columns

RTOL = 1e-9


def ref_bbands(x: np.ndarray, w: int, k: float):
    upper, mid, lower = talib.BBANDS(
        x, timeperiod=w, nbdevup=k, nbdevdn=k, matype=talib.MA_Type.SMA
    )
    return mid, upper, lower


def ref_rv(x: np.ndarray, w: int) -> np.ndarray:
    lr = np.r_[np.nan, [math.log(x[i] / x[i - 1]) for i in range(1, len(x))]]
    out = np.full(len(x), np.nan)
    for i in range(w, len(x)):
        win = lr[i - w + 1 : i + 1]
        out[i] = math.sqrt(((win - win.mean()) ** 2).sum() / (w - 1))  # sample std
    return out


def close_enough(actual, expected) -> None:
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), "NaN warm-up differs"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-12, equal_nan=True)


@pytest.fixture
def shuffled_walk(walk):
    # processing must not depend on input order; several symbols interleaved
    return walk.sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_columns_match_features_table(walk):
    out = compute_features(walk)
    assert list(out.columns) == [
        "symbol", "interval", "ts", "ret", "log_ret", "vwap", "sma_20", "sma_50", "ema_12",
        "ema_26", "rsi_14", "bb_mid", "bb_upper", "bb_lower", "rv_20", "outlier_flags",
    ]  # fmt: skip
    assert len(out) == len(walk)


@pytest.mark.parametrize("symbol", ["AAPL", "MSFT", "SPY"])
def test_indicators_match_reference(shuffled_walk, walk, symbol):
    out = compute_features(shuffled_walk)
    got = out[out["symbol"] == symbol].reset_index(drop=True)
    raw = walk[walk["symbol"] == symbol].sort_values("ts").reset_index(drop=True)
    c = raw["close"].to_numpy()
    assert got["ts"].tolist() == raw["ts"].tolist()

    ret = np.r_[np.nan, [c[i] / c[i - 1] - 1 for i in range(1, len(c))]]
    log_ret = np.r_[np.nan, [math.log(c[i] / c[i - 1]) for i in range(1, len(c))]]
    close_enough(got["ret"], ret)
    close_enough(got["log_ret"], log_ret)
    close_enough(got["vwap"], raw["vwap"])
    close_enough(got["sma_20"], talib.SMA(c, 20))
    close_enough(got["sma_50"], talib.SMA(c, 50))
    close_enough(got["ema_12"], talib.EMA(c, 12))
    close_enough(got["ema_26"], talib.EMA(c, 26))
    close_enough(got["rsi_14"], talib.RSI(c, 14))
    mid, up, lo = ref_bbands(c, 20, 2.0)
    close_enough(got["bb_mid"], mid)
    close_enough(got["bb_upper"], up)
    close_enough(got["bb_lower"], lo)
    close_enough(got["rv_20"], ref_rv(c, 20))


def test_warmup_nans_are_per_symbol(walk):
    out = compute_features(walk)
    for _, grp in out.groupby("symbol"):
        assert grp["ret"].isna().sum() == 1
        assert grp["sma_50"].isna().sum() == 49
        assert grp["ema_26"].isna().sum() == 25
        assert grp["rsi_14"].isna().sum() == 14
        assert grp["rv_20"].isna().sum() == 20


def test_configurable_windows_and_names(walk):
    one = walk[walk["symbol"] == "MSFT"].reset_index(drop=True)
    out = compute_features(one, sma_windows=(5,), ema_spans=(3,), rsi_period=7, rv_window=10)
    assert list(out.columns) == feature_columns((5,), (3,), 7, 10)
    c = one["close"].to_numpy()
    close_enough(out["sma_5"], talib.SMA(c, 5))
    close_enough(out["ema_3"], talib.EMA(c, 3))
    close_enough(out["rsi_7"], talib.RSI(c, 7))
    close_enough(out["rv_10"], ref_rv(c, 10))
    validate_features(out, features_schema(feature_columns((5,), (3,), 7, 10)))


def test_vwap_falls_back_to_typical_price(walk):
    bars = walk.copy()
    bars.loc[5, "vwap"] = np.nan
    out = compute_features(bars).set_index(["symbol", "ts"])
    row = bars.loc[5]
    expected = (row["high"] + row["low"] + row["close"]) / 3
    assert out.loc[(row["symbol"], row["ts"]), "vwap"] == pytest.approx(expected, rel=1e-12)


def test_rsi_limits_on_monotone_series(make_walk):
    up = make_walk(symbols=("UP",), n=40)
    up["close"] = np.linspace(100.0, 139.0, 40)
    flat = make_walk(symbols=("FLAT",), n=40)
    flat["close"] = 50.0
    out = compute_features(pd.concat([up, flat], ignore_index=True))
    assert (out.loc[out["symbol"] == "UP", "rsi_14"].dropna() == 100.0).all()
    flat_rsi = out.loc[out["symbol"] == "FLAT", "rsi_14"]
    np.testing.assert_array_equal(flat_rsi, talib.RSI(np.full(40, 50.0), 14))  # 0 after warm-up
    assert (flat_rsi.dropna() == 0.0).all()


def test_contract_accepts_output_and_rejects_bad_values(walk):
    out = validate_features(compute_features(walk))
    bad = out.copy()
    bad.loc[30, "rsi_14"] = 101.0
    bad.loc[31, "bb_lower"] = bad.loc[31, "bb_upper"] + 1.0
    bad.loc[32, "ret"] = np.inf
    with pytest.raises(pandera.errors.SchemaErrors) as err:
        validate_features(bad)
    text = str(err.value)
    assert "in_range" in text and "bb_lower_le_mid_le_upper" in text
    assert "finite_where_defined" in text


def test_empty_input(walk):
    out = compute_features(walk.iloc[:0])
    assert out.empty and list(out.columns) == feature_columns()


def test_uneven_series_lengths_use_the_groupby_path_and_stay_exact(make_walk):
    long = make_walk(symbols=("LONG",), n=600, seed=11)
    shorts = make_walk(symbols=tuple(f"S{i:02d}" for i in range(30)), n=30, seed=12)
    out = compute_features(pd.concat([shorts, long], ignore_index=True))
    for sym in ("LONG", "S00", "S29"):
        got = out[out["symbol"] == sym]
        src = pd.concat([shorts, long])
        c = src.loc[src["symbol"] == sym].sort_values("ts")["close"].to_numpy()
        close_enough(got["ema_12"], talib.EMA(c, 12))
        close_enough(got["ema_26"], talib.EMA(c, 26))
        close_enough(got["rsi_14"], talib.RSI(c, 14))


def test_outlier_flags_are_carried_through(walk):
    bars = walk.assign(outlier_flags="")
    bars.loc[7, "outlier_flags"] = "spike"
    out = compute_features(bars).set_index(["symbol", "ts"])
    assert out.loc[(bars.loc[7, "symbol"], bars.loc[7, "ts"]), "outlier_flags"] == "spike"
    assert (out["outlier_flags"] == "").sum() == len(bars) - 1


def test_flat_input_gives_exact_values(make_walk):
    """A flat series (after a volatile stretch too): SMA/EMA/Bollinger exactly the price, width 0."""
    bars = make_walk(symbols=("FLAT",), n=120)
    bars.loc[60:, "close"] = 0.1  # 0.1 is not exact in binary: running sums would leave residue
    bars.loc[60:, ["open", "high", "low"]] = 0.1
    out = compute_features(bars).iloc[60 + 50 :]
    for col in ("sma_20", "sma_50", "bb_mid", "bb_upper", "bb_lower"):
        assert (out[col] == 0.1).all(), col
    assert ((out["bb_upper"] - out["bb_lower"]) == 0.0).all()
    c = bars["close"].to_numpy()
    close_enough(out["rsi_14"], talib.RSI(c, 14)[110:])  # decays, as Wilder's smoothing does


def test_ema_seed_option_first_close(walk):
    """`ema_seed="first"` is the documented alternative: pandas' ewm from the first close."""
    one = walk[walk["symbol"] == "AAPL"].reset_index(drop=True)
    out = compute_features(one, ema_seed="first")
    expected = one["close"].ewm(span=12, adjust=False).mean().to_numpy().copy()
    expected[:11] = np.nan
    close_enough(out["ema_12"], expected)
    with pytest.raises(ValueError, match="ema_seed"):
        compute_features(one, ema_seed="zero")
