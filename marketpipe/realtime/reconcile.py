"""Compare streamed bars with REST bars for the same windows (REST wins)."""

from __future__ import annotations

import math

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
    bar only the stream has (`missing_in_rest`, kept in the store and reported).
    """
    details: list[dict] = []
    wins = []
    seen: set[tuple[str, int]] = set()
    ts_ns = rest["ts"].astype("datetime64[ns, UTC]").astype("int64") if len(rest) else []
    for i, rec in enumerate(rest.to_dict("records")):
        key = (rec["symbol"], int(ts_ns.iloc[i]))
        seen.add(key)
        row = streamed.get(key)
        if row is None:
            wins.append(i)
            details.append(
                {"symbol": key[0], "ts": rec["ts"].isoformat(), "kind": "missing_in_stream"}
            )
            continue
        mine = dict(zip(_FIELDS, row[2:], strict=True))
        differing = [f for f in _FIELDS if not _close_enough(mine[f], rec.get(f))]
        if differing:
            wins.append(i)
            details.append(
                {
                    "symbol": key[0],
                    "ts": rec["ts"].isoformat(),
                    "kind": "values_differ",
                    "fields": {f: {"stream": mine[f], "rest": rec.get(f)} for f in differing},
                }
            )
    for key in streamed.keys() - seen:
        details.append(
            {
                "symbol": key[0],
                "ts": pd.Timestamp(key[1], unit="ns", tz="UTC").isoformat(),
                "kind": "missing_in_rest",
            }
        )
    count = len(details)
    return rest.iloc[wins].reset_index(drop=True), count, details[:max_details]
