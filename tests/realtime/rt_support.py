"""Test support for the real-time core: known tick sets, independent expected bars, a REST fake,
and a scripted source. Expected bars are computed with a plain pandas groupby on floored
timestamps -- independently of `BarAggregator`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from marketpipe.bars import BAR_COLUMNS, conform_bars, empty_bars
from marketpipe.realtime import BoundedTickQueue, SourceEnd, Tick


def make_ticks(
    symbols: Sequence[str], start: pd.Timestamp, seconds: float, per_sec: int, seed: int = 7
) -> pd.DataFrame:
    """A known tick set: ms timestamps spread over `seconds`, random symbols, prices and sizes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * per_sec)
    offs = np.sort(rng.integers(0, int(seconds * 1000), n))
    return pd.DataFrame(
        {
            "symbol": pd.Series(rng.choice(list(symbols), n), dtype="str"),
            "ts": (start.floor("ms") + pd.to_timedelta(offs, unit="ms")).astype(
                "datetime64[us, UTC]"
            ),
            "price": np.round(100 + rng.normal(0, 1, n), 2),
            "size": rng.integers(1, 300, n).astype("float64"),
        }
    )


def expected_bars(ticks: pd.DataFrame, window: str, interval: str, source: str) -> pd.DataFrame:
    """OHLCV + vwap + trades per (symbol, floored ts) with pandas only (arrival order = row order)."""
    d = ticks.reset_index(drop=True)
    d = d.assign(w=d["ts"].dt.floor(window), pv=d["price"] * d["size"], seq=np.arange(len(d)))
    d = d.sort_values(["ts", "seq"], kind="stable")
    g = d.groupby(["symbol", "w"], sort=True)
    out = g.agg(
        open=("price", "first"),
        high=("price", "max"),
        low=("price", "min"),
        close=("price", "last"),
        volume=("size", "sum"),
        pv=("pv", "sum"),
        trades=("price", "size"),
    ).reset_index()
    out["vwap"] = out["pv"] / out["volume"]
    out = out.rename(columns={"w": "ts"}).drop(columns="pv")
    out["interval"] = interval
    out["source"] = source
    out["trades"] = out["trades"].astype("Int64")
    out["ts"] = out["ts"].astype("datetime64[us, UTC]")
    out = conform_bars(out)  # adds the derived `session` column
    return out[list(BAR_COLUMNS)].sort_values(["symbol", "ts"]).reset_index(drop=True)


class RestFake:
    """`rest_backfill(symbols, start, end)` computing bars from the full known tick set."""

    def __init__(self, ticks: pd.DataFrame, window: str, interval: str, source: str):
        self.bars = expected_bars(ticks, window, interval, source)
        self.calls: list[tuple[tuple[str, ...], pd.Timestamp, pd.Timestamp]] = []
        self.overrides: dict[tuple[str, pd.Timestamp], dict] = {}

    def __call__(self, symbols, start, end) -> pd.DataFrame:
        self.calls.append((tuple(symbols), start, end))
        b = self.bars
        out = b[b["symbol"].isin(list(symbols)) & (b["ts"] >= start) & (b["ts"] <= end)].copy()
        for (sym, ts), values in self.overrides.items():
            for col, v in values.items():
                out.loc[(out["symbol"] == sym) & (out["ts"] == ts), col] = v
        return out.reset_index(drop=True)


def assert_bars_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    a = actual.sort_values(["symbol", "ts"]).reset_index(drop=True)
    e = expected.sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert list(zip(a["symbol"], a["ts"], strict=True)) == list(
        zip(e["symbol"], e["ts"], strict=True)
    )
    for col in ("open", "high", "low", "close", "volume", "vwap"):
        np.testing.assert_allclose(
            a[col].to_numpy(float), e[col].to_numpy(float), rtol=1e-9, err_msg=col
        )
    assert a["trades"].astype("int64").tolist() == e["trades"].astype("int64").tolist()


class ScriptedSource:
    """Pushes scripted steps of ticks (with pauses between), then reports `exhausted`."""

    name = "scripted"

    def __init__(
        self, steps: Sequence[tuple[Sequence[Tick], float]], symbols: Sequence[str] = ("AAPL",)
    ):
        self.steps = steps
        self.symbols = tuple(symbols)

    def run(
        self, queue: BoundedTickQueue, stop: threading.Event, on_connected=None, on_bar=None
    ) -> SourceEnd:
        for ticks, pause in self.steps:
            queue.put_many(list(ticks))
            if pause and stop.wait(pause):
                return SourceEnd("stopped")
        time.sleep(0.01)
        return SourceEnd("exhausted")


def ts_ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value)


class MemorySink:
    """Thread-safe in-memory store: bars upserted on (symbol, interval, ts), quarantine appended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.bars: dict[tuple[str, str, pd.Timestamp], dict] = {}
        self.quarantine: list[dict] = []
        self.bar_writes = 0
        self.versions: Counter = Counter()  # how many times each bar key was written
        self.flushes = 0

    def write_bars(self, df: pd.DataFrame) -> int:
        with self._lock:
            for rec in df.to_dict("records"):
                key = (rec["symbol"], rec["interval"], rec["ts"])
                self.bars[key] = rec
                self.versions[key] += 1
            self.bar_writes += len(df)
            self.flushes += 1
        return len(df)

    def write_quarantine(self, df: pd.DataFrame) -> int:
        with self._lock:
            self.quarantine.extend(df.to_dict("records"))
        return len(df)

    def bars_frame(self) -> pd.DataFrame:
        with self._lock:
            recs = list(self.bars.values())
        if not recs:
            return empty_bars()
        df = pd.DataFrame(recs, columns=list(BAR_COLUMNS))
        return df.sort_values(["symbol", "interval", "ts"]).reset_index(drop=True)

    def quarantine_frame(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self.quarantine)
