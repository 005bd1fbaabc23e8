"""Two writers whose symbol lists come in opposite order, over the same keys, at the same time.

Before bars were written in a canonical key order, PostgreSQL detected a deadlock (SQLSTATE 40P01)
in most such pairs: writer A held AAPL's rows and waited for MSFT's, writer B the other way round.
Each round starts both writers together (a barrier, no sleeps) on one set of keys: the first
round on an empty table (both take the COPY append path and meet on the unique index), the
others on stored keys with new values (the staged merge path).
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from marketpipe.errors import is_retryable
from marketpipe.storage.hot import SqlHotStore
from tests.reliability.conftest import assert_no_duplicate_keys

SYMBOLS = [f"S{i:02d}" for i in range(12)]
BARS_PER_SYMBOL = 400
ROUNDS = 6


def _frame(symbols: list[str], value: float) -> pd.DataFrame:
    ts = pd.date_range("2024-03-04 14:30", periods=BARS_PER_SYMBOL, freq="1min", tz="UTC")
    parts = [
        pd.DataFrame(
            {
                "symbol": sym,
                "interval": "1m",
                "ts": ts,
                "open": value,
                "high": value + 1,
                "low": value - 1,
                "close": value,
                "volume": 100.0,
                "source": "test",
            }
        )
        for sym in symbols
    ]
    # each writer's rows in its own symbol order, and its timestamps descending: the opposite
    # of the other writer on every key
    frame = pd.concat(parts, ignore_index=True)
    return frame.iloc[::-1].reset_index(drop=True) if symbols[0] != SYMBOLS[0] else frame


def _race(stores: list[SqlHotStore], frames: list[pd.DataFrame]) -> list[BaseException]:
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def write(store: SqlHotStore, frame: pd.DataFrame) -> None:
        barrier.wait()
        try:
            store.upsert_bars(frame)
        except BaseException as exc:  # collected, asserted on below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=pair) for pair in zip(stores, frames, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.timeout(300)
def test_opposite_symbol_orders_never_deadlock(pg_url):
    stores = [SqlHotStore(pg_url), SqlHotStore(pg_url, migrate=False)]
    try:
        for rnd in range(ROUNDS):
            forward = _frame(SYMBOLS, 100.0 + rnd)
            backward = _frame(SYMBOLS[::-1], 200.0 + rnd)
            errors = _race(stores, [forward, backward])
            assert not errors, f"round {rnd}: {errors[0]!r}"
            bars = stores[0].read_bars(SYMBOLS, "1m")
            assert len(bars) == len(SYMBOLS) * BARS_PER_SYMBOL
            assert_no_duplicate_keys(bars)
            # one writer's values won on every key (each transaction is whole)
            assert set(bars["close"]) <= {100.0 + rnd, 200.0 + rnd}
    finally:
        for s in stores:
            s.dispose()


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_deadlock_and_serialization_failures_are_retryable(pg_url, sqlstate):
    """A transaction PostgreSQL rolled back to break a deadlock or a serialization conflict is
    retryable, on both hot-store paths (SQLAlchemy and the ADBC bulk link)."""
    import sqlalchemy as sa

    raise_it = f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$"
    store = SqlHotStore(pg_url)
    try:
        with pytest.raises(Exception) as err:
            with store._tx() as conn:
                conn.exec_driver_sql(raise_it)
        assert is_retryable(err.value) and sqlstate in str(err.value), repr(err.value)
        with pytest.raises(Exception) as err:
            store._pg_bulk.fetch_arrow(sa.text(raise_it))
        assert is_retryable(err.value) and sqlstate in str(err.value), repr(err.value)
        store.upsert_bars(_frame(SYMBOLS[:1], 1.0))  # both paths still work afterwards
        assert store.count_bars() == BARS_PER_SYMBOL
    finally:
        store.dispose()


def test_in_key_order_matches_a_pandas_sort():
    """The canonical write order, against pandas' own multi-key sort as the reference."""
    import numpy as np
    import pyarrow as pa

    from marketpipe.storage.pg_bars_copy import in_key_order

    rng = np.random.default_rng(7)
    frame = pd.concat([_frame(SYMBOLS[:3], 1.0), _frame(["ÄX", "B"], 2.0)], ignore_index=True)
    frame.loc[::7, "interval"] = "5m"
    for shuffled in (frame, frame.iloc[rng.permutation(len(frame))], frame.iloc[::-1]):
        got = in_key_order(pa.Table.from_pandas(shuffled, preserve_index=False)).to_pandas()
        want = shuffled.sort_values(["symbol", "interval", "ts"], ignore_index=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    ordered = pa.Table.from_pandas(
        frame.sort_values(["symbol", "interval", "ts"], ignore_index=True), preserve_index=False
    )
    assert in_key_order(ordered) is ordered  # already sorted: no copy
