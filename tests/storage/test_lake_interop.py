"""Other readers get the same cold rows as `read_bars`: deltalake, DuckDB (over the Delta table's
Arrow dataset: the `delta` extension cannot be downloaded here) and polars (`scan_delta`)."""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
from deltalake import DeltaTable

from marketpipe.storage.delta_io import delta_storage_options
from marketpipe.storage.delta_lake import DeltaLake
from tests.storage.frames import make_bars

COLS = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume", "vwap", "source"]


def test_duckdb_and_polars_read_what_marketpipe_reads(lake_target):
    url, opts = lake_target
    lake = DeltaLake(url, opts)
    lake.write_bars(make_bars(("AAPL", "BTC/USD", "^GSPC"), start="2023-12-31 20:00", periods=300))
    fix = make_bars(("AAPL",), start="2023-12-31 20:00", periods=5)
    lake.write_bars(fix.assign(close=fix["close"] + 1))  # a restatement: readers see one copy
    ours = lake.read_bars(["AAPL", "BTC/USD", "^GSPC"], "1m")[COLS]
    ours = ours.astype({"symbol": object, "interval": object, "source": object})
    storage = delta_storage_options(url, opts) or None

    dataset = DeltaTable(f"{url}/bars", storage_options=storage).to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("bars", dataset)
    via_duckdb = con.sql(
        f"select {', '.join(COLS)} from bars where interval = '1m' order by symbol, ts"
    ).df()
    via_duckdb["ts"] = via_duckdb["ts"].dt.tz_convert("UTC").dt.as_unit("us")
    pd.testing.assert_frame_equal(
        via_duckdb.astype({"symbol": object, "interval": object, "source": object}),
        ours,
        check_dtype=False,
    )

    via_polars = (
        pl.scan_delta(f"{url}/bars", storage_options=storage)
        .filter(pl.col("interval") == "1m")
        .select(COLS)
        .sort(["symbol", "ts"])
        .collect()
        .to_pandas()
    )
    pd.testing.assert_frame_equal(
        via_polars.astype({"symbol": object, "interval": object, "source": object}),
        ours,
        check_dtype=False,
    )
    assert (
        len(ours) == 900
        and ours.loc[ours["symbol"] == "AAPL", "close"].head(5).tolist()
        == (fix["close"] + 1).tolist()
    )
