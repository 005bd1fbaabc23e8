"""Vendor corporate-action guards shared by adapters: dividend types and duplicate split records.

* Dividend types (Polygon `dividend_type`): `CD` (regular cash) -> kind `dividend`, `SC` (special
  cash) -> `special_dividend`; both back-adjust prices. Any other type (`LT`/`ST` long/short-term
  capital-gain distributions, ...) -> kind `dividend_{type}` in lower case (`dividend_lt`): stored,
  never applied (see `marketpipe.processing.adjust`). A record without a type is regular cash.
* Duplicate split records of one event: vendors sometimes report one split twice with different
  dates (Polygon listed SHOP's 10:1 split on 2022-06-22 and on 2022-06-29). Splits of one symbol
  with the same ratio whose ex-dates are less than `DUPLICATE_SPLIT_DAYS` apart are one event;
  applying both would compound 10:1 into 100:1. The record with the LATEST ex-date is kept (the
  vendor's correction; SHOP traded split-adjusted from 2022-06-29), and each dropped record is
  recorded: one warning log line per symbol naming both dates, and the count in the returned
  `duplicates` frame (the adapter's `duplicate_actions` counter adds them up).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
DUPLICATE_SPLIT_DAYS = 30
CASH_TYPES = {"CD": "dividend", "SC": "special_dividend"}


def dividend_kind(dividend_type: object) -> str:
    """The corporate-action kind of a vendor dividend type (see the module docstring)."""
    if dividend_type is None or (isinstance(dividend_type, float) and np.isnan(dividend_type)):
        return "dividend"
    code = str(dividend_type).strip().upper()
    if not code:
        return "dividend"
    return CASH_TYPES.get(code, f"dividend_{code.lower()}")


def merge_duplicate_splits(
    actions: pd.DataFrame, provider: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(actions with one record per split event, the dropped duplicate records)."""
    if actions.empty:
        return actions, actions.iloc[:0]
    is_split = (actions["kind"] == "split").to_numpy()
    splits = actions.loc[is_split].copy()
    if len(splits) < 2:
        return actions, actions.iloc[:0]
    splits["_day"] = pd.to_datetime(splits["ex_date"])
    splits["_ratio"] = splits["value"].round(9)
    splits = splits.sort_values(["symbol", "_ratio", "_day"], ascending=[True, True, False])
    same = (splits["symbol"] == splits["symbol"].shift()) & (
        splits["_ratio"] == splits["_ratio"].shift()
    )
    # walking from the latest record back: a record within the window of the kept one is a copy
    gap = (splits["_day"].shift() - splits["_day"]).dt.days
    dup = (same & (gap < DUPLICATE_SPLIT_DAYS)).to_numpy()
    if not dup.any():
        return actions, actions.iloc[:0]
    # chains (three reports of one event) stay merged into the first (latest) record of the chain
    event = np.cumsum(~dup)
    kept_day = splits["_day"].groupby(event).transform("first")
    dropped = splits.loc[dup]
    for sym, grp in dropped.groupby("symbol"):
        kept = kept_day.loc[grp.index]
        pairs = ", ".join(
            f"{r:g}:1 on {d.date()} (kept {k.date()})"
            for r, d, k in zip(grp["value"], grp["_day"], kept, strict=True)
        )
        log.warning(
            "%s %s: merged %d duplicate split record(s) of one event: %s",
            provider,
            sym,
            len(grp),
            pairs,
        )
    keep_index = actions.index.difference(dropped.index)
    cols = list(actions.columns)
    return actions.loc[keep_index, cols].reset_index(drop=True), dropped[cols].reset_index(
        drop=True
    )
