"""The Python API called as a notebook would: `import marketpipe as mp`."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pandas as pd
import pytest

import marketpipe as mp
from marketpipe.errors import ConfigError
from tests.api.conftest import SPLIT_DAY


def test_import_marketpipe_is_light_and_prefect_free():
    code = "import sys, marketpipe as mp; mp.read; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_string_is_one_symbol(embedded):
    df = mp.read("AAPL", "2024-01-02", "2024-03-28", overrides=embedded["overrides"])
    assert set(df["symbol"]) == {"AAPL"}
    expected = embedded["bars"].query("symbol == 'AAPL'")
    assert len(df) == len(expected) > 50


def test_list_of_symbols_end_inclusive_hot_wins(embedded):
    df = mp.read(
        ["AAPL", "MSFT"], date(2024, 1, 2), date(2024, 3, 28), overrides=embedded["overrides"]
    )
    assert set(df["symbol"]) == {"AAPL", "MSFT"}
    assert df["ts"].max() == pd.Timestamp("2024-03-28", tz="UTC")  # the end day is included
    assert not df.duplicated(["symbol", "interval", "ts"]).any()
    hot = embedded["hot"].set_index(["symbol", "ts"])["close"]
    got = df.set_index(["symbol", "ts"])["close"]
    pd.testing.assert_series_equal(got.loc[hot.index], hot, check_names=False)
    assert (df.loc[df["ts"] >= pd.Timestamp(SPLIT_DAY, tz="UTC"), "source"] == "hotsrc").all()


def test_tz_aware_new_york_midnight_bounds_mean_session_days(embedded):
    ov = embedded["overrides"]
    plain = mp.read("MSFT", "2024-03-01", "2024-03-08", overrides=ov)
    ny = mp.read(
        "MSFT",
        pd.Timestamp("2024-03-01", tz="America/New_York"),
        pd.Timestamp("2024-03-08", tz="America/New_York"),
        overrides=ov,
    )
    tokyo = mp.read(  # 2024-03-01 14:00 in Tokyo is 00:00 in New York: the same session day
        "MSFT",
        pd.Timestamp("2024-03-01 14:00", tz="Asia/Tokyo"),
        pd.Timestamp("2024-03-08 14:00", tz="Asia/Tokyo"),
        overrides=ov,
    )
    assert len(plain) == 6  # Fri 1st .. Fri 8th
    pd.testing.assert_frame_equal(plain, ny)
    pd.testing.assert_frame_equal(plain, tokyo)


def test_intraday_bounds_follow_exchange_days_and_instants(embedded):
    ov = embedded["overrides"]
    day = mp.read("AAPL", "2024-03-04", "2024-03-04", interval="1h", overrides=ov)
    assert len(day) == 7  # 09:30 .. 15:30 ET
    assert day["ts"].min() == pd.Timestamp("2024-03-04 14:30", tz="UTC")
    window = mp.read(
        "AAPL",
        pd.Timestamp("2024-03-04 10:30", tz="America/New_York"),
        pd.Timestamp("2024-03-04 12:30", tz="America/New_York"),
        interval="1h",
        overrides=ov,
    )
    assert list(window["ts"].dt.tz_convert("America/New_York").dt.strftime("%H:%M")) == [
        "10:30",
        "11:30",
        "12:30",
    ]


def test_source_filter_and_adjusted(embedded):
    ov = embedded["overrides"]
    hot_only = mp.read("AAPL", "2024-01-02", "2024-03-28", source="hotsrc", overrides=ov)
    assert len(hot_only) and (hot_only["ts"] >= pd.Timestamp(SPLIT_DAY, tz="UTC")).all()
    raw = mp.read("AAPL", "2024-01-02", "2024-03-28", overrides=ov)
    adj = mp.read("AAPL", "2024-01-02", "2024-03-28", adjusted=True, overrides=ov)
    before = raw["ts"] < pd.Timestamp("2024-02-01", tz="UTC")
    assert adj.loc[before, "close"].to_numpy() == pytest.approx(
        raw.loc[before, "close"].to_numpy() / 4.0
    )


def test_unknown_override_names_the_key(embedded):
    with pytest.raises(ConfigError, match="unknown setting 'hot_dayz'.*hot_days"):
        mp.read("AAPL", "2024-01-02", "2024-01-05", overrides={"hot_dayz": 3})


def test_invalid_override_names_the_key(embedded):
    with pytest.raises(ConfigError, match="MARKETPIPE_HOT_DAYS"):
        mp.read("AAPL", "2024-01-02", "2024-01-05", overrides={"hot_days": -3})


def test_missing_data_dir_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="no data directory"):
        mp.read("AAPL", "2024-01-02", "2024-01-05", overrides={"data_dir": str(missing)})
    with pytest.raises(ConfigError, match="no data directory"):
        mp.sql("SELECT count(*) FROM bars", overrides={"data_dir": str(missing)})
    assert not missing.exists()


def test_bad_inputs_are_config_errors(embedded):
    ov = embedded["overrides"]
    with pytest.raises(ConfigError, match="after"):
        mp.read("AAPL", "2024-03-01", "2024-02-01", overrides=ov)
    with pytest.raises(ConfigError, match="interval"):
        mp.read("AAPL", interval="2m", overrides=ov)
    with pytest.raises(ConfigError, match="invalid symbol"):
        mp.read("AAPL,MSFT", overrides=ov)  # a string is one symbol, and this is not one


def test_as_of_passes_through_or_says_not_implemented(embedded):
    import inspect

    from marketpipe.processing.adjusted_read import read_bars

    if "as_of" in inspect.signature(read_bars).parameters:
        df = mp.read("AAPL", as_of=pd.Timestamp.now(tz="UTC"), overrides=embedded["overrides"])
        assert len(df)
    else:
        with pytest.raises(NotImplementedError, match="as_of"):
            mp.read("AAPL", as_of=pd.Timestamp.now(tz="UTC"), overrides=embedded["overrides"])


@pytest.mark.parametrize("interval", ["1d", "1h"])
def test_sql_bars_equal_read_on_both_store_pairs(store_pair, interval):
    ov = store_pair["overrides"]
    got = mp.sql(
        f"SELECT * FROM bars WHERE interval = '{interval}' ORDER BY symbol, ts", overrides=ov
    )
    want = mp.read(["AAPL", "MSFT"], interval=interval, overrides=ov)
    assert len(got) == len(want) > 0
    cols = ["symbol", "interval", "open", "high", "low", "close", "volume", "source"]
    pd.testing.assert_frame_equal(
        got[cols].reset_index(drop=True), want[cols].reset_index(drop=True), check_dtype=False
    )
    assert (pd.to_datetime(got["ts"], utc=True) == want["ts"]).all()


def test_sql_other_views_on_both_store_pairs(store_pair):
    ov = store_pair["overrides"]
    adj = mp.sql(
        "SELECT symbol, ts, close FROM bars_adjusted WHERE interval = '1d' ORDER BY symbol, ts",
        overrides=ov,
    )
    want = mp.read(["AAPL", "MSFT"], adjusted=True, overrides=ov)
    assert adj["close"].to_numpy() == pytest.approx(want["close"].to_numpy())
    acts = mp.sql("SELECT symbol, kind, value FROM corporate_actions ORDER BY symbol", overrides=ov)
    assert acts.to_dict("list") == {
        "symbol": ["AAPL", "MSFT"],
        "kind": ["split", "dividend"],
        "value": [4.0, 0.5],
    }
    q = mp.sql("SELECT count(*) AS n FROM quarantine", overrides=ov)
    assert int(q["n"].iloc[0]) == 0


def test_sql_errors_are_one_line(embedded):
    with pytest.raises(ConfigError, match="^sql: .*nosuch"):
        mp.sql("SELECT * FROM nosuch", overrides=embedded["overrides"])
    with pytest.raises(ConfigError, match="^sql: "):
        mp.sql("SELEC 1", overrides=embedded["overrides"])


def test_run_with_overrides_then_read(tmp_path, prefect_server):
    import os

    data = tmp_path / "run"

    def ours():
        return {k: v for k, v in os.environ.items() if k.startswith(("MARKETPIPE_", "POLYGON_"))}

    before = ours()
    reports = mp.run(symbols="AAPL", overrides={"data_dir": str(data), "hot_days": 10})
    assert ours() == before  # the overrides applied to that call only
    totals = reports["ingestion"]["totals"]
    assert totals["hot"] > 0 and totals["cold"] > 0  # hot_days=10 split the 90 days
    df = mp.read("AAPL", overrides={"data_dir": str(data)})
    assert len(df) == totals["hot"] + totals["cold"]


def test_run_and_backfill_check_inputs_before_starting(tmp_path):
    ov = {"data_dir": str(tmp_path / "d")}
    with pytest.raises(ConfigError, match="unknown source 'foo'"):
        mp.backfill("AAPL", "2024-01-02", "2024-01-31", source="foo", plan_only=True, overrides=ov)
    with pytest.raises(ConfigError, match="after"):
        mp.backfill("AAPL", "2024-02-02", "2024-01-31", source="synthetic", overrides=ov)
    with pytest.raises(ConfigError, match="POLYGON_API_KEY"):
        mp.run(source="polygon", overrides={**ov, "polygon_api_key": None})
    assert "expected bars per symbol" in mp.run(dry_run=True, overrides=ov)
    assert not (tmp_path / "d").exists()
    plan = mp.backfill(
        ["AAPL", "MSFT"],
        "2024-01-02",
        "2024-01-31",
        source="synthetic",
        plan_only=True,
        overrides=ov,
    )
    assert "chunk" in plan["plan"]


def test_import_calls_the_import_flow_or_says_it_is_missing(tmp_path, request):
    import importlib.util

    from tests.api.conftest import synthetic

    bars = synthetic("1d")
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    ov = {"data_dir": str(tmp_path / "imported")}
    if importlib.util.find_spec("flows.importing") is None:
        with pytest.raises(ConfigError, match="import is not available"):
            mp.import_(str(path), overrides=ov)
        return
    request.getfixturevalue("prefect_server")
    mp.import_(str(path), overrides=ov)
    got = mp.read(["AAPL", "MSFT"], overrides=ov)
    assert len(got) == len(bars)
