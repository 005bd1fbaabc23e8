"""ParquetLake on a local folder and on S3 (moto server over HTTP, through s3fs)."""

from __future__ import annotations

import json
import socket
import threading

import duckdb
import fsspec
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from marketpipe.bars import BAR_COLUMNS, BAR_DTYPES
from marketpipe.errors import ConfigError, ContractError, ServiceUnavailable
from marketpipe.storage.lake import ParquetLake
from marketpipe.storage.lake_paths import PartitionKey

ODD_SYMBOLS = ["^GSPC", "EURUSD=X", "BRK.B", "BTC/USD", "BRK-B"]


def _fs(target):
    url, opts = target
    return fsspec.core.url_to_fs(url, **opts)


def _files(target) -> list[str]:
    """Every file under the lake, relative to its root, sorted."""
    fs, root = _fs(target)
    if not fs.exists(root):
        return []
    return sorted(p[len(root.rstrip("/")) + 1 :] for p in fs.find(root))


def _bytes(target, rel: str) -> bytes:
    fs, root = _fs(target)
    return fs.cat_file(f"{root}/{rel}")


def _lake(target, **kw) -> ParquetLake:
    return ParquetLake(target[0], target[1], **kw)


def _canon(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["symbol", "ts"]).reset_index(drop=True)


def test_round_trip_keeps_values_and_dtypes(lake_target, bars):
    lake = _lake(lake_target)
    src = pd.concat([bars("AAPL", 30), bars("MSFT", 20)])
    report = lake.write_bars(src)
    assert report.rows_written == 50 and report.rows_received == 50
    assert sorted(p.symbol for p in report.partitions) == ["AAPL", "MSFT"]
    out = lake.read_bars(["AAPL", "MSFT"], "1m")
    assert list(out.columns) == list(BAR_COLUMNS)
    assert {c: str(t) for c, t in out.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in BAR_DTYPES.items()
    }
    pd.testing.assert_frame_equal(out, _canon(src.astype(BAR_DTYPES)))
    assert out["trades"].isna().sum() == 2 and out["vwap"].isna().sum() == 2


def test_empty_read_and_empty_write(lake_target, bars):
    lake = _lake(lake_target)
    assert lake.write_bars(bars(n=0)).rows_written == 0
    out = lake.read_bars("AAPL", "1m")
    assert out.empty and list(out.columns) == list(BAR_COLUMNS)
    assert str(out["ts"].dtype) == "datetime64[us, UTC]"
    assert lake.partitions() == []


def test_partition_layout_is_exact(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(bars("AAPL", 3, start="2023-12-31 23:58"))
    lake.write_bars(bars("^GSPC", 2, interval="1d", freq="1D"))
    assert _files(lake_target) == [
        "bars/interval=1d/symbol=%5EGSPC/year=2024/part-0.parquet",
        "bars/interval=1m/symbol=AAPL/year=2023/part-0.parquet",
        "bars/interval=1m/symbol=AAPL/year=2024/part-0.parquet",
    ]
    info = {(p.interval, p.symbol, p.year): (p.files, p.rows) for p in lake.partitions()}
    assert info == {
        ("1d", "^GSPC", 2024): (1, 2),
        ("1m", "AAPL", 2023): (1, 2),
        ("1m", "AAPL", 2024): (1, 1),
    }


def test_rewrite_merges_and_deduplicates(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(bars("AAPL", 10))
    report = lake.write_bars(bars("AAPL", 15))  # first 10 identical, 5 new
    assert (report.rows_added, report.rows_changed, report.rows_unchanged) == (5, 0, 10)
    assert report.restated == []
    out = lake.read_bars("AAPL", "1m")
    assert len(out) == 15 and out["ts"].is_unique
    assert _files(lake_target) == ["bars/interval=1m/symbol=AAPL/year=2024/part-0.parquet"]
    # duplicates inside one incoming frame: the last one wins
    dup = bars("AAPL", 2, start="2024-03-01 15:00")
    dup2 = dup.copy()
    dup2["close"] = 7.0
    lake.write_bars(pd.concat([dup, dup2]))
    out = lake.read_bars("AAPL", "1m", start="2024-03-01 15:00")
    assert out["close"].tolist() == [7.0, 7.0]


def test_rerun_is_idempotent_and_deterministic(lake_target, tmp_path, bars):
    lake = _lake(lake_target)
    a, b = bars("AAPL", 40), bars("AAPL", 40, start="2024-03-01 15:30")
    lake.write_bars(a)
    lake.write_bars(b)
    rel = "bars/interval=1m/symbol=AAPL/year=2024/part-0.parquet"
    before = _bytes(lake_target, rel)
    again = lake.write_bars(pd.concat([a, b]))
    assert again.rows_written == 0 and again.partitions == [] and again.files == []
    assert _bytes(lake_target, rel) == before
    # the same rows written in one go elsewhere give byte-identical files
    other = ParquetLake(str(tmp_path / "other"))
    other.write_bars(pd.concat([b, a]))
    assert (tmp_path / "other" / rel).read_bytes() == before
    assert not any(f.startswith("_tmp/") for f in _files(lake_target))


def test_odd_symbols_round_trip_and_external_readers_decode_them(lake_target, bars):
    lake = _lake(lake_target)
    src = pd.concat([bars(s, 5) for s in ODD_SYMBOLS])
    lake.write_bars(src)
    assert "bars/interval=1m/symbol=BTC%2FUSD/year=2024/part-0.parquet" in _files(lake_target)
    assert sorted(p.symbol for p in lake.partitions()) == sorted(ODD_SYMBOLS)
    for sym in ODD_SYMBOLS:
        assert lake.read_bars(sym, "1m")["symbol"].tolist() == [sym] * 5

    fs, root = _fs(lake_target)
    table = pads.dataset(f"{root}/bars", filesystem=fs, partitioning="hive").to_table()
    assert sorted(set(table.column("symbol").to_pylist())) == sorted(ODD_SYMBOLS)
    assert set(table.column("year").to_pylist()) == {2024}
    assert table.num_rows == 25
    # the higher-level pyarrow/pandas readers (dictionary-typed partition fields) work too
    frame = pd.read_parquet(f"{root}/bars", filesystem=fs)
    assert sorted(frame["symbol"].astype(str).unique()) == sorted(ODD_SYMBOLS)
    assert pq.read_table(f"{root}/bars", filesystem=fs).num_rows == 25
    # files hold the non-partition canonical columns only; the path holds interval/symbol/year
    one = pq.read_schema(
        f"{root}/bars/interval=1m/symbol=%5EGSPC/year=2024/part-0.parquet", filesystem=fs
    )
    # (`session` is derived from ts: the Parquet lake does not store it)
    assert one.names == [c for c in BAR_COLUMNS if c not in ("symbol", "interval", "session")]
    assert (
        str(one.field("ts").type) == "timestamp[us, tz=UTC]"
        and str(one.field("trades").type) == "int64"
    )

    con = duckdb.connect()
    con.register_filesystem(fs)
    proto = "" if lake.io.is_local else "s3://"
    rows = con.sql(
        f"select symbol, interval, count(*), min(year) from read_parquet("
        f"'{proto}{root}/bars/**/*.parquet', hive_partitioning=true) group by all order by 1"
    ).fetchall()
    assert rows == [(s, "1m", 5, 2024) for s in sorted(ODD_SYMBOLS)]


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


def test_null_keys_are_rejected(lake_target, bars):
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
    assert _files(lake_target) == []


def test_bad_interval_is_rejected(lake_target, bars):
    lake = _lake(lake_target)
    with pytest.raises(ConfigError):
        lake.write_bars(bars(interval="../2m"))
    assert _files(lake_target) == []


def test_restatement_rewrites_one_partition_and_keeps_superseded_copy(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(pd.concat([bars("AAPL", 10), bars("MSFT", 10)]))
    aapl = "bars/interval=1m/symbol=AAPL/year=2024/part-0.parquet"
    msft = "bars/interval=1m/symbol=MSFT/year=2024/part-0.parquet"
    old_aapl, old_msft = _bytes(lake_target, aapl), _bytes(lake_target, msft)

    fix = bars("AAPL", 3)
    fix["close"] = [1.0, 2.0, 3.0]
    extra = bars("AAPL", 2, start="2024-03-01 16:00")
    report = lake.write_bars(pd.concat([fix, extra, bars("MSFT", 10)]))
    assert report.partitions == [PartitionKey("1m", "AAPL", 2024)]
    assert report.partitions_unchanged == [PartitionKey("1m", "MSFT", 2024)]
    assert (report.rows_changed, report.rows_added) == (3, 2)
    [restated] = report.restated
    assert restated.partition == PartitionKey("1m", "AAPL", 2024) and restated.changed_rows == 3
    assert _bytes(lake_target, msft) == old_msft
    assert _bytes(lake_target, f"{restated.superseded_path}/part-0.parquet") == old_aapl
    stamp = restated.superseded_path.split("/")[1]
    summary = report.summary()
    assert json.loads(json.dumps(summary)) == summary and summary["rows_changed"] == 3
    assert lake.superseded() == [(stamp, PartitionKey("1m", "AAPL", 2024))]
    assert lake.read_bars("AAPL", "1m")["close"].head(3).tolist() == [1.0, 2.0, 3.0]
    # pure additions do not create superseded copies
    lake.write_bars(bars("AAPL", 1, start="2024-03-01 17:00"))
    assert len(lake.superseded()) == 1
    with pytest.raises(ConfigError):
        lake.restore_superseded("../../bars", "1m", "AAPL", 2024)
    # undo
    assert lake.restore_superseded(stamp, "1m", "AAPL", 2024) == 10
    assert _bytes(lake_target, aapl) == old_aapl
    assert len(lake.superseded()) == 2  # the restated content is kept too


def test_compaction_reduces_files_and_keeps_rows(lake_target, bars):
    lake = _lake(lake_target, max_rows_per_file=7)
    src = pd.concat([bars("AAPL", 50), bars("MSFT", 5)])
    lake.write_bars(src)
    before = lake.read_bars(["AAPL", "MSFT"], "1m")
    assert {p.symbol: p.files for p in lake.partitions()} == {"AAPL": 8, "MSFT": 1}
    report = lake.compact()
    assert report.partitions_compacted == [PartitionKey("1m", "AAPL", 2024)]
    assert (report.files_before, report.files_after, report.rows) == (9, 2, 50)
    assert {p.symbol: (p.files, p.rows) for p in lake.partitions()} == {
        "AAPL": (1, 50),
        "MSFT": (1, 5),
    }
    pd.testing.assert_frame_equal(lake.read_bars(["AAPL", "MSFT"], "1m"), before)
    rel = "bars/interval=1m/symbol=AAPL/year=2024/part-0.parquet"
    snapshot = _bytes(lake_target, rel)
    again = lake.compact()
    assert again.partitions_compacted == [] and again.partitions_skipped == 2
    assert _bytes(lake_target, rel) == snapshot
    assert lake.superseded() == []  # compaction changes no values


def test_compaction_respects_target_bytes(lake_target, bars):
    lake = _lake(lake_target, max_rows_per_file=10)
    lake.write_bars(bars("AAPL", 120))
    [info] = lake.partitions()
    assert info.files == 12
    target = info.bytes // 3  # ~3 files' worth of data
    lake.compact(target_bytes=target)
    [after] = lake.partitions()
    assert 1 < after.files < 12 and after.rows == 120


def test_read_prunes_partitions(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(
        pd.concat(
            [
                bars("AAPL", 5),
                bars("AAPL", 5, start="2023-06-01"),
                bars("MSFT", 5),
            ]
        )
    )
    fs, root = _fs(lake_target)
    for rel in (
        "bars/interval=1m/symbol=MSFT/year=2024/part-0.parquet",
        "bars/interval=1m/symbol=AAPL/year=2023/part-0.parquet",
    ):
        fs.pipe_file(f"{root}/{rel}", b"not parquet at all")
    out = lake.read_bars("AAPL", "1m", start="2024-01-01", end="2024-12-31 23:59")
    assert len(out) == 5 and set(out["ts"].dt.year) == {2024}
    with pytest.raises(Exception):  # noqa: B017 - the corrupted partition is really read
        lake.read_bars("AAPL", "1m")


def test_read_filters_ts_half_open(lake_target, bars):
    lake = _lake(lake_target)
    lake.write_bars(bars("AAPL", 10))
    out = lake.read_bars("AAPL", "1m", start="2024-03-01 14:32", end="2024-03-01 14:35")
    assert out["ts"].dt.strftime("%H:%M").tolist() == ["14:32", "14:33", "14:34"]


def test_bounded_files_hold_contiguous_ts_ranges(lake_target, bars):
    lake = _lake(lake_target, max_rows_per_file=25)
    src = bars("AAPL", 110)
    lake.write_bars(src.sample(frac=1, random_state=1))  # shuffled input
    [info] = lake.partitions()
    assert (info.files, info.rows) == (5, 110)
    fs, root = _fs(lake_target)
    part = f"{root}/bars/interval=1m/symbol=AAPL/year=2024"
    last = None
    for n in range(5):
        t = pads.dataset(f"{part}/part-{n}.parquet", filesystem=fs).to_table()
        ts = t.column("ts").to_pandas()
        assert t.num_rows == (25 if n < 4 else 10) and ts.is_monotonic_increasing
        assert last is None or ts.iloc[0] > last
        last = ts.iloc[-1]
    out = lake.read_bars("AAPL", "1m")
    assert len(out) == 110 and out["ts"].is_unique
    # shrinking the partition removes stale part files
    lake2 = _lake(lake_target, max_rows_per_file=1000)
    fix = bars("AAPL", 1)
    fix["close"] = 0.5
    lake2.write_bars(fix)
    assert [p.files for p in lake2.partitions()] == [1]
    assert len(lake2.read_bars("AAPL", "1m")) == 110


def test_verify_partition_and_keys(lake_target, bars):
    lake = _lake(lake_target)
    src = bars("AAPL", 10)
    lake.write_bars(src)
    keys = lake.partition_keys("1m", "AAPL", 2024)
    assert list(keys) == list(src["ts"])
    assert lake.verify_partition("1m", "AAPL", 2024, src["ts"])
    assert lake.verify_partition("1m", "AAPL", 2024, src["ts"][:3])
    assert not lake.verify_partition("1m", "AAPL", 2024, src["ts"][:3], exact=True)
    missing = pd.Timestamp("2024-05-01", tz="UTC")
    assert not lake.verify_partition("1m", "AAPL", 2024, [missing])
    assert not lake.verify_partition("1m", "MSFT", 2024, src["ts"])


def test_delete_partition_rows(lake_target, bars):
    lake = _lake(lake_target)
    src = bars("AAPL", 10)
    lake.write_bars(src)
    assert lake.delete_partition_rows("1m", "AAPL", 2024, src["ts"][:4]) == 4
    assert len(lake.read_bars("AAPL", "1m")) == 6
    assert len(lake.superseded()) == 1
    assert lake.delete_partition_rows("1m", "AAPL", 2024, src["ts"]) == 6
    assert lake.partitions() == []


def test_readers_never_see_a_torn_partition(lake_target, bars):
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
        for i in range(6):
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
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        "key": "AKIDSECRETKEY",
        "secret": "very-secret-value",
    }
    lake = ParquetLake("s3://nowhere/lake", opts)
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
        [
            bars("AAPL", 300, start="2023-12-31 22:00"),
            bars("MSFT", 300, start="2023-12-31 22:00"),
        ]
    )
    shuffled = src.sample(frac=1, random_state=7)  # ~600 runs: takes the sort path
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
