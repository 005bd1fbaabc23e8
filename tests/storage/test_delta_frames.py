"""The lake's columnar frame helpers against pandas' own dedupe and sort (the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from marketpipe.bars import BAR_KEY
from marketpipe.bars import keys_unique as _keys_unique
from marketpipe.calendar import session_dates
from marketpipe.storage.delta_frames import _sorted_unique, bars_table

from .frames import make_bars


def _shuffled(seed: int, dup_share: float, symbols=("AAA", "BBB", "CCC")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = make_bars(symbols=symbols, periods=400)
    df = pd.concat([make_bars(symbols=symbols, periods=400, interval="5m"), df])
    if dup_share:
        extra = df.sample(frac=dup_share, random_state=seed).assign(close=lambda d: d.close + 7)
        df = pd.concat([df, extra])
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dup_share", [0.0, 0.1])
def test_bars_table_keeps_the_last_row_per_key_like_pandas(seed, dup_share):
    df = _shuffled(seed, dup_share)
    expected = df.drop_duplicates(list(BAR_KEY), keep="last")
    got = bars_table(df).to_pandas()
    key = ["symbol", "interval", "ts"]
    assert len(got) == len(expected)
    merged = got.merge(expected, on=key, suffixes=("", "_want"))
    assert len(merged) == len(expected)
    assert (merged["close"] == merged["close_want"]).all()


def test_keys_unique_proves_only_what_holds():
    df = make_bars(symbols=("AAA", "BBB"), periods=50)
    assert _keys_unique(df)
    assert not _keys_unique(pd.concat([df, df.iloc[[3]]]))  # a repeated key
    # the same symbol in two runs: not proven (and pandas then decides)
    split = pd.concat([df.iloc[:10], df.iloc[60:], df.iloc[10:60]])
    assert not _keys_unique(split)
    assert not split.duplicated(list(BAR_KEY)).any()


def test_session_column_is_the_new_york_date_and_the_calendar_agrees():
    # across the March 2024 DST switch, every minute of the day (UTC hours before 05:00 too)
    df = make_bars(symbols=("AAA",), start="2024-03-08 00:00", periods=3000)
    got = bars_table(df)["session"].to_numpy(zero_copy_only=False)
    new_york = df["ts"].dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    want = new_york.to_numpy().astype("datetime64[D]")
    assert (got == want).all()
    assert (session_dates(df["ts"], "1m") == want).all()


@pytest.mark.parametrize("symbols", [("AAA",), ("AAA", "BBB", "CCC")])
def test_sorted_unique_equals_pandas_sort_and_newest_copy(symbols):
    rng = np.random.default_rng(7)
    df = make_bars(symbols=symbols, periods=300)
    newer = df.sample(frac=0.2, random_state=1).assign(close=-1.0)
    both = pd.concat([df.assign(age=0), newer.assign(age=1)])
    both = both.iloc[rng.permutation(len(both))]
    stamp = pd.Timestamp("2025-01-01", tz="UTC")
    both["ingested_at"] = stamp + pd.to_timedelta(both.pop("age"), unit="s")
    table = pa.Table.from_pandas(both, preserve_index=False)
    got = _sorted_unique(table).to_pandas()
    want = (
        both.sort_values(["symbol", "ts", "ingested_at"], kind="stable")
        .drop_duplicates(["symbol", "ts"], keep="last")
        .reset_index(drop=True)
    )
    assert got["ts"].tolist() == want["ts"].tolist()
    assert got["symbol"].tolist() == want["symbol"].tolist()
    assert got["close"].tolist() == want["close"].tolist()
    # without ingested_at a permuted single symbol is sorted too, constant columns intact
    plain = pa.Table.from_pandas(df.iloc[rng.permutation(len(df))], preserve_index=False)
    out = _sorted_unique(plain).to_pandas()
    ref = df.sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert out[["symbol", "interval", "ts", "close"]].equals(
        ref[["symbol", "interval", "ts", "close"]]
    )
