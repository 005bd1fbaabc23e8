"""`mp.sql(query)` / `marketpipe sql "…"`: DuckDB over one logical view of both tiers.

Views (registered lazily: only the ones the query names are read):

| view | rows |
|---|---|
| `bars` | hot ∪ cold, hot wins on a shared `(symbol, interval, ts)` (the `read_bars` rule) |
| `bars_adjusted` | `bars` with split/dividend back-adjustment (as `read(..., adjusted=True)`) |
| `features` | processing output, hot ∪ cold, hot wins |
| `corporate_actions` | splits and dividends |
| `quarantine` | every rejected row with its reason codes |

DuckDB gets Arrow tables only: it never downloads an extension (there is no network here) and
never opens the stores itself. Hot rows come from the hot store's readers (ADBC on PostgreSQL
for bars); cold rows from `cold_table()`, the one place that reads the lake.
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa

from marketpipe.errors import ConfigError
from marketpipe.storage import Stores

VIEWS = ("bars", "bars_adjusted", "features", "corporate_actions", "quarantine")


def run_sql(stores: Stores, query: str) -> pd.DataFrame:
    """Execute `query` over the views it names; ConfigError with DuckDB's first line on bad SQL."""
    import duckdb

    if not query or not query.strip():
        raise ConfigError("sql: empty query")
    con = duckdb.connect(":memory:")
    try:
        for name in referenced_views(query):
            con.register(name, LOADERS[name](stores))
        con.execute("SET TimeZone = 'UTC'")  # timestamps come back (and compare) in UTC
        con.execute("SET enable_external_access = false")  # no files, no network
        return con.execute(query).df()
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"sql: {first}") from None
    finally:
        con.close()


def referenced_views(query: str) -> list[str]:
    """The views a query names (DuckDB's parser; a word match if it cannot parse)."""
    import duckdb

    try:
        names = {n.lower() for n in duckdb.get_table_names(query)}
    except duckdb.Error:
        names = {w.lower() for w in re.findall(r"[A-Za-z_]+", query)}
    return [v for v in VIEWS if v in names]


# ---------------------------------------------------------------- cold access (one function)
def cold_table(stores: Stores, dataset: str) -> pd.DataFrame:
    """Every cold row of `dataset` ('bars' or 'features') as a frame with the key columns.

    The one function that reads the lake for SQL; on the Delta lake this becomes
    `DeltaTable(f"{url}/{dataset}").to_pyarrow_dataset()`.
    """
    cold = stores.cold
    frames = []
    by_interval: dict[str, list[str]] = {}
    for key in cold.partition_keys_list():
        by_interval.setdefault(key.interval, [])
        if key.symbol not in by_interval[key.interval]:
            by_interval[key.interval].append(key.symbol)
    for interval, symbols in by_interval.items():
        if dataset == "bars":
            frames.append(cold.read_bars(symbols, interval))
        else:
            part = cold.read_features(symbols, interval)
            if not part.empty:
                frames.append(part)
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def stored_ranges(stores: Stores, symbol: str) -> list[tuple[str, pd.Timestamp, pd.Timestamp, int]]:
    """(interval, first ts, last ts, rows) stored for one symbol across both tiers."""
    from marketpipe.bars import STORED_INTERVALS
    from marketpipe.storage.read import union_hot_wins

    hot = stores.hot.stats()
    hot = hot.loc[hot["symbol"] == symbol]
    cold_intervals = {k.interval for k in stores.cold.partition_keys_list(symbols=[symbol])}
    out = []
    for interval in STORED_INTERVALS:
        if interval not in cold_intervals and interval not in set(hot["interval"]):
            continue
        both = union_hot_wins(
            stores.cold.read_bars([symbol], interval), stores.hot.read_bars([symbol], interval)
        )
        if len(both):
            out.append((interval, both["ts"].min(), both["ts"].max(), len(both)))
    return out


# ---------------------------------------------------------------- views
def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def bars_frame(stores: Stores) -> pd.DataFrame:
    from marketpipe.storage.read import union_hot_wins

    cold = cold_table(stores, "bars")
    hot = stores.hot.read_bars(None, None)
    return union_hot_wins(cold if not cold.empty else hot.iloc[:0], hot)


def _bars(stores: Stores) -> pa.Table:
    return _arrow(bars_frame(stores))


def _bars_adjusted(stores: Stores) -> pa.Table:
    from marketpipe.storage.read import read_bars

    raw = bars_frame(stores)
    frames = [
        read_bars(stores, sorted(part["symbol"].unique()), None, None, interval, adjusted=True)
        for interval, part in raw.groupby("interval", sort=True)
    ]
    return _arrow(pd.concat(frames, ignore_index=True) if frames else raw)


def _features(stores: Stores) -> pa.Table:
    hot = stores.hot.read_features(None, None)
    cold = cold_table(stores, "features")
    if cold.empty:
        return _arrow(hot)
    cold = cold.reindex(columns=hot.columns)
    both = pd.concat([cold, hot], ignore_index=True) if not hot.empty else cold
    both = both.drop_duplicates(["symbol", "interval", "ts"], keep="last")
    return _arrow(both.sort_values(["symbol", "interval", "ts"]).reset_index(drop=True))


def _corporate_actions(stores: Stores) -> pa.Table:
    return _arrow(stores.hot.read_corporate_actions())


def _quarantine(stores: Stores) -> pa.Table:
    return _arrow(stores.hot.read_quarantine())


LOADERS = {
    "bars": _bars,
    "bars_adjusted": _bars_adjusted,
    "features": _features,
    "corporate_actions": _corporate_actions,
    "quarantine": _quarantine,
}
