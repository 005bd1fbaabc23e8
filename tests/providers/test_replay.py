"""Replay source: both column shapes, Parquet and CSV, a bad row, missing file and columns."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
import pytest

from marketpipe.errors import ConfigError, ContractError, UnknownSymbolError
from marketpipe.providers import BarsQuery, get_provider
from tests.providers.conftest import DATA

REPLAY = DATA / "replay"


def q(symbols, interval="1d", start="2024-01-01", end="2024-01-31") -> BarsQuery:
    return BarsQuery(tuple(symbols), interval, date.fromisoformat(start), date.fromisoformat(end))


def test_common_shape_one_symbol_from_file_name():
    res = get_provider("replay", replay_path=REPLAY / "AAPL.csv").fetch(
        q(["AAPL"], end="2024-01-04")
    )
    assert res.bars["ts"].tolist() == [
        pd.Timestamp(d, tz="UTC") for d in ("2024-01-02", "2024-01-03", "2024-01-04")
    ]
    first = res.bars.iloc[0]
    assert (first.symbol, first.open, first.close, first.volume, first.source) == (
        "AAPL",
        187.15,
        185.64,
        82488700.0,
        "replay",
    )
    assert res.rejected.empty and res.requests == 0


def test_symbol_column_and_bad_row_rejected_not_crash():
    res = get_provider("replay", replay_path=REPLAY / "multi_bad_row.csv").fetch(
        q(["AAPL", "MSFT"])
    )
    assert sorted(zip(res.bars["symbol"], res.bars["ts"].dt.strftime("%F"), strict=True)) == [
        ("AAPL", "2024-01-02"),
        ("MSFT", "2024-01-02"),
        ("MSFT", "2024-01-03"),
    ]
    assert res.rejected["reason"].tolist() == ["malformed", "malformed"]
    assert "open" in res.rejected["detail"].iloc[0] and '"n/a"' in res.rejected["payload"].iloc[0]
    assert "ts" in res.rejected["detail"].iloc[1]


def test_canonical_shape_parquet_filtered_by_interval(tmp_path):
    df = pd.read_csv(REPLAY / "canonical.csv")
    path = tmp_path / "bars.parquet"
    df.to_parquet(path)
    res = get_provider("replay", replay_path=path).fetch(
        q(["SPY"], interval="5m", end="2024-01-02")
    )
    assert res.bars["ts"].tolist() == [
        pd.Timestamp("2024-01-02 14:30", tz="UTC"),
        pd.Timestamp("2024-01-02 14:35", tz="UTC"),
    ]
    assert res.bars["trades"].tolist() == [15000, 12000] and res.bars["vwap"].iloc[0] == 472.35


def test_known_symbol_without_rows_in_range_is_empty_unknown_raises():
    prov = get_provider("replay", replay_path=REPLAY / "multi_bad_row.csv")
    assert prov.fetch(q(["AAPL"], start="2024-02-01", end="2024-02-02")).empty_symbols == ["AAPL"]
    with pytest.raises(UnknownSymbolError, match="replay TSLA"):
        prov.fetch(q(["TSLA"]))


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="replay file not found"):
        get_provider("replay", replay_path=tmp_path / "nope.csv").fetch(q(["AAPL"]))
    with pytest.raises(ConfigError, match="--replay-path"):
        get_provider("replay")


def test_missing_columns_is_contract_error_naming_them():
    with pytest.raises(ContractError, match="High, Low, Volume|high, low, volume"):
        get_provider("replay", replay_path=REPLAY / "missing_columns.csv").fetch(q(["AAPL"]))


def test_replay_with_only_a_path_stores_every_symbol_and_date_in_the_file(tmp_path, prefect_server):
    """Not the default symbols (AAPL, MSFT, SPY) nor the last 90 days: the file's content."""
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    import pandas_market_calendars as mcal  # sessions from an independent calendar
    from prefect.settings import PREFECT_API_URL

    days = mcal.get_calendar("XNYS").valid_days("2021-03-01", "2021-05-31")[:30]
    frame = pd.concat(
        [
            pd.DataFrame(
                {"symbol": sym, "ts": days, "open": 10.0, "high": 11.0, "low": 9.0}
                | {"close": 10.5, "volume": 100.0}
            )
            for sym in ("ZZZA", "ZZZB", "ZZZC")
        ],
        ignore_index=True,
    )
    path = tmp_path / "old.parquet"
    frame.to_parquet(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env |= {"MARKETPIPE_DATA_DIR": str(tmp_path / "data"), "MARKETPIPE_HOT_DAYS": "36500"}
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    root = Path(__file__).resolve().parents[2]
    cmd = "import sys; from cli.main import main; sys.exit(main())"
    res = subprocess.run(
        [sys.executable, "-c", cmd, "run", "--source", "replay", "--replay-path", str(path)],
        env=env | {"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert res.returncode == 0, res.stderr
    assert re.search(r"total\s+90\s+90\s+0\s+0", res.stdout), res.stdout  # fetched hot cold quar.
    assert "stages (s):" in res.stdout
    with sqlite3.connect(tmp_path / "data" / "hot.db") as conn:
        got = conn.execute(
            "select symbol, count(*), min(ts), max(ts) from bars group by 1"
        ).fetchall()
    first, last = (int(d.value // 1000) for d in (days[0], days[-1]))
    assert got == [(s, 30, first, last) for s in ("ZZZA", "ZZZB", "ZZZC")]
