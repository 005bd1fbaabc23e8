"""The console script as a user runs it: `marketpipe run` on the embedded default, then `read`."""

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketpipe.bars import BAR_COLUMNS


@pytest.fixture
def cli_env(tmp_path, prefect_server):
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETPIPE_")}
    env["MARKETPIPE_DATA_DIR"] = str(tmp_path / "data")
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    return env


def mp(env, *args, cwd=None):
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or Path(__file__).resolve().parents[1],
    )


def _stored_counts(data: Path) -> tuple[int, int]:
    import sqlite3

    import pyarrow.dataset as ds

    with sqlite3.connect(data / "hot.db") as conn:
        hot = conn.execute("select count(*) from bars").fetchone()[0]
    cold = ds.dataset(data / "lake" / "bars", partitioning="hive").count_rows()
    return hot, cold


def test_run_twice_then_read(cli_env, tmp_path):
    first = mp(cli_env, "run")
    assert first.returncode == 0, first.stderr
    assert "hot store: sqlite:///" in first.stdout and "total" in first.stdout
    data = Path(cli_env["MARKETPIPE_DATA_DIR"])
    assert (data / "hot.db").exists()
    assert list((data / "lake" / "bars").rglob("*.parquet"))
    counts = _stored_counts(data)
    assert counts[0] > 0 and counts[1] > 0  # both tiers receive rows
    second = mp(cli_env, "run")  # incremental: watermark minus overlap, same stored rows
    assert second.returncode == 0, second.stderr
    assert _stored_counts(data) == counts

    out = mp(cli_env, "read", "AAPL", "--interval", "1d")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == list(BAR_COLUMNS)
    assert len(rows) > 40  # ~62 sessions in 90 days, hot and cold together
    assert rows[1][2].endswith("Z") and "T" in rows[1][2]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--interval", "2m"], "--interval"),
        (["run", "--start", "2024-13-01"], "--start"),
        (["run", "--symbols", "../x"], "invalid symbol"),
        (["run", "--stages", "bogus"], "unknown stage"),
        (["read", "A;DROP TABLE bars"], "invalid symbol"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli_env, args, needle):
    res = mp(cli_env, *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert needle in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_bad_setting_names_the_variable(cli_env):
    env = dict(cli_env, MARKETPIPE_HOT_DAYS="-3")
    res = mp(env, "run")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("marketpipe: error: MARKETPIPE_HOT_DAYS:")


def test_dry_run_touches_nothing(cli_env):
    res = mp(cli_env, "run", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "expected bars per symbol" in res.stdout
    assert not Path(cli_env["MARKETPIPE_DATA_DIR"]).exists()
