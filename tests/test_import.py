"""`marketpipe import`: Polygon flat files (day and minute aggregates) land exactly, bad rows are
quarantined with reasons, a bad file fails alone, re-runs skip finished files (without reading
them), a SIGKILLed import resumes with only the unfinished files, and streaming in small batches
stores the same rows as one batch. Rows in = stored (hot + cold) + quarantined throughout.

Expected rows are built here from the fixture definitions with plain pandas; stored rows are read
back with sqlite3 and pyarrow (not through marketpipe's read path).
"""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

ROOT = Path(__file__).resolve().parents[1]
POLYGON_COLUMNS = "ticker,volume,open,close,high,low,window_start,transactions"
TICKERS = ("AAPL", "MSFT", "SPY")
DAYS = ("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05")
MINUTES = pd.date_range("2024-01-02 14:30", periods=5, freq="min", tz="UTC")


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.value)


def _day_rows(day: str) -> list[dict]:
    """One row per ticker; window_start = New York midnight of the session (as Polygon writes)."""
    start = pd.Timestamp(day, tz="America/New_York").tz_convert("UTC")
    rows = []
    for i, t in enumerate(TICKERS):
        base = 100.0 + 10 * i + int(day[-2:])
        rows.append(
            dict(
                ticker=t,
                volume=1000 + i,
                open=base,
                close=base + 1,
                high=base + 2,
                low=base - 1,
                window_start=_ns(start),
                transactions=50 + i,
            )
        )
    return rows


def _minute_rows() -> list[dict]:
    rows = []
    for t in TICKERS[:2]:
        for k, ts in enumerate(MINUTES):
            p = 200.0 + k
            rows.append(
                dict(
                    ticker=t,
                    volume=10 + k,
                    open=p,
                    close=p + 0.5,
                    high=p + 1,
                    low=p - 1,
                    window_start=_ns(ts),
                    transactions=3,
                )
            )
    return rows


def _write_csv_gz(path: Path, rows: list[dict], header: str = POLYGON_COLUMNS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + [",".join(str(r[c]) for c in header.split(",")) for r in rows]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def make_flat_files(root: Path) -> dict:
    """Day files for DAYS, one minute file, one broken file; returns the expected outcome."""
    good, bad = [], []  # (symbol, interval, ts, close) of rows that must land / be quarantined
    for day in DAYS:
        rows = _day_rows(day)
        if day == "2024-01-03":
            rows[0]["high"] = rows[0]["low"] - 5  # contract: high below low
            rows[1]["open"] = "x"  # adapter: unparseable open → malformed
        for r in rows:
            key = (r["ticker"], "1d", pd.Timestamp(day, tz="UTC"))
            (bad if r is rows[0] and day == "2024-01-03" or r["open"] == "x" else good).append(
                (*key, float(r["close"]))
            )
        _write_csv_gz(root / "day_aggs_v1" / "2024" / "01" / f"{day}.csv.gz", rows)
    minute = _minute_rows()
    minute[3]["volume"] = -7  # contract: negative volume
    for r in minute:
        key = (r["ticker"], "1m", pd.Timestamp(r["window_start"], unit="ns", tz="UTC"))
        (bad if r["volume"] < 0 else good).append((*key, float(r["close"])))
    _write_csv_gz(root / "minute_aggs_v1" / "2024" / "01" / "2024-01-02.csv.gz", minute)
    broken = root / "day_aggs_v1" / "2024" / "01" / "2024-01-08.csv.gz"
    _write_csv_gz(broken, [{"ticker": "AAPL", "open": 1}], header="ticker,open")
    return {"good": sorted(good), "bad": len(bad), "broken": broken}


@pytest.fixture
def env(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    e = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    e["MARKETPIPE_DATA_DIR"] = str(tmp_path / "data")
    e["PREFECT_API_URL"] = PREFECT_API_URL.value()
    e["PYTHONPATH"] = str(ROOT)
    # Jan 4 and earlier go cold, Jan 5 stays hot: both tiers are exercised
    e["MARKETPIPE_HOT_DAYS"] = str((date.today() - date(2024, 1, 4)).days)
    return e


def _cmd(*args) -> list[str]:
    return [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args]


def mp(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), env=env, capture_output=True, text=True, timeout=300)


def stored(data: Path) -> list[tuple]:
    rows = []
    with sqlite3.connect(data / "hot.db") as conn:
        for sym, ivl, ts, close in conn.execute("select symbol, interval, ts, close from bars"):
            rows.append((sym, ivl, pd.Timestamp(ts, unit="us", tz="UTC"), close))
    lake = data / "lake" / "bars"
    if lake.exists():
        t = ds.dataset(lake, partitioning="hive").to_table().to_pandas()
        for r in t.itertuples(index=False):
            rows.append((r.symbol, r.interval, pd.Timestamp(r.ts).tz_convert("UTC"), r.close))
    return sorted(rows)


def tiers(data: Path) -> tuple[int, int, int]:
    with sqlite3.connect(data / "hot.db") as conn:
        hot = conn.execute("select count(*) from bars").fetchone()[0]
        quarantined = conn.execute("select count(*) from quarantine").fetchone()[0]
    lake = data / "lake" / "bars"
    cold = ds.dataset(lake, partitioning="hive").count_rows() if lake.exists() else 0
    return hot, cold, quarantined


def reasons(data: Path) -> list[str]:
    with sqlite3.connect(data / "hot.db") as conn:
        return sorted(r for (r,) in conn.execute("select reason from quarantine"))


def ledger(data: Path) -> dict[str, tuple]:
    with sqlite3.connect(data / "hot.db") as conn:
        q = "select path, rows, imported_at from import_files"
        return {p: (n, at) for p, n, at in conn.execute(q)}


def test_polygon_flat_files_land_exactly_and_reimport_changes_nothing(tmp_path, env):
    files = tmp_path / "flatfiles"
    want = make_flat_files(files)
    data = tmp_path / "data"

    first = mp(env, "import", str(files))
    assert first.returncode == 1, first.stderr  # the broken file fails alone …
    errors = [ln for ln in first.stderr.splitlines() if ln.startswith("marketpipe: error:")]
    assert len(errors) == 1 and "2024-01-08.csv.gz" in errors[0] and "lacks column" in errors[0]
    assert "5 files imported" in first.stdout and "1 failed" in first.stdout
    # … and the others land: exactly the good rows, the bad ones quarantined with reasons
    assert stored(data) == want["good"]
    assert reasons(data) == ["high_lt_low,high_lt_open_close", "malformed", "volume_negative"]
    hot, cold, quarantined = tiers(data)
    assert hot > 0 and cold > 0
    assert hot + cold + quarantined == len(want["good"]) + want["bad"]  # rows in = out
    assert "stages (s):" in first.stdout and "slowest:" in first.stdout
    before = ledger(data)
    assert len(before) == 5

    # a finished file is not read again: same size and mtime, garbage inside
    done = files / "day_aggs_v1" / "2024" / "01" / "2024-01-02.csv.gz"
    st = done.stat()
    done.write_bytes(b"\x00" * st.st_size)
    os.utime(done, ns=(st.st_atime_ns, st.st_mtime_ns))

    second = mp(env, "import", str(files))
    assert second.returncode == 1  # only the broken file, again
    assert "0 files imported, 5 skipped" in second.stdout and "1 failed" in second.stdout
    assert stored(data) == want["good"] and tiers(data) == (hot, cold, quarantined)
    assert ledger(data) == before


def test_killed_import_resumes_with_only_the_unfinished_files(tmp_path, env):
    files = tmp_path / "days"
    import pandas_market_calendars as mcal  # sessions from an independent calendar

    days = mcal.get_calendar("XNYS").valid_days("2023-01-03", "2023-03-31")[:24].tz_localize(None)
    for d in days:
        _write_csv_gz(files / f"{d:%Y/%m/%Y-%m-%d}.csv.gz", _day_rows(f"{d:%Y-%m-%d}"))
    data = tmp_path / "data"
    kill_after = 4
    proc = subprocess.Popen(
        _cmd("import", str(files), "--interval", "1d", "--workers", "1", "--batch-rows", "1000"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = 0
    for line in proc.stdout:  # one line per finished file: kill after the N-th, not after a delay
        if line.lstrip().startswith("imported"):
            seen += 1
            if seen == kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the import finished before it was killed"
    finished = set(ledger(data))
    assert kill_after <= len(finished) < len(days)

    again = mp(env, "import", str(files), "--interval", "1d")
    assert again.returncode == 0, again.stderr
    imported = {
        ln.split()[1] for ln in again.stdout.splitlines() if ln.lstrip().startswith("imported")
    }
    everything = {str(p.resolve()) for p in files.rglob("*.csv.gz")}
    assert imported == everything - finished  # only the unfinished files were read
    assert f"{len(finished)} skipped" in again.stdout
    rows = stored(data)
    assert len(rows) == len(set((r[0], r[1], r[2]) for r in rows)) == len(days) * len(TICKERS)
    assert set(ledger(data)) == everything


def _canonical_frame(n_days: int) -> pd.DataFrame:
    """Canonical 1m bars for 2 symbols on real session minutes, with a few bad rows spread out."""
    from marketpipe.calendar import expected_bar_starts

    ts = expected_bar_starts("1m", date(2024, 3, 4), date(2024, 3, 4 + n_days - 1))
    frames = []
    for i, sym in enumerate(("AAA", "BBB")):
        close = 50.0 + i + np.arange(len(ts)) * 0.01
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "interval": "1m",
                    "ts": ts,
                    "open": close,
                    "high": close + 0.2,
                    "low": close - 0.2,
                    "close": close + 0.1,
                    "volume": 100.0,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df.loc[[7, 1500, 2999], "high"] = 1.0  # below low: quarantined in whichever batch they fall
    return df


def _import_with_batch(tmp_path, name: str, path: Path, batch_rows: int):
    from marketpipe import importer
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    settings = load_settings(data_dir=tmp_path / name, hot_days=400)
    stores = open_stores(settings)
    try:
        (ref,) = importer.discover([str(path)])
        report = importer.import_file(
            stores,
            ref,
            now=pd.Timestamp("2024-12-31", tz="UTC"),
            hot_days=settings.hot_days,
            batch_rows=batch_rows,
        )
        hot = stores.hot.read_bars(None, "1m", None, None)
        cold = stores.cold.read_bars(["AAA", "BBB"], "1m", None, None)
        return report, hot, cold
    finally:
        stores.close()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streaming_in_small_batches_stores_the_same_rows_as_one_batch(tmp_path, suffix):
    df = _canonical_frame(5)  # 2 × 5 × 390 = 3900 rows
    path = tmp_path / f"bars{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.assign(ts=df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    small, hot_s, cold_s = _import_with_batch(tmp_path, "small", path, 1000)
    big, hot_b, cold_b = _import_with_batch(tmp_path, "big", path, 1_000_000)
    assert small.status == big.status == "imported", (small.error, big.error)
    cols = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
    pd.testing.assert_frame_equal(
        hot_s[cols].sort_values(["symbol", "ts"], ignore_index=True),
        hot_b[cols].sort_values(["symbol", "ts"], ignore_index=True),
    )
    assert len(cold_s) == len(cold_b) == 0 or cold_s[cols].equals(cold_b[cols])
    for rep, hot, cold in ((small, hot_s, cold_s), (big, hot_b, cold_b)):
        assert rep.rows == len(df) == len(hot) + len(cold) + rep.quarantined
        assert rep.quarantined == 3


def test_epoch_milliseconds_in_parquet_are_read_as_milliseconds(tmp_path):
    """Issue 16.4: int64 epoch ms in Parquet land at the right instants (not in 1970)."""
    from marketpipe.importer_read import BarFile, Selection

    ts = pd.date_range("2024-01-02 14:30", periods=4, freq="min", tz="UTC")
    df = pd.DataFrame(
        {
            "symbol": "AAPL",
            "ts": ts.as_unit("ms").asi8,  # epoch milliseconds
            "open": 1.0,
            "high": 2.0,
            "low": 0.5,
            "close": 1.5,
            "volume": 10.0,
        }
    )
    mixed = df.copy()
    mixed.loc[3, "ts"] = int(ts[3].timestamp())  # one value in seconds: does not fit the unit
    for frame, name in ((df, "ms.parquet"), (mixed, "mixed.parquet")):
        frame.to_parquet(tmp_path / name)
    (batch,) = BarFile(str(tmp_path / "ms.parquet")).batches(Selection(interval="1m"))
    assert list(batch.bars["ts"]) == list(ts) and batch.rejected.empty
    (batch,) = BarFile(str(tmp_path / "mixed.parquet")).batches(Selection(interval="1m"))
    assert list(batch.bars["ts"]) == list(ts[:3])
    assert batch.rejected["reason"].tolist() == ["malformed"] and batch.rows == 4


@pytest.mark.parametrize(
    ("unit", "value"),
    [("s", "2024-01-02"), ("ms", "1999-12-31 23:59"), ("us", "2031-05-06"), ("ns", "1985-02-03")],
)
def test_epoch_unit_detected_by_magnitude(unit, value):
    from marketpipe.importer_read import epoch_to_us

    t = pd.Timestamp(value, tz="UTC")
    raw = {"s": t.value // 10**9, "ms": t.value // 10**6, "us": t.value // 10**3, "ns": t.value}
    us, ok, found = epoch_to_us(np.array([raw[unit]], dtype="int64"))
    assert found == unit and ok.all()
    assert pd.Timestamp(int(us[0]), unit="us", tz="UTC") == pd.to_datetime(
        raw[unit], unit=unit, utc=True
    )


def test_s3_prefix_import_and_etag_ledger(tmp_path, moto_server):
    import s3fs

    from marketpipe import importer
    from marketpipe.settings import load_settings
    from marketpipe.storage import open_stores

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": moto_server}, skip_instance_cache=True)
    fs.mkdir("flat-imports")
    local = tmp_path / "up"
    for day in DAYS[:2]:
        _write_csv_gz(local / f"{day}.csv.gz", _day_rows(day))
        fs.put(str(local / f"{day}.csv.gz"), f"flat-imports/day_aggs_v1/2024/01/{day}.csv.gz")
    opts = {"client_kwargs": {"endpoint_url": moto_server}}
    stores = open_stores(load_settings(data_dir=tmp_path / "data", hot_days=30))
    try:
        refs = importer.discover(["s3://flat-imports/day_aggs_v1/"], opts)
        assert [r.url.rsplit("/", 1)[-1] for r in refs] == [
            "2024-01-02.csv.gz",
            "2024-01-03.csv.gz",
        ]
        now = pd.Timestamp.now(tz="UTC")
        reports = importer.import_files(stores, refs, now=now, hot_days=30, storage_options=opts)
        assert [r.status for r in reports] == ["imported", "imported"], [r.error for r in reports]
        assert sum(r.cold for r in reports) == 2 * len(TICKERS)
        todo, skipped = importer.pending(stores, importer.discover(["s3://flat-imports/"], opts))
        assert todo == [] and len(skipped) == 2
    finally:
        stores.close()
