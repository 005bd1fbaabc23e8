"""Each indicator against an independent reference written as plain loops / explicit formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from marketpipe.processing.contract import features_schema, validate_features
from marketpipe.processing.features import compute_features, feature_columns

RTOL = 1e-9


def ref_sma(x: np.ndarray, w: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for i in range(w - 1, len(x)):
        out[i] = sum(x[i - w + 1 : i + 1]) / w
    return out


def ref_ema(x: np.ndarray, span: int) -> np.ndarray:
    a = 2.0 / (span + 1)
    out = np.full(len(x), np.nan)
    e = x[0]
    for i in range(len(x)):
        e = x[0] if i == 0 else a * x[i] + (1 - a) * e
        if i >= span - 1:
            out[i] = e
    return out


def ref_rsi(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's original: seed with simple averages of the first n changes, then smooth."""
    out = np.full(len(x), np.nan)
    gains = [max(x[i] - x[i - 1], 0.0) for i in range(1, len(x))]
    losses = [max(x[i - 1] - x[i], 0.0) for i in range(1, len(x))]
    ag, al = sum(gains[:n]) / n, sum(losses[:n]) / n
    for i in range(n, len(x)):
        if i > n:
            ag = (ag * (n - 1) + gains[i - 1]) / n
            al = (al * (n - 1) + losses[i - 1]) / n
        out[i] = 100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al)
    return out


def ref_bollinger(x: np.ndarray, w: int, k: float):
    mid, up, lo = (np.full(len(x), np.nan) for _ in range(3))
    for i in range(w - 1, len(x)):
        win = x[i - w + 1 : i + 1]
        m = win.mean()
        sd = math.sqrt(((win - m) ** 2).sum() / w)  # population std
        mid[i], up[i], lo[i] = m, m + k * sd, m - k * sd
    return mid, up, lo


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
    close_enough(got["sma_20"], ref_sma(c, 20))
    close_enough(got["sma_50"], ref_sma(c, 50))
    close_enough(got["ema_12"], ref_ema(c, 12))
    close_enough(got["ema_26"], ref_ema(c, 26))
    close_enough(got["rsi_14"], ref_rsi(c, 14))
    mid, up, lo = ref_bollinger(c, 20, 2.0)
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
    close_enough(out["sma_5"], ref_sma(c, 5))
    close_enough(out["ema_3"], ref_ema(c, 3))
    close_enough(out["rsi_7"], ref_rsi(c, 7))
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
    assert (out.loc[out["symbol"] == "FLAT", "rsi_14"].dropna() == 50.0).all()


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
        close_enough(got["ema_12"], ref_ema(c, 12))
        close_enough(got["ema_26"], ref_ema(c, 26))
        close_enough(got["rsi_14"], ref_rsi(c, 14))


def test_outlier_flags_are_carried_through(walk):
    bars = walk.assign(outlier_flags="")
    bars.loc[7, "outlier_flags"] = "spike"
    out = compute_features(bars).set_index(["symbol", "ts"])
    assert out.loc[(bars.loc[7, "symbol"], bars.loc[7, "ts"]), "outlier_flags"] == "spike"
    assert (out["outlier_flags"] == "").sum() == len(bars) - 1
