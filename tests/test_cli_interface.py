"""The command line as an operator meets it: help, global flags, exit codes and one-line errors
for bad input, checked before anything starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cli.main import COMMAND_ORDER, build_command, main

ROOT = Path(__file__).resolve().parents[1]


def commands() -> list[str]:
    from cli.main import _register

    _register()
    return list(build_command().commands)


@pytest.fixture
def env(tmp_path):
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MARKETPIPE_", "POLYGON_"))}
    out["MARKETPIPE_DATA_DIR"] = str(tmp_path / "data")
    out["COLUMNS"] = "120"
    return out


def mp(env, *args, timeout=300):
    return subprocess.run(
        [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def one_line_error(res, code: int, needle: str) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("marketpipe: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr + res.stdout


# ---------------------------------------------------------------- help
def test_commands_are_listed_in_workflow_order(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
    listed = sorted(
        (n for n in commands() if re.search(rf"│ {n} ", out)), key=lambda n: rank.get(n, 99)
    )
    positions = [out.index(f"│ {n} ") for n in listed]
    assert positions == sorted(positions)
    known = [n for n in COMMAND_ORDER if n in listed]
    assert known[:2] == ["run", "backfill"] and len(listed) >= 9


@pytest.mark.parametrize("name", commands())
def test_every_command_help_has_an_example_and_real_metavars(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out and f"marketpipe {name}" in out.split("Example", 1)[1]
    assert not re.search(r"<(bool|str|int|float)>", out), out
    assert "--debug" in out and "--verbose" in out


@pytest.mark.parametrize(
    ("name", "metavars"),
    [
        ("read", ["SYMBOLS", "DATE", "INTERVAL"]),
        ("run", ["SYMBOLS", "DATE", "FILE", "SOURCE"]),
        ("backfill", ["SYMBOLS", "DATE"]),
        ("validate", ["FILE"]),
        ("sql", ["QUERY"]),
    ],
)
def test_metavars_name_what_they_take(name, metavars, capsys):
    main([name, "--help"])
    out = capsys.readouterr().out
    for m in metavars:
        assert m in out, (m, out)


def test_bare_marketpipe_prints_help_and_exits_0(env):
    res = mp(env)
    assert res.returncode == 0 and "Usage: marketpipe" in res.stdout and not res.stderr


def test_version(env):
    res = mp(env, "--version")
    assert res.returncode == 0 and re.fullmatch(r"marketpipe \d+\.\d+\.\d+\s*", res.stdout)


def test_unknown_command_suggests_the_closest(env):
    one_line_error(mp(env, "rnu"), 2, "Did you mean 'run'?")
    one_line_error(mp(env, "bakfill"), 2, "Did you mean 'backfill'?")


@pytest.mark.parametrize("flags", [["--debug"], ["-v"], ["--verbose", "--debug"]])
def test_global_flags_before_or_after_the_command(env, flags):
    for args in ([*flags, "run", "--dry-run"], ["run", *flags, "--dry-run"]):
        res = mp(env, *args)
        assert res.returncode == 0, (args, res.stderr)
        assert "expected bars per symbol" in res.stdout


def test_debug_shows_the_traceback(env):
    res = mp(env, "run", "--interval", "2m", "--debug")
    assert res.returncode == 2 and "Traceback" in res.stderr


# ---------------------------------------------------------------- bad input: exit 2, one line
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            [
                "backfill",
                "--source",
                "foo",
                "--symbols",
                "AAPL",
                "--start",
                "2024-01-02",
                "--end",
                "2024-01-31",
                "--plan-only",
            ],
            "unknown source 'foo'",
        ),
        (
            [
                "backfill",
                "--source",
                "synthetic",
                "--symbols",
                "AAPL",
                "--start",
                "2024-03-01",
                "--end",
                "2024-01-31",
                "--plan-only",
            ],
            "--start 2024-03-01 is after --end 2024-01-31",
        ),
        (
            ["backfill", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "2024-01-31"],
            "POLYGON_API_KEY",
        ),
        (
            [
                "backfill",
                "--source",
                "synthetic",
                "--symbols",
                "AAPL",
                "--start",
                "2024-01-02",
                "--end",
                "2024-01-31",
                "--interval",
                "7m",
            ],
            "--interval",
        ),
        (["run", "--source", "polygon"], "POLYGON_API_KEY"),
        (["run", "--source", "bogus"], "unknown source 'bogus'"),
        (["run", "--source", "polygon,foo", "--dry-run"], "unknown source 'foo'"),
        (["run", "--start", "2024-03-01", "--end", "2024-02-01"], "is after --end"),
        (["run", "--start", "2024-03-01", "--end", "2024-02-01", "--dry-run"], "is after"),
        (["run", "--interval", "2m", "--dry-run"], "--interval"),
        (["run", "--source", "replay"], "--replay-path"),
        (["run", "--source", "replay", "--replay-path", "/nonexistent.csv"], "file not found"),
        (["run", "--mode", "sideways"], "unknown mode"),
        (["run", "--profile", "prod"], "--profile needs --job"),
        (["read", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"], "is after"),
        (["read", "AAPL", "--interval", "3h"], "--interval"),
        (["read", "AAPL"], "no data directory"),
        (["sql", "SELECT count(*) FROM bars"], "no data directory"),
        (["gaps", "--symbols", "AAPL", "--start", "2024-02-01", "--end", "2024-01-01"], "after"),
        (["validate", "/etc/passwd"], "/etc/passwd"),
        (["validate", "/nonexistent.csv"], "no such file"),
        (["validate", sys.executable], "binary"),
        (["compact", "--target-mb", "0"], "--target-mb"),
    ],
)
def test_bad_input_exits_2_with_one_line(env, args, needle):
    res = mp(env, *args)
    one_line_error(res, 2, needle)
    assert not Path(env["MARKETPIPE_DATA_DIR"]).exists()  # nothing was created


def test_empty_file_exits_2(env, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    one_line_error(mp(env, "validate", str(empty)), 2, "is empty")


# ---------------------------------------------------------------- failures: exit 1, one line
def test_unreachable_hot_store_is_a_failure_even_in_dry_run(env):
    env = dict(env, MARKETPIPE_HOT_URL="postgresql+psycopg://postgres@127.0.0.1:9/nothing")
    one_line_error(mp(env, "run", "--dry-run"), 1, "hot store")


def test_unreachable_s3_lake_is_a_failure_even_in_dry_run(env):
    env = dict(
        env,
        MARKETPIPE_COLD_URL="s3://bucket/lake",
        MARKETPIPE_S3_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    res = mp(env, "run", "--dry-run")
    one_line_error(res, 1, "cold lake s3://bucket/lake is not reachable")


def test_missing_s3_bucket_is_bad_input(env, moto_server):
    env = dict(
        env,
        MARKETPIPE_COLD_URL="s3://no-such-bucket/lake",
        MARKETPIPE_S3_ENDPOINT_URL=moto_server,
    )
    one_line_error(mp(env, "run", "--dry-run"), 2, "does not exist")


# ---------------------------------------------------------------- validate
def _bars_frame():
    from datetime import date

    from marketpipe.providers import get_provider
    from marketpipe.providers.base import BarsQuery

    q = BarsQuery(("AAPL",), "1d", date(2024, 1, 2), date(2024, 1, 31))
    return get_provider("synthetic").fetch(q).bars


def test_validate_lists_failing_rows_and_exits_1(env, tmp_path):
    bars = _bars_frame()
    bars.loc[3, "high"] = bars.loc[3, "low"] - 1  # row 4: high below low (and open/close)
    bars.loc[7, "volume"] = -5  # row 8
    path = tmp_path / "bars.csv"
    bars.to_csv(path, index=False)
    res = mp(env, "validate", str(path))
    assert res.returncode == 1, res.stderr
    table = res.stdout.split("failing rows", 1)[1]
    row4 = next(line for line in table.splitlines() if line.strip().startswith("4 "))
    assert "AAPL" in row4 and "1d" in row4 and "high_lt_low" in row4
    assert "2024-01-05T00:00:00Z" in row4
    row8 = next(line for line in table.splitlines() if line.strip().startswith("8 "))
    assert "volume_negative" in row8
    summary = res.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{path}: {len(bars)} rows, {len(bars) - 2} valid, 2 failing")


def test_validate_accepts_the_lakes_own_files(env, tmp_path):
    from marketpipe.settings import Settings
    from marketpipe.storage import open_stores

    stores = open_stores(Settings(data_dir=tmp_path / "data"))
    try:
        stores.cold.write_bars(_bars_frame())
    finally:
        stores.close()
    files = sorted((tmp_path / "data" / "lake").rglob("*.parquet"))
    assert files
    for f in files:
        res = mp(env, "validate", str(f))
        assert res.returncode == 0, res.stdout + res.stderr
        assert "0 failing" in res.stdout


# ---------------------------------------------------------------- runs (a real Prefect server)
@pytest.fixture
def prefect_env(env, prefect_server):
    from prefect.settings import PREFECT_API_URL

    return dict(env, PREFECT_API_URL=PREFECT_API_URL.value())


def test_run_is_quiet_by_default_and_verbose_with_v(prefect_env):
    quiet = mp(prefect_env, "run", "--symbols", "AAPL")
    assert quiet.returncode == 0, quiet.stderr
    assert "Finished in state" not in quiet.stderr and "telemetry" not in quiet.stderr
    header = next(line for line in quiet.stdout.splitlines() if "fetched" in line).split()
    assert header == ["symbol", "fetched", "hot", "cold", "quarantined", "source"]
    loud = mp(prefect_env, "run", "-v", "--symbols", "AAPL")
    assert loud.returncode == 0, loud.stderr
    assert "Finished in state" in loud.stderr


def test_summaries_are_tables_never_reprs(prefect_env):
    assert mp(prefect_env, "run").returncode == 0
    expected = {"processing": "quality per symbol", "compact": "files before", "tier": "tiered"}
    for args in (["run", "--stages", "processing"], ["compact"], ["tier"]):
        res = mp(prefect_env, *args)
        assert res.returncode == 0, (args, res.stderr)
        assert "Report(" not in res.stdout and "{'" not in res.stdout, res.stdout
        assert expected[args[-1]] in res.stdout, res.stdout


def test_read_says_what_matched_and_what_is_stored(prefect_env):
    assert mp(prefect_env, "run", "--symbols", "AAPL").returncode == 0
    res = mp(prefect_env, "read", "AAPL", "--start", "2001-01-02", "--end", "2001-12-31")
    assert res.returncode == 0
    from marketpipe.bars import BAR_COLUMNS

    assert res.stdout.strip() == ",".join(BAR_COLUMNS)  # the header alone
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("0 row(s) matched")
    assert re.search(
        r"stored for AAPL: 1d \d{4}-\d\d-\d\d\.\.\d{4}-\d\d-\d\d \(\d+ rows\)", lines[1]
    )
    today = pd.Timestamp.now(tz="UTC")
    start = (today - pd.Timedelta(days=30)).strftime("%Y-%m-%d")
    res = mp(prefect_env, "read", "AAPL", "--start", start)
    n = len(res.stdout.strip().splitlines()) - 1
    assert n > 10 and res.stderr.startswith(f"{n} row(s) matched")
    sql = mp(prefect_env, "sql", f"SELECT * FROM bars WHERE ts >= '{start}' ORDER BY ts")
    assert sql.returncode == 0 and sql.stdout == res.stdout


def test_read_as_of_passes_through_or_exits_2(env, tmp_path):
    import inspect

    from marketpipe.processing.adjusted_read import read_bars
    from marketpipe.settings import Settings
    from marketpipe.storage import open_stores

    stores = open_stores(Settings(data_dir=tmp_path / "data"))
    try:
        stores.hot.upsert_bars(_bars_frame())
    finally:
        stores.close()
    res = mp(env, "read", "AAPL", "--as-of", pd.Timestamp.now(tz="UTC").isoformat())
    if "as_of" in inspect.signature(read_bars).parameters:
        assert res.returncode == 0 and len(res.stdout.splitlines()) > 10, res.stderr
    else:
        one_line_error(res, 2, "needs a lake with history")
    one_line_error(mp(env, "read", "AAPL", "--as-of", "yesterday-ish"), 2, "--as-of")
