"""The Bars contract: one case per reason code, multi-failure rows, the pre-step, and row accounting."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES
from marketpipe.contract import (
    QUARANTINE_COLUMNS,
    REASON_CODES,
    BarsSchema,
    build_bars_schema,
    validate_bars,
)
from marketpipe.errors import ContractError

NOW = pd.Timestamp("2024-06-01T00:00:00Z")


def clean_frame(n: int = 4) -> pd.DataFrame:
    """`n` valid one-minute AAPL bars starting 2024-01-02 14:30 UTC."""
    close = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "symbol": ["AAPL"] * n,
            "interval": ["1m"] * n,
            "ts": pd.date_range("2024-01-02 14:30", periods=n, freq="1min", tz="UTC"),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 1000.0),
            "vwap": close - 0.25,
            "trades": pd.array(np.full(n, 10), dtype="Int64"),
            "source": ["test"] * n,
        }
    )


def broken(**cells) -> pd.DataFrame:
    """A clean frame whose row 1 has `cells` replaced (object columns where needed)."""
    df = clean_frame()
    for col, value in cells.items():
        fits = (isinstance(value, float) and df[col].dtype == "float64") or (
            isinstance(value, pd.Timestamp) and value.tzinfo is not None and col == "ts"
        )
        if not fits:
            df[col] = df[col].astype(object)
        df.loc[1, col] = value
    return df


# one frame per reason code, each built to break exactly that rule on row 1
CASES: dict[str, dict] = {
    "missing_value": {"close": np.nan},
    "not_numeric": {"open": "abc"},
    "bad_timestamp": {"ts": "not a time"},
    "price_not_finite": {"vwap": np.inf},
    "price_not_positive": {"open": -1.0, "low": -2.0},
    "volume_not_finite": {"volume": np.inf},
    "volume_negative": {"volume": -5.0},
    "high_lt_open_close": {"high": 100.5},  # close 101 > high 100.5 > low 100
    "low_gt_open_close": {"low": 100.8},  # open 100.5 < low 100.8 < high 102
    # high < low always breaks one open/close rule too (low > high >= open, close here)
    "high_lt_low": {"high": 99.0, "low": 99.5, "open": 98.8, "close": 98.8, "vwap": 99.2},
    "out_of_range": {"volume": 1e16},
    "future_bar": {"ts": pd.Timestamp("2024-06-03T13:30:00Z")},  # a real bar start, after NOW
    "bad_symbol": {"symbol": "A;DROP TABLE bars"},
    "bad_interval": {"interval": "7m"},
    "not_a_session": {"ts": pd.Timestamp("2024-01-06T14:31:00Z")},  # a Saturday
    "misaligned": {"ts": pd.Timestamp("2024-01-02T14:31:17Z")},
    "duplicate_key": {"ts": pd.Timestamp("2024-01-02T14:30:00Z")},
}
# the only code that cannot fail alone: high < low implies high < max(o, c) or low > min(o, c)
EXPECTED_REASON = {"high_lt_low": "high_lt_low,low_gt_open_close"}


def test_cases_cover_every_code_except_adapter_and_realtime_ones():
    assert set(CASES) == set(REASON_CODES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_rule_fails_alone_on_a_frame_built_to_break_it(code):
    df = broken(**CASES[code])
    result = validate_bars(df, now=NOW, run_id="run-1")
    assert len(result.quarantine) == 1
    row = result.quarantine.iloc[0]
    assert row["reason"] == EXPECTED_REASON.get(code, code)
    assert row["run_id"] == "run-1"
    assert row["detail"]
    assert len(result.valid) == 3
    # row 1 is the one rejected (duplicate_key keeps the first occurrence, row 0)
    payload = json.loads(row["payload"])
    assert payload["symbol"] == df.loc[1, "symbol"]
    assert list(result.valid["ts"]) == list(pd.to_datetime(df.drop(index=1)["ts"], utc=True))


@pytest.mark.parametrize("code", sorted(set(CASES) - {"not_numeric", "bad_timestamp"}))
def test_pandera_schema_names_the_same_check(code):
    """`BarsSchema` (a plain pandera schema) reports the failing check under the reason code."""
    df = broken(**CASES[code])
    if code in ("missing_value", "bad_symbol", "bad_interval", "duplicate_key", "future_bar"):
        df = df.astype({c: t for c, t in BAR_DTYPES.items() if c in df.columns})
    with pytest.raises(pa.errors.SchemaErrors) as info:
        build_bars_schema(now=NOW).validate(df, lazy=True)
    checks = set(info.value.failure_cases["check"].astype(str))
    assert code in checks


def test_row_failing_several_checks_lists_all_sorted():
    df = broken(high=-1.0, low=5.0, symbol="bad symbol!", interval="2h")
    q = validate_bars(df, now=NOW).quarantine
    assert len(q) == 1
    assert q.iloc[0]["reason"] == (
        "bad_interval,bad_symbol,high_lt_low,high_lt_open_close,price_not_positive"
    )
    assert q.iloc[0]["detail"].count(";") == 4


def test_counts_always_add_up_and_clean_frame_passes_entirely():
    df = clean_frame(50)
    result = validate_bars(df, now=NOW)
    assert result.quarantine.empty
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)
    assert list(result.valid.columns) == list(BAR_COLUMNS)
    assert result.valid.dtypes.astype(str).to_dict() == {
        c: str(pd.Series(dtype=t).dtype) for c, t in BAR_DTYPES.items()
    }
    pd.testing.assert_series_equal(result.valid["close"], df["close"], check_names=True)

    mixed = df.copy()
    mixed.loc[[3, 7, 11], "high"] = 1.0
    mixed.loc[20, "volume"] = -1.0
    mixed = pd.concat([mixed, mixed.iloc[[30, 31]]], ignore_index=True)
    result = validate_bars(mixed, now=NOW)
    assert len(result.valid) + len(result.quarantine) == len(mixed) == 52
    assert len(result.quarantine) == 6
    assert result.quarantine["reason"].value_counts().to_dict() == {
        "high_lt_low,high_lt_open_close": 3,
        "duplicate_key": 2,
        "volume_negative": 1,
    }


def test_pandera_schema_accepts_a_clean_canonical_frame():
    df = validate_bars(clean_frame(), now=NOW).valid
    assert BarsSchema.validate(df, lazy=True) is not None


def test_quarantine_row_fields():
    df = broken(open="abc")
    q = validate_bars(df, now=NOW).quarantine
    row = q.iloc[0]
    assert row["symbol"] == "AAPL" and row["interval"] == "1m" and row["source"] == "test"
    assert row["ts"] == pd.Timestamp("2024-01-02T14:31:00Z")
    assert json.loads(row["payload"])["open"] == "abc"
    assert str(q["quarantined_at"].dtype) == "datetime64[us, UTC]"
    assert pd.isna(row["run_id"])


def test_infinite_values_survive_in_payload_as_text():
    q = validate_bars(broken(volume=np.inf), now=NOW).quarantine
    payload = json.loads(q.iloc[0]["payload"])
    assert payload["volume"] == "inf"
    assert payload["ts"] == "2024-01-02T14:31:00.000000Z"


# ------------------------------------------------------------------ the pre-step
def test_numbers_as_text_are_read_and_garbage_is_not_numeric():
    df = clean_frame(3)
    df["open"] = ["99.5", "x1", "101.5"]
    df["volume"] = ["1000", "1e3", None]
    result = validate_bars(df, now=NOW)
    assert result.quarantine["reason"].tolist() == ["not_numeric", "missing_value"]
    assert result.valid["open"].tolist() == [99.5]
    assert result.valid["volume"].tolist() == [1000.0]


def test_fractional_trades_are_not_numeric_and_missing_optional_columns_are_fine():
    df = clean_frame(3)
    df["trades"] = [1.0, 2.5, np.nan]
    result = validate_bars(df, now=NOW)
    assert result.quarantine["reason"].tolist() == ["not_numeric"]
    assert result.valid["trades"].tolist()[0] == 1 and pd.isna(result.valid["trades"].iloc[1])

    no_optional = clean_frame(3).drop(columns=["vwap", "trades"])
    result = validate_bars(no_optional, now=NOW)
    assert len(result.valid) == 3 and result.valid["vwap"].isna().all()


@pytest.mark.parametrize(
    "value, reason",
    [
        ("2024-01-02 14:31:00", "bad_timestamp"),  # naive text: ambiguous, rejected
        ("garbage", "bad_timestamp"),
        ("2024-01-02", "bad_timestamp"),  # date only: naive too ("-02" is not an offset)
        ("2024-01-02T14:31:00", "bad_timestamp"),
        ("1704205860", "bad_timestamp"),  # epoch as text
        ("2024-13-45T00:00:00Z", "bad_timestamp"),
        (None, "missing_value"),
        (pd.Timestamp("2024-01-02 14:31"), "bad_timestamp"),  # naive Timestamp object
        (1704205860, "bad_timestamp"),  # bare epoch number in an object column
    ],
)
def test_bad_and_naive_timestamps(value, reason):
    q = validate_bars(broken(ts=value), now=NOW).quarantine
    assert q["reason"].tolist() == [reason]


def test_naive_datetime_column_is_rejected_whole():
    df = clean_frame(3)
    df["ts"] = df["ts"].dt.tz_localize(None)
    result = validate_bars(df, now=NOW)
    assert result.valid.empty
    assert result.quarantine["reason"].tolist() == ["bad_timestamp"] * 3


def test_aware_non_utc_timestamps_are_converted_to_utc():
    df = clean_frame(3)
    df["ts"] = df["ts"].dt.tz_convert("America/New_York")
    as_text = clean_frame(3)
    as_text["ts"] = ["2024-01-02T09:30:00-05:00", "2024-01-02T14:31:00Z", "2024-01-02T15:32+0100"]
    for frame in (df, as_text):
        valid = validate_bars(frame, now=NOW).valid
        assert valid["ts"].tolist() == list(
            pd.date_range("2024-01-02 14:30", periods=3, freq="1min", tz="UTC")
        )
        assert str(valid["ts"].dtype) == "datetime64[us, UTC]"


@pytest.mark.parametrize(
    "symbol",
    ["ÄAPL", "A" * 500, "../x", "A;DROP TABLE bars", "", "BRK..B", "a b", "A" * 33],
)
def test_unsafe_symbols_are_bad_symbol(symbol):
    q = validate_bars(broken(symbol=symbol), now=NOW).quarantine
    assert q["reason"].tolist() == ["bad_symbol"]
    assert q.iloc[0]["symbol"] == symbol


@pytest.mark.parametrize("symbol", ["^GSPC", "EURUSD=X", "BRK.B", "BRK-B", "BTC/USD", "A" * 32])
def test_legitimate_symbols_pass(symbol):
    assert validate_bars(broken(symbol=symbol), now=NOW).quarantine.empty


@pytest.mark.parametrize("column", ["symbol", "ts", "close", "volume", "source"])
def test_missing_required_column_raises_contract_error_naming_it(column):
    with pytest.raises(ContractError, match=column):
        validate_bars(clean_frame().drop(columns=[column]), now=NOW)


def test_duplicate_keeps_first_good_copy_not_a_broken_one():
    df = clean_frame(3)
    df = pd.concat([df, df.iloc[[1]]], ignore_index=True)  # row 3 repeats row 1's key
    df.loc[1, "high"] = 0.5  # the first copy is broken
    result = validate_bars(df, now=NOW)
    assert result.quarantine["reason"].tolist() == ["high_lt_low,high_lt_open_close"]
    assert len(result.valid) == 3 and result.valid["ts"].is_unique


def test_future_bar_uses_now_and_naive_now_is_refused():
    df = clean_frame(3)
    cut = pd.Timestamp("2024-01-02T14:31:00Z")
    result = validate_bars(df, now=cut)
    assert result.valid["ts"].max() == cut  # a bar starting exactly at now is allowed
    assert result.quarantine["reason"].tolist() == ["future_bar"]
    with pytest.raises(ContractError):
        validate_bars(df, now=pd.Timestamp("2024-01-02"))


def test_empty_frame():
    result = validate_bars(clean_frame(0), now=NOW)
    assert result.valid.empty and result.quarantine.empty
    assert list(result.quarantine.columns) == list(QUARANTINE_COLUMNS)


def test_any_index_and_categorical_text_columns_are_handled():
    df = clean_frame(4)
    df.index = [5, 5, 7, 7]
    df["symbol"] = df["symbol"].astype("category")
    df.loc[df.index[2:], "extra"] = "kept in payload only"
    df.iloc[3, df.columns.get_loc("volume")] = -3.0
    result = validate_bars(df, now=NOW)
    assert len(result.valid) == 3 and result.valid.index.tolist() == [0, 1, 2]
    assert "extra" not in result.valid.columns
    assert result.quarantine["reason"].tolist() == ["volume_negative"]
    assert json.loads(result.quarantine.iloc[0]["payload"])["extra"] == "kept in payload only"
