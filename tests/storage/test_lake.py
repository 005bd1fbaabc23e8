"""The Delta Lake cold store on a local folder and on S3 (a moto server, through delta-rs)."""

from __future__ import annotations

import json
import socket
import threading

import fsspec
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES
from marketpipe.errors import ConfigError, ContractError, ServiceUnavailable
from marketpipe.storage.delta_io import delta_storage_options
from marketpipe.storage.delta_lake import DeltaLake
from marketpipe.storage.interfaces import ColdStore
from marketpipe.storage.lake_paths import PartitionKey

ODD_SYMBOLS = ["^GSPC", "EURUSD=X", "BRK.B", "BTC/USD", "BRK-B"]


def _files(target) -> list[str]:
    """Every file under the lake, relative to its root, sorted."""
    url, opts = target
    fs, root = fsspec.core.url_to_fs(url, **opts)
    if not fs.exists(root):
        return []
    return sorted(p[len(root.rstrip("/")) + 1 :] for p in fs.find(root))


def _lake(target) -> DeltaLake:
    return DeltaLake(target[0], target[1])


def _table(target) -> DeltaTable:
    url, opts = target
    return DeltaTable(f"{url}/bars", storage_options=delta_storage_options(url, opts) or None)


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["symbol", "ts"]).reset_index(drop=True)


def test_is_a_cold_store(lake_target):
    assert isinstance(_lake(lake_target), ColdStore)


def test_round_trip_keeps_values_and_dtypes(lake_target, bars):
    lake = _lake(lake_target)
    src = pd.concat([bars("AAPL", 30), bars("MSFT", 20)])
    report = lake.write_bars(src)
    assert report.rows_written == 50 and report.rows_received == 50
    assert report.write_path == "insert"
    assert sorted(p.symbol for p in report.partitions) == ["AAPL", "MSFT"]
    out = lake.read_bars(["AAPL", "MSFT"], "1m")
    assert list(out.columns) == list(BAR_COLUMNS)
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in BAR_DTYPES.items()
    }
    pd.testing.assert_frame_equal(out, _canon(src.astype(BAR_DTYPES)))
    assert out["trades"].isna().sum() == 2 and out["vwap"].isna().sum() == 2


def test_table_has_session_and_ingested_at_and_partitions(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(
        pd.concat(
            [bars("AAPL", 3, start="2023-12-31 23:58"), bars("^GSPC", 2, interval="1d", freq="1D")]
        )
    )
    dt = _table(lake_target)
    assert dt.metadata().partition_columns == ["interval", "symbol", "year"]
    schema = pa.schema(dt.schema().to_arrow())
    assert str(schema.field("session").type) == "date32[day]"
    assert "ingested_at" in schema.names
    t = dt.to_pyarrow_table().to_pandas().sort_values(["symbol", "ts"])
    # 23:58 UTC on Dec 31 .. 00:00 Jan 1 is 18:58..19:00 in New York: session Dec 31 for all
    # three; a daily bar's session is its UTC date (marketpipe.calendar.session_dates)
    assert [str(s) for s in t["session"]] == ["2023-12-31"] * 3 + ["2024-03-01", "2024-03-02"]
    info = {(p.interval, p.symbol, p.year): p.rows for p in lake.partitions()}
    assert info == {("1d", "^GSPC", 2024): 2, ("1m", "AAPL", 2023): 2, ("1m", "AAPL", 2024): 1}
    assert any(f.startswith("bars/_delta_log/") for f in _files(lake_target))
    assert not any(f.startswith(("_tmp/", "_superseded/")) for f in _files(lake_target))


def test_empty_read_and_empty_write(lake_target, bars):
    lake = _lake(lake_target)
    assert lake.write_bars(bars(n=0)).rows_written == 0
    out = lake.read_bars("AAPL", "1m")
    assert out.empty and list(out.columns) == list(BAR_COLUMNS)
    assert str(out["ts"].dtype) == "datetime64[us, UTC]"
    assert lake.partitions() == [] and lake.versions() == []


def test_rewrite_merges_and_deduplicates(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(bars("AAPL", 10))
    report = lake.write_bars(bars("AAPL", 15))  # first 10 identical, 5 new
    assert (report.rows_added, report.rows_changed, report.rows_unchanged) == (5, 0, 10)
    assert report.write_path == "merge"
    out = lake.read_bars("AAPL", "1m")
    assert len(out) == 15 and out["ts"].is_unique
    dup = bars("AAPL", 2, start="2024-03-01 15:00")
    dup2 = dup.copy()
    dup2["close"] = 7.0
    lake.write_bars(pd.concat([dup, dup2]))  # duplicates inside one frame: the last one wins
    out = lake.read_bars("AAPL", "1m", start="2024-03-01 15:00")
    assert out["close"].tolist() == [7.0, 7.0]


def test_rerun_is_idempotent_and_commits_nothing(lake_target, bars):
    lake = _lake(lake_target)
    a, b = bars("AAPL", 40), bars("AAPL", 40, start="2024-03-01 15:30")
    lake.write_bars(a)
    lake.write_bars(b)
    versions = len(lake.versions())
    again = lake.write_bars(pd.concat([a, b]))
    assert again.rows_written == 0 and again.partitions == [] and again.write_path == "noop"
    assert len(lake.versions()) == versions


def test_many_symbols_are_one_commit(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(pd.concat([bars(f"S{i}", 5) for i in range(12)]))
    assert [v["operation"] for v in lake.versions()] == ["MERGE", "WRITE"]  # create + one MERGE
    assert len(lake.partitions()) == 12


def test_odd_symbols_round_trip_and_stay_safe_in_paths(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(pd.concat([bars(s, 5) for s in ODD_SYMBOLS]))
    assert sorted(p.symbol for p in lake.partitions()) == sorted(ODD_SYMBOLS)
    for sym in ODD_SYMBOLS:
        assert lake.read_bars(sym, "1m")["symbol"].tolist() == [sym] * 5
    dirs = {f.split("/")[2] for f in _files(lake_target) if f.startswith("bars/interval=")}
    assert "symbol=BTC%2FUSD" in dirs and "symbol=%5EGSPC" in dirs  # one path segment each
    assert sorted(set(_table(lake_target).to_pyarrow_table()["symbol"].to_pylist())) == sorted(
        ODD_SYMBOLS
    )


@pytest.mark.parametrize("bad", ["../x", "..", "a/../b", "/etc", "x y", "ÄPFEL"])
def test_unsafe_symbol_is_rejected_before_any_path(lake_target, bad, bars):
    lake = _lake(lake_target)
    with pytest.raises(ConfigError):
        lake.write_bars(pd.concat([bars("AAPL", 2), bars(bad, 2)]))
    assert _files(lake_target) == []
    with pytest.raises(ConfigError):
        lake.read_bars([bad], "1m")
    with pytest.raises(ConfigError):
        PartitionKey("1m", bad, 2024)


def test_null_keys_and_bad_interval_are_rejected(lake_target, bars):
    lake = _lake(lake_target)
    df = bars("AAPL", 3)
    df.loc[1, "symbol"] = None
    with pytest.raises(ContractError):
        lake.write_bars(df)
    df = bars("AAPL", 3)
    df["ts"] = df["ts"].astype("object")
    df.loc[2, "ts"] = None
    with pytest.raises(ContractError):
        lake.write_bars(df)
    with pytest.raises(ConfigError):
        lake.write_bars(bars(interval="../2m"))
    assert _files(lake_target) == []


def test_restatement_changes_only_its_rows(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(pd.concat([bars("AAPL", 10), bars("MSFT", 10)]))
    fix = bars("AAPL", 3)
    fix["close"] = [1.0, 2.0, 3.0]
    extra = bars("AAPL", 2, start="2024-03-01 16:00")
    report = lake.write_bars(pd.concat([fix, extra, bars("MSFT", 10)]))
    assert (report.rows_changed, report.rows_added, report.rows_unchanged) == (3, 2, 10)
    summary = report.summary()
    assert json.loads(json.dumps(summary)) == summary and summary["rows_changed"] == 3
    assert lake.read_bars("AAPL", "1m")["close"].head(3).tolist() == [1.0, 2.0, 3.0]
    assert lake.read_bars("MSFT", "1m")["close"].tolist() == bars("MSFT", 10)["close"].tolist()


def test_compaction_is_optimize_and_keeps_rows(lake_target, bars):
    lake = _lake(lake_target)
    for i in range(6):  # six commits → six small files in one partition
        lake.write_bars(bars("AAPL", 10, start=f"2024-03-0{i + 1} 14:30"))
    lake.write_bars(bars("MSFT", 5))
    before = lake.read_bars(["AAPL", "MSFT"], "1m")
    assert {p.symbol: p.files for p in lake.partitions()} == {"AAPL": 6, "MSFT": 1}
    report = lake.compact()
    assert report.partitions_compacted == [PartitionKey("1m", "AAPL", 2024)]
    assert (report.files_before, report.files_after, report.rows) == (7, 2, 60)
    pd.testing.assert_frame_equal(lake.read_bars(["AAPL", "MSFT"], "1m"), before)
    again = lake.compact()
    assert again.partitions_compacted == [] and again.files_after == 2
    assert lake.vacuum(retention_hours=0)  # the six replaced files go
    pd.testing.assert_frame_equal(lake.read_bars(["AAPL", "MSFT"], "1m"), before)


def test_read_filters_ts_half_open_and_prunes_years(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(pd.concat([bars("AAPL", 10), bars("AAPL", 5, start="2023-06-01")]))
    out = lake.read_bars("AAPL", "1m", start="2024-03-01 14:32", end="2024-03-01 14:35")
    assert out["ts"].dt.strftime("%H:%M").tolist() == ["14:32", "14:33", "14:34"]
    assert len(lake.read_bars("AAPL", "1m", start="2024-01-01")) == 10
    assert len(lake.read_bars("AAPL", "1m", end="2024-01-01")) == 5


def test_verify_partition_and_keys(lake_target, bars):
    lake = _lake(lake_target)
    src = bars("AAPL", 10)
    lake.write_bars(src)
    assert list(lake.partition_keys("1m", "AAPL", 2024)) == list(src["ts"])
    assert lake.verify_partition("1m", "AAPL", 2024, src["ts"])
    assert not lake.verify_partition("1m", "AAPL", 2024, src["ts"][:3], exact=True)
    assert not lake.verify_partition("1m", "AAPL", 2024, [pd.Timestamp("2024-05-01", tz="UTC")])
    assert not lake.verify_partition("1m", "MSFT", 2024, src["ts"])


def test_delete_partition_rows(lake_target, bars):
    lake = _lake(lake_target)
    src = bars("AAPL", 10)
    lake.write_bars(src)
    assert lake.delete_partition_rows("1m", "AAPL", 2024, src["ts"][:4]) == 4
    assert len(lake.read_bars("AAPL", "1m")) == 6
    assert lake.delete_partition_rows("1m", "AAPL", 2024, src["ts"]) == 6
    assert lake.partitions() == []


def test_readers_never_see_a_torn_write(lake_target, bars):
    lake = _lake(lake_target)
    a = bars("AAPL", 300)
    b = a.copy()
    b["close"] = -1.0
    lake.write_bars(a)
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            df = lake.read_bars("AAPL", "1m")
            seen.append((len(df), int((df["close"] == -1.0).sum())))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(4):
            lake.write_bars(b if i % 2 == 0 else a)
    finally:
        stop.set()
        t.join()
    assert seen and all(n == 300 and changed in (0, 300) for n, changed in seen)


def test_unreachable_endpoint_raises_service_unavailable(bars):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = {
        "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1, "read_timeout": 2},
        "key": "AKIDSECRETKEY",
        "secret": "very-secret-value",
    }
    lake = DeltaLake("s3://nowhere/lake", opts)
    with pytest.raises(ServiceUnavailable) as err:
        lake.read_bars("AAPL", "1m")
    msg = str(err.value)
    assert "\n" not in msg and "unreachable" in msg and f"127.0.0.1:{port}" in msg
    assert "secret" not in msg.lower() and "AKID" not in msg
    with pytest.raises(ServiceUnavailable):
        lake.write_bars(bars("AAPL", 2))


def test_interleaved_input_is_grouped_and_last_duplicate_wins(lake_target, bars):
    lake = _lake(lake_target)
    src = pd.concat(
        [bars("AAPL", 300, start="2023-12-31 22:00"), bars("MSFT", 300, start="2023-12-31 22:00")]
    )
    shuffled = src.sample(frac=1, random_state=7)
    later = shuffled.iloc[:5].copy()
    later["close"] = 42.0
    report = lake.write_bars(pd.concat([shuffled, later]))
    assert report.rows_written == 600 and len(report.partitions) == 4
    out = lake.read_bars(["MSFT", "AAPL"], "1m")
    pd.testing.assert_frame_equal(
        out.drop(columns="close"), _canon(src.astype(BAR_DTYPES)).drop(columns="close")
    )
    keys = list(zip(later["symbol"], later["ts"], strict=True))
    assert (out.set_index(["symbol", "ts"]).loc[keys, "close"] == 42.0).all()


def test_features_round_trip_and_upsert(lake_target, bars):
    lake = _lake(lake_target)
    f = bars("AAPL", 5)[["symbol", "interval", "ts", "close"]].assign(sma_3=1.5)
    assert lake.write_features(f) == 5
    f2 = f.copy()
    f2["sma_3"] = 2.5
    assert lake.write_features(pd.concat([f2, f2.assign(ts=f2["ts"] + pd.Timedelta("1D"))])) == 10
    out = lake.read_features(["AAPL"], "1m")
    assert len(out) == 10 and (out["sma_3"] == 2.5).all()
