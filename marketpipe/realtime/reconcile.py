"""Compare streamed bars with REST bars for the same windows (REST wins)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from marketpipe.realtime.aggregator import BarRow

_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "trades")


def _close_enough(a, b) -> bool:
    if a is None or b is None or a is pd.NA or b is pd.NA:
        return True  # a provider without the field cannot disagree on it
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def compare_bars(
    streamed: dict[tuple[str, int], BarRow], rest: pd.DataFrame, *, max_details: int = 100
) -> tuple[pd.DataFrame, int, list[dict]]:
    """REST rows that must overwrite the stream, the number of differences, and details.

    A difference is a bar whose values differ, a bar only REST has (`missing_in_stream`), or a
    bar only the stream has (`missing_in_rest`, kept in the store and reported). Compared as
    columns (one join on (symbol, ts)); only the reported details are built row by row.
    """
    mine = pd.DataFrame.from_records(list(streamed.values()), columns=["symbol", "ts_ns", *_FIELDS])
    theirs = rest.reset_index(drop=True)
    ts_ns = (
        theirs["ts"].astype("datetime64[ns, UTC]").astype("int64")
        if len(theirs)
        else pd.Series([], dtype="int64")
    )
    left = pd.DataFrame(
        {"symbol": theirs["symbol"].astype(str).to_numpy(), "ts_ns": ts_ns.to_numpy()}
    )
    joined = left.merge(
        mine.astype({"symbol": str}), on=["symbol", "ts_ns"], how="left", indicator=True
    )
    missing = (joined["_merge"] == "left_only").to_numpy()
    differs = {
        f: ~missing & ~_close(joined[f], theirs[f] if f in theirs else None) for f in _FIELDS
    }
    any_diff = np.logical_or.reduce(list(differs.values())) if differs else missing & False
    wins = np.flatnonzero(missing | any_diff)
    details: list[dict] = []
    for i in wins[:max_details]:  # at most `max_details` rows: the report, not the data path
        ts = theirs["ts"].iloc[i].isoformat()
        if missing[i]:
            details.append(
                {"symbol": left["symbol"].iloc[i], "ts": ts, "kind": "missing_in_stream"}
            )
            continue
        fields = [f for f in _FIELDS if differs[f][i]]
        details.append(
            {
                "symbol": left["symbol"].iloc[i],
                "ts": ts,
                "kind": "values_differ",
                "fields": {
                    f: {"stream": _plain(joined[f].iloc[i]), "rest": _plain(theirs[f].iloc[i])}
                    for f in fields
                },
            }
        )
    seen = set(zip(left["symbol"], left["ts_ns"], strict=True))
    only_stream = [k for k in streamed if k not in seen]
    for key in only_stream[: max(0, max_details - len(details))]:
        details.append(
            {
                "symbol": key[0],
                "ts": pd.Timestamp(key[1], unit="ns", tz="UTC").isoformat(),
                "kind": "missing_in_rest",
            }
        )
    count = len(wins) + len(only_stream)
    return theirs.iloc[wins].reset_index(drop=True), count, details[:max_details]


def _close(a: pd.Series, b: pd.Series | None) -> np.ndarray:
    """Element-wise `_close_enough` (a missing value on either side cannot disagree)."""
    if b is None:
        return np.ones(len(a), dtype=bool)
    x = pd.to_numeric(a, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    y = pd.to_numeric(b.reset_index(drop=True), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    unknown = np.isnan(x) | np.isnan(y)
    return unknown | np.isclose(x, y, rtol=1e-6, atol=1e-9)


def _plain(v):
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v
