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
never opens the stores itself. `bars` and `bars_adjusted` are built by `read_bars` itself, one
call per interval (hot rows through ADBC on PostgreSQL), so they follow its tier rule; the lake's
layout is consulted in one place, `cold_pairs()`.
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
        # through Arrow: DATE stays a date (pandas would make it a midnight timestamp)
        relation = con.sql(query)
        return pd.DataFrame() if relation is None else relation.to_arrow_table().to_pandas()
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


# ---------------------------------------------------------------- what is stored
def cold_pairs(stores: Stores) -> set[tuple[str, str]]:
    """(interval, symbol) of every cold partition: the one place SQL looks into the lake's
    layout (on a Delta table this can read the partition values of `DeltaTable.files()`)."""
    return {(p.interval, p.symbol) for p in stores.cold.partitions()}


def stored_pairs(stores: Stores) -> dict[str, list[str]]:
    """{interval: [symbols]} with bars in either tier."""
    hot = stores.hot.stats()
    pairs = set(zip(hot["interval"], hot["symbol"], strict=True)) | cold_pairs(stores)
    out: dict[str, list[str]] = {}
    for interval, symbol in sorted(pairs):
        out.setdefault(interval, []).append(symbol)
    return out


def stored_ranges(stores: Stores, symbol: str) -> list[tuple[str, pd.Timestamp, pd.Timestamp, int]]:
    """(interval, first ts, last ts, rows) stored for one symbol across both tiers."""
    from marketpipe.processing.adjusted_read import read_bars

    out = []
    for interval, symbols in stored_pairs(stores).items():
        if symbol in symbols:
            both = read_bars(stores, [symbol], None, None, interval)
            if len(both):
                out.append((interval, both["ts"].min(), both["ts"].max(), len(both)))
    return out


# ---------------------------------------------------------------- views
def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _all_bars(stores: Stores, adjusted: bool) -> pd.DataFrame:
    """Every stored bar through `read_bars` itself (so the view follows its tier rule)."""
    from marketpipe.bars import empty_bars
    from marketpipe.processing.adjusted_read import read_bars

    frames = [
        read_bars(stores, symbols, None, None, interval, adjusted=adjusted)
        for interval, symbols in stored_pairs(stores).items()
    ]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty_bars()


def _bars(stores: Stores) -> pa.Table:
    return _arrow(_all_bars(stores, adjusted=False))


def _bars_adjusted(stores: Stores) -> pa.Table:
    return _arrow(_all_bars(stores, adjusted=True))


def _features(stores: Stores) -> pa.Table:
    hot = stores.hot.read_features(None, None)
    by_interval: dict[str, list[str]] = {}
    for interval, symbol in sorted(cold_pairs(stores)):
        by_interval.setdefault(interval, []).append(symbol)
    cold = [stores.cold.read_features(syms, iv) for iv, syms in by_interval.items()]
    cold = [f.reindex(columns=hot.columns) for f in cold if len(f)]
    if not cold:
        return _arrow(hot)
    both = pd.concat([*cold, hot] if len(hot) else cold, ignore_index=True)
    both = both.drop_duplicates(["symbol", "interval", "ts"], keep="last")  # hot wins
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
