"""Issue 14, as the user ran it: one `marketpipe backfill --source polygon --interval 1m` of one
symbol whose chunks all land in the one `1m/AAPL/2019` lake partition, run by the real CLI on
the thread runner (local lake) and the Dask runner (S3 lake on moto). The first lake kept 77,460
of 97,740 rows and exited 0; here every bar the server has is stored exactly once, all cold."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from deltalake import DeltaTable

from tests.history.conftest import mp, stores_for
from tests.polygon_server import agg_requests, intraday_bars

START, END = "2019-01-02", "2019-06-28"
PLAN_RE = re.compile(r"backfill plan: .*?(\d+) chunks")


def _served_rows(market) -> int:
    """The one-minute aggregates the local Polygon market has for AAPL in [START, END] that start
    inside NYSE regular hours (what the adapter keeps by default), hours from
    pandas-market-calendars rather than marketpipe's own calendar."""
    import pandas_market_calendars as pmc

    schedule = pmc.get_calendar("NYSE").schedule(START, END)
    lo, hi = pd.Timestamp(START), pd.Timestamp(END)
    t = pd.to_datetime(
        [
            bar["t"]
            for i, s in enumerate(market.sessions)
            if lo <= s <= hi
            for bar in intraday_bars("AAPL", s, i, 1)
        ],
        unit="ms",
        utc=True,
    )
    day = t.tz_convert("America/New_York").normalize().tz_localize(None)
    opens = schedule["market_open"].reindex(day).to_numpy()
    closes = schedule["market_close"].reindex(day).to_numpy()
    return int(((t >= opens) & (t < closes)).sum())


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local-threads", "s3-dask"])
def test_year_of_minute_bars_in_several_chunks_stores_every_bar_once(
    where, base_env, poly, market, request, tmp_path
):
    env = dict(
        base_env,
        MARKETPIPE_HOT_DAYS="0",  # every bar is older than the cutoff: all go to the lake
        MARKETPIPE_POLYGON_RATE_LIMIT="100/1s",
    )
    if where == "s3-dask":
        cold_url, _ = request.getfixturevalue("s3_bucket")
        env.update(
            MARKETPIPE_COLD_URL=cold_url,
            MARKETPIPE_S3_ENDPOINT_URL=request.getfixturevalue("moto_server"),
            MARKETPIPE_TASK_RUNNER="dask:2",
        )
    args = ["backfill", "--source", "polygon", "--symbols", "AAPL", "--interval", "1m"]
    res = mp(env, *args, "--start", START, "--end", END, timeout=420)
    assert res.returncode == 0, res.stdout + res.stderr
    chunks = int(PLAN_RE.search(res.stdout).group(1))
    assert chunks >= 3, res.stdout  # several chunks, one partition: the race the lake lost

    served = _served_rows(market)
    stores = stores_for(env)
    lo, hi = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=1)
    hot = stores.hot.read_bars(["AAPL"], "1m", lo, hi)
    cold = stores.cold.read_bars(["AAPL"], "1m", lo, hi)
    assert len(hot) == 0
    assert len(cold) == served, res.stdout
    # the raw Delta table, not marketpipe's de-duplicating read: each key once
    raw = DeltaTable(stores.cold.dataset_url, storage_options=stores.cold.location.options or None)
    keys = raw.to_pyarrow_table(columns=["symbol", "interval", "ts"]).to_pandas()
    assert len(keys) == served and not keys.duplicated().any()
    # rows in = stored + quarantined (the summary's own figures)
    done = re.search(r"(\d+) hot, (\d+) cold, (\d+) quarantined", res.stdout)
    assert done and [int(g) for g in done.groups()] == [0, served, 0], res.stdout

    # a re-run fetches nothing and changes nothing
    before = len(agg_requests(poly))
    again = mp(env, *args, "--start", START, "--end", END, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{chunks} already done" in again.stdout, again.stdout
    assert len(agg_requests(poly)) == before
    assert len(stores.cold.read_bars(["AAPL"], "1m", lo, hi)) == served
