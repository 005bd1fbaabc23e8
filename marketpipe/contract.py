"""The Bars contract: the pandera schema `BarsSchema` and `validate_bars`, which splits a frame into
valid rows and quarantine rows, one per rejected input row, every failed check named by its code.

pandera is the engine: `validate_bars` runs the schema lazily (`validate(lazy=True)`, every check
on every row) and reads each failed check's row mask from the `SchemaErrors` it raises, so a
quarantine row lists every code it failed. Each check is one vectorised dataframe-level
`pandera.Check` named by its reason code (`n_failure_cases` caps only pandera's message; the full
mask is `SchemaError.check_output`).

How a frame is checked
----------------------
1. Shape: a frame without a required column raises `ContractError` naming it (nothing is written).
2. Parse step (`marketpipe.contract_parse`): numbers, timestamps and text are read without
   crashing; `missing_value`, `not_numeric`, `bad_timestamp` are recorded there.
3. Row rules (`marketpipe.contract_rules`, the schema's checks) run on the parsed frame. A value
   the parse step rejected is NaN/NaT there, and every rule treats NaN as "not my failure", so one
   broken cell yields one reason.
   - values: `price_not_finite`, `price_not_positive`, `volume_not_finite`, `volume_negative`, and
     `out_of_range` — a finite price (`open/high/low/close/vwap`) above `MAX_PRICE` (1e9) or a
     `volume` / `trades` above `MAX_VOLUME` (1e15). The bounds sit far above any real quote (the
     dearest US share trades below 1e6; a KRW-priced bitcoin near 1.5e8) and far below where
     derived values overflow (price x volume <= 1e24, squared prices <= 1e18).
   - the OHLC envelope: `high_lt_open_close`, `low_gt_open_close`, `high_lt_low`.
   - keys: `future_bar` (starts after `now`), `bad_symbol`, `bad_interval`.
   - sessions (`marketpipe.calendar.bar_start_flags`, XNYS): `not_a_session` — an intraday bar
     outside every session's `[open, close)`, or a daily bar whose session date is not a session;
     `misaligned` — inside a session but not `open + k x interval` (`1h` bars start 09:30, 10:30, …
     ET; sub-minute bars on whole seconds of their width), or a daily bar not stamped 00:00 UTC. A
     daily timestamp is mapped to its session by the exchange-local date (00:00 UTC itself means
     that UTC date), so `2024-01-03T20:00-05:00` is the 2024-01-03 session but `misaligned`, and a
     `+09:00` local-midnight stamp is never moved to the session before.
4. `duplicate_key` runs last (a second pandera schema), over rows that passed every other rule:
   the first *good* occurrence of a `(symbol, interval, ts)` key is kept and later ones are
   quarantined, so a broken first copy never causes a good later copy to be lost.

`float NaN` cannot be told apart from "missing" in a float column, so NaN prices are
`missing_value`; `price_not_finite` / `volume_not_finite` are for ±inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa

from marketpipe.bars import (
    BAR_KEY,
    QUARANTINE_COLUMNS,
    STORED_INTERVALS,
    TS_DTYPE,
    conform_bars,
)
from marketpipe.contract_parse import PARSE_CODES, parse_bars
from marketpipe.contract_rules import (
    EXCHANGE,
    MAX_PRICE,
    MAX_VOLUME,
    FrameMemo,
    as_utc,
    check_duplicate_key,
    rule_functions,
    utc_now,
)
from marketpipe.errors import ContractError
from marketpipe.quarantine import empty_quarantine, quarantine_rows
from marketpipe.symbols import SYMBOL_PATTERN

__all__ = [
    "BarsSchema",
    "MAX_PRICE",
    "MAX_VOLUME",
    "QUARANTINE_COLUMNS",
    "REASON_CODES",
    "RULE_CODES",
    "ValidationResult",
    "build_bars_schema",
    "empty_quarantine",
    "validate_bars",
]

N_FAILURE_CASES = 10  # per check, in pandera's message only

RULE_CODES: tuple[str, ...] = (
    "price_not_finite",
    "price_not_positive",
    "volume_not_finite",
    "volume_negative",
    "out_of_range",
    "high_lt_open_close",
    "low_gt_open_close",
    "high_lt_low",
    "future_bar",
    "bad_symbol",
    "bad_interval",
    "not_a_session",
    "misaligned",
    "duplicate_key",
)
REASON_CODES: tuple[str, ...] = (*PARSE_CODES, *RULE_CODES)

DETAILS: dict[str, str] = {
    "missing_value": "a required field is empty",
    "not_numeric": "a numeric field is not a number",
    "bad_timestamp": "ts is unparseable, numeric or naive (needs a UTC offset)",
    "price_not_finite": "a price (open/high/low/close/vwap) is infinite",
    "price_not_positive": "a price (open/high/low/close/vwap) is <= 0",
    "volume_not_finite": "volume or trades is infinite",
    "volume_negative": "volume or trades is negative",
    "out_of_range": f"a price is above {MAX_PRICE:g} or volume/trades above {MAX_VOLUME:g}",
    "high_lt_open_close": "high < max(open, close)",
    "low_gt_open_close": "low > min(open, close)",
    "high_lt_low": "high < low",
    "future_bar": "bar starts after now",
    "bad_symbol": f"symbol is not {SYMBOL_PATTERN} (ASCII, <=32 chars, no '..' or '//')",
    "bad_interval": f"interval is not one of {', '.join(STORED_INTERVALS)}",
    "not_a_session": f"bar is outside every {EXCHANGE} session (daily: by exchange-local date)",
    "misaligned": "ts is not a bar start of its interval (open + k x interval; daily: 00:00 UTC)",
    "duplicate_key": "(symbol, interval, ts) repeats an earlier row",
}


class ValidationResult(NamedTuple):
    valid: pd.DataFrame
    quarantine: pd.DataFrame


_COLUMNS: dict[str, tuple[object, bool]] = {  # name -> (dtype, required)
    "symbol": (str, True),
    "interval": (str, True),
    "ts": (TS_DTYPE, True),
    "open": ("float64", True),
    "high": ("float64", True),
    "low": ("float64", True),
    "close": ("float64", True),
    "volume": ("float64", True),
    "vwap": ("float64", False),
    "trades": ("Int64", False),
    "source": (str, True),
}


def _schema(
    checks: dict[str, Callable],
    name: str,
    columns: tuple[str, ...] = tuple(_COLUMNS),
    dtypes: dict[str, object] | None = None,
) -> pa.DataFrameSchema:
    """Columns are nullable at the dtype level because nulls are reported by the named
    `missing_value` check (required columns only), not by pandera's generic `not_nullable`.
    `ignore_na=False`: each rule decides about NaN itself (and pandera's NaN pass costs a scan)."""
    spec = {
        col: pa.Column((dtypes or {}).get(col, dtype), nullable=True, required=required)
        for col, (dtype, required) in _COLUMNS.items()
        if col in columns
    }
    return pa.DataFrameSchema(
        spec,
        checks=[
            pa.Check(
                fn, name=code, element_wise=False, ignore_na=False, n_failure_cases=N_FAILURE_CASES
            )
            for code, fn in checks.items()
        ],
        name=name,
        strict=False,
    )


def build_bars_schema(now: pd.Timestamp | None = None) -> pa.DataFrameSchema:
    """The pandera schema for canonical bars, every check named by its reason code (for frames
    that are already parsed; `validate_bars` runs the same checks, the key check last)."""
    return _schema(rule_functions(now), "Bars")


BarsSchema: pa.DataFrameSchema = build_bars_schema()
Bars = BarsSchema
# what `validate_bars` runs: the row rules (missing values are the parse step's), then the key
_ROW_RULES = tuple(c for c in rule_functions() if c not in ("missing_value", "duplicate_key"))
_KEY_SCHEMA = _schema({"duplicate_key": check_duplicate_key}, "BarsKey", BAR_KEY)


def _row_schema(now: pd.Timestamp) -> pa.DataFrameSchema:
    """Built per call (~1 ms), with its own memo, so concurrent validations share nothing."""
    rules = rule_functions(now, FrameMemo())
    # the parse step keeps `trades` float64 (an infinite count is volume_not_finite, not a crash)
    checks = {code: rules[code] for code in _ROW_RULES}
    return _schema(checks, "BarsRows", dtypes={"trades": "float64"})


def _failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Run `schema` lazily; {check name: failed-row mask over `frame`} for every failed check."""
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        out: dict[str, np.ndarray] = {}
        for err in exc.schema_errors:
            name = getattr(err.check, "name", None)
            if name not in RULE_CODES or err.check_output is None:  # dtype, shape: a bug here
                raise ContractError(f"bars frame failed the Bars schema: {err}") from None
            out[name] = ~err.check_output.to_numpy(dtype=bool)
        return out
    return {}


# --------------------------------------------------------------------------- validate
def validate_bars(
    df: pd.DataFrame, now: pd.Timestamp | None = None, run_id: str | None = None
) -> ValidationResult:
    """Split `df` into canonical valid rows and quarantine rows (`len(valid)+len(quarantine)==len(df)`).

    Lazy: every rule runs on every row and each quarantine row names all the rules it failed.
    `now` (tz-aware; default wall clock) bounds `future_bar`. Raises `ContractError` if a required
    column is missing.
    """
    now_utc = utc_now() if now is None else as_utc(now)
    frame, masks = parse_bars(df)
    failed: dict[str, np.ndarray] = dict(masks)
    for code in _ROW_RULES:
        failed[code] = np.zeros(len(frame), dtype=bool)
    failed.update(_failures(_row_schema(now_utc), frame))
    any_failed = np.logical_or.reduce(list(failed.values()))
    ok_pos = np.flatnonzero(~any_failed)
    dup = np.zeros(len(frame), dtype=bool)
    if len(ok_pos):
        keys = frame[list(BAR_KEY)]
        candidates = keys.iloc[ok_pos] if len(ok_pos) < len(frame) else keys
        found = _failures(_KEY_SCHEMA, candidates).get("duplicate_key")
        if found is not None:
            dup[ok_pos] = found
    failed["duplicate_key"] = dup
    any_failed |= dup

    valid_pos = np.flatnonzero(~any_failed)
    valid_frame = frame if len(valid_pos) == len(frame) else frame.iloc[valid_pos]
    valid = conform_bars(valid_frame)
    bad_pos = np.flatnonzero(any_failed)
    quarantine = quarantine_rows(df, frame, failed, DETAILS, bad_pos, run_id, now_utc)
    return ValidationResult(valid, quarantine)
