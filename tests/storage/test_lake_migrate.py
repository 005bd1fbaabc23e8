"""`marketpipe lake migrate`: the first version's Hive-Parquet lake becomes the Delta tables,
verified, idempotent and resumable; reading an unmigrated lake refuses with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketpipe.errors import ConfigError
from marketpipe.storage.delta_lake import DeltaLake
from marketpipe.storage.lake_migrate import migrate_lake
from tests.storage.frames import make_bars

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())"]


def _old_lake(root: Path) -> pd.DataFrame:
    """Write bars the way the first ParquetLake did: path-only interval/symbol, part-N files."""
    frames = [
        make_bars(("AAPL",), start="2023-12-29 14:30", periods=40, interval="1h"),
        make_bars(("^GSPC",), start="2024-01-02", periods=5, interval="1d"),
    ]
    for df in frames:
        df = df.assign(year=df["ts"].dt.year)
        for (iv, sym, year), part in df.groupby(["interval", "symbol", "year"]):
            folder = root / "bars" / f"interval={iv}" / f"symbol={quote(sym, safe='')}"
            folder = folder / f"year={year}"
            folder.mkdir(parents=True)
            rows = part.drop(columns=["interval", "symbol", "year"]).reset_index(drop=True)
            half = len(rows) // 2
            for n, chunk in enumerate((rows.iloc[:half], rows.iloc[half:])):
                pq.write_table(
                    pa.Table.from_pandas(chunk, preserve_index=False), folder / f"part-{n}.parquet"
                )
    (root / "_superseded" / "20240101T000000.000000Z").mkdir(parents=True)
    (root / "_tmp" / "abc").mkdir(parents=True)
    feats = make_bars(("AAPL",), start="2024-01-02", periods=3, interval="1d")[["ts", "close"]]
    ffolder = root / "features" / "interval=1d" / "symbol=AAPL" / "year=2024"
    ffolder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(feats.assign(sma_3=1.0)), ffolder / "part-0.parquet")
    return pd.concat(frames, ignore_index=True)


def _env(data: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env.update(MARKETPIPE_DATA_DIR=str(data), PYTHONPATH=str(ROOT))
    return env


def _mp(env, *args):
    return subprocess.run(
        [*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _assert_all(lake: DeltaLake, src: pd.DataFrame) -> None:
    for iv in ("1h", "1d"):
        want = src.loc[src["interval"] == iv]
        got = lake.read_bars(list(want["symbol"].unique()), iv)
        assert len(got) == len(want) and not got.duplicated(["symbol", "ts"]).any()
        assert got["close"].tolist() == want.sort_values(["symbol", "ts"])["close"].tolist()


def test_unmigrated_lake_is_refused_then_migrated_in_place(tmp_path):
    data = tmp_path / "data"
    src = _old_lake(data / "lake")
    res = _mp(_env(data), "read", "AAPL", "--interval", "1h")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "marketpipe lake migrate" in res.stderr
    res = _mp(_env(data), "lake", "migrate")
    assert res.returncode == 0, res.stderr
    assert f"migrated {len(src) + 3} rows" in res.stdout
    lake = DeltaLake(str(data / "lake"))
    _assert_all(lake, src)
    assert len(lake.read_features(["AAPL"], "1d")) == 3
    left = [p.name for p in (data / "lake").rglob("part-*.parquet") if p.name.count("-") == 1]
    assert left == []  # old files gone, only Delta's part-…-uuid files remain
    assert not (data / "lake" / "_superseded").exists() and not (data / "lake" / "_tmp").exists()
    again = _mp(_env(data), "lake", "migrate")  # idempotent
    assert again.returncode == 0 and "migrated 0 rows" in again.stdout
    res = _mp(_env(data), "read", "AAPL", "--interval", "1h")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 41


def test_interrupted_migration_refuses_reads_and_resumes(tmp_path, monkeypatch):
    root = tmp_path / "lake"
    src = _old_lake(root)
    calls = {"n": 0}
    real = DeltaLake.write_bars

    def crash_on_second(self, df):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed mid-migration")
        return real(self, df)

    monkeypatch.setattr(DeltaLake, "write_bars", crash_on_second)
    with pytest.raises(RuntimeError):
        migrate_lake(str(root))
    monkeypatch.setattr(DeltaLake, "write_bars", real)
    with pytest.raises(ConfigError, match="lake migrate"):
        DeltaLake(str(root)).read_bars(["AAPL"], "1h")
    migrate_lake(str(root))
    _assert_all(DeltaLake(str(root)), src)


def test_migrate_to_another_url_on_s3(tmp_path, s3_bucket):
    root = tmp_path / "lake"
    src = _old_lake(root)
    url, opts = s3_bucket
    report = migrate_lake(str(root), None, url, opts)
    assert report.rows == len(src) + 3
    _assert_all(DeltaLake(url, opts), src)
    assert (root / "bars" / "interval=1d").exists()  # the source is left as it was
    assert migrate_lake(str(root), None, url, opts).rows == len(src) + 3  # re-run: no change
    _assert_all(DeltaLake(url, opts), src)
