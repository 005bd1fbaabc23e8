"""Inputs that used to end in a raw pandas/Arrow/Python error (issue 16, item 10) now give one
`marketpipe: error:` line naming the input, exit 2, before anything is written."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketpipe.errors import ContractError
from marketpipe.input_columns import check_column_names, check_file_columns
from tests.reliability.conftest import assert_one_clean_line, open_current_stores

ROW = ["2024-01-02", "10", "11", "9", "10.5", "1000"]


def _last_line(err: str) -> str:
    """The run's own error line (Prefect's log lines about the failed task come before it)."""
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert_one_clean_line(last)
    return last


def _csv(path, header: list[str], extra: list[str] | None = None) -> None:
    row = ROW + (extra or [])
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")


def _parquet(path, names: list[str]) -> None:
    arrays = [pa.array([v]) for v in (ROW + ["10.4"] * len(names))[: len(names)]]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)


BASE = ["Date", "Open", "High", "Low", "Close", "Volume"]
FILES = {
    "csv-case": ("AAPL.csv", lambda p: _csv(p, [*BASE[:4], "close", "Close", "Volume"], ["10.4"])),
    "csv-duplicate": ("AAPL.csv", lambda p: _csv(p, [*BASE, "Close"], ["10.4"])),
    "csv-space-vs-underscore": (
        "AAPL.csv",
        lambda p: _csv(p, [*BASE, "adj_close", "Adj Close"], ["1", "2"]),
    ),
    "parquet-duplicate": ("AAPL.parquet", lambda p: _parquet(p, [*BASE, "Close"])),
    "parquet-case": ("AAPL.parquet", lambda p: _parquet(p, [*BASE, "CLOSE"])),
}


@pytest.mark.parametrize("kind", list(FILES))
def test_colliding_column_names_are_refused_naming_file_and_columns(cli, tmp_path, kind):
    name, make = FILES[kind]
    path = tmp_path / name
    make(path)
    res = cli(
        "run", "--source", "replay", "--replay-path", str(path), "--symbols", "AAPL",
        "--start", "2024-01-02", "--end", "2024-01-05",
    )  # fmt: skip
    assert res.code == 2, res.out + res.err
    last = _last_line(res.err)
    assert f"replay file {name}:" in last and "rename or drop one" in last, last
    assert "close" in last.lower()
    stores = open_current_stores()
    try:
        assert stores.hot.count_bars() == 0 and stores.hot.count_quarantine() == 0
    finally:
        stores.close()


def test_column_check_names_the_pair():
    with pytest.raises(ContractError, match=r"'close' and 'Close' differ only by case"):
        check_column_names(["ts", "close", "Close"], "f.csv")
    with pytest.raises(ContractError, match=r"column 'close' appears more than once"):
        check_column_names(["ts", "close", "close"], "f.csv")
    with pytest.raises(ContractError, match=r"'Adj Close' and 'adj_close' collide"):
        check_column_names(["Adj Close", "adj_close"], "f.csv")
    check_column_names(["Date", "Open", "High", "Low", "Close", "Volume", "Adj Close"], "f.csv")


def test_file_check_leaves_unreadable_and_good_files_to_the_reader(tmp_path):
    good = tmp_path / "good.csv"
    _csv(good, BASE)
    check_file_columns(good)
    (tmp_path / "empty.csv").write_text("")
    check_file_columns(tmp_path / "empty.csv")  # the reader's own "cannot be read" applies
    (tmp_path / "junk.parquet").write_bytes(b"\x00\x01not parquet")
    check_file_columns(tmp_path / "junk.parquet")


@pytest.mark.parametrize("value", ["5/0s", "99999999999999999999/s", "1/1000000000000h"])
def test_unusable_rate_limit_fails_before_the_run_naming_the_variable(cli, mp_env, value):
    mp_env.setenv("MARKETPIPE_POLYGON_RATE_LIMIT", value)
    res = cli("run", "--source", "polygon", "--symbols", "AAPL", "--start", "2024-01-02")
    assert res.code == 2, res.out + res.err
    assert_one_clean_line(res.err)
    assert "MARKETPIPE_POLYGON_RATE_LIMIT" in res.err and value in res.err, res.err
    assert "OverflowError" not in res.err


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--symbols", "AAPL", "--start", "9999-12-30"],
        ["run", "--dry-run", "--symbols", "AAPL", "--start", "2024-01-02", "--end", "9999-12-31"],
        ["read", "AAPL", "--start", "2024-01-01", "--end", "9999-12-31", "--interval", "1d"],
        ["gaps", "--symbols", "AAPL", "--start", "0001-01-01", "--end", "2024-01-05"],
        ["backfill", "--symbols", "AAPL", "--start", "2024-01-01", "--end", "9999-12-31",
         "--plan-only"],
        ["read", "AAPL", "--start", "2024-02-30", "--end", "2024-03-01", "--interval", "1d"],
    ],
)  # fmt: skip
def test_out_of_range_dates_are_refused_with_one_line(cli, args):
    res = cli(*args)
    assert res.code == 2, res.out + res.err
    assert_one_clean_line(res.err)
    assert "--start:" in res.err or "--end:" in res.err, res.err
    assert "OverflowError" not in res.err
