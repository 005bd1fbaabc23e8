"""The corporate-actions contract: which split and dividend records may be stored.

`validate_corporate_actions(df, now, run_id)` splits a `corporate_actions` frame (`symbol, ex_date,
kind, value, source`) into rows to store and quarantine rows, one per rejected record, every failed
check named by its reason code, like the Bars contract (and written to the same `quarantine`
table: `interval` is `action:split` / `action:dividend`, `ts` the ex-date at 00:00 UTC, `payload`
the record as JSON). A pandera schema runs the checks lazily on the parsed frame.

Reason codes:
- `missing_value`: symbol, ex_date, kind or value is empty.
- `not_numeric`: value is not a number. `bad_ex_date`: ex_date is not a date.
- `bad_symbol`: the symbol fails `marketpipe.symbols.is_valid_symbol`.
- `bad_kind`: kind is not one of `marketpipe.action_kinds` (`split`, `dividend`,
  `special_dividend`, or a stored-only `dividend_<type>`).
- `split_ratio_invalid`: a split's ratio (shares after / shares before) is not finite and > 0; a
  vendor's `split_to` of 0 would make adjusted prices infinite, a negative one flips their sign.
- `dividend_invalid`: a cash dividend (any kind but `split`) is not finite and >= 0.
- `not_a_session`: the ex-date is not an XNYS session (dates the calendar does not cover,
  before 1990 or beyond about a year ahead, are not judged).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa

from marketpipe.action_kinds import ADJUSTING_KINDS, is_cash_kind, is_known_kind
from marketpipe.calendar import bar_start_flags
from marketpipe.errors import ContractError
from marketpipe.quarantine import quarantine_rows
from marketpipe.symbols import is_valid_symbol

__all__ = [
    "ACTION_COLUMNS",
    "ACTION_REASON_CODES",
    "ActionsResult",
    "actions_schema",
    "validate_corporate_actions",
]

ACTION_COLUMNS: tuple[str, ...] = ("symbol", "ex_date", "kind", "value", "source")
KINDS: tuple[str, ...] = (*ADJUSTING_KINDS, "dividend_<type>")
PARSE_CODES: tuple[str, ...] = ("missing_value", "not_numeric", "bad_ex_date")
RULE_CODES: tuple[str, ...] = (
    "bad_symbol",
    "bad_kind",
    "split_ratio_invalid",
    "dividend_invalid",
    "not_a_session",
)
ACTION_REASON_CODES: tuple[str, ...] = (*PARSE_CODES, *RULE_CODES)
DETAILS: dict[str, str] = {
    "missing_value": "a required field (symbol, ex_date, kind, value) is empty",
    "not_numeric": "value is not a number",
    "bad_ex_date": "ex_date is not a date",
    "bad_symbol": "symbol is not a valid symbol",
    "bad_kind": f"kind is not one of {', '.join(KINDS)}",
    "split_ratio_invalid": "split ratio (shares after / before) is not finite and > 0",
    "dividend_invalid": "cash dividend is not finite and >= 0",
    "not_a_session": "ex_date is not an XNYS session",
}


class ActionsResult(NamedTuple):
    valid: pd.DataFrame
    quarantine: pd.DataFrame


def _is_kind(df: pd.DataFrame, kind: str) -> np.ndarray:
    return (df["kind"] == kind).fillna(False).to_numpy(dtype=bool)


def check_bad_symbol(df: pd.DataFrame) -> pd.Series:
    codes, uniques = pd.factorize(df["symbol"])
    good = np.fromiter((is_valid_symbol(u) for u in uniques), dtype=bool, count=len(uniques))
    return pd.Series(np.append(good, True)[codes], index=df.index)  # NaN: missing_value's


def check_bad_kind(df: pd.DataFrame) -> pd.Series:
    known = np.fromiter((is_known_kind(k) for k in df["kind"].unique()), dtype=bool)
    ok = dict(zip(df["kind"].unique(), known, strict=True))
    return pd.Series(
        df["kind"].isna().to_numpy() | df["kind"].map(ok).fillna(False).to_numpy(dtype=bool),
        df.index,
    )


def check_split_ratio_invalid(df: pd.DataFrame) -> pd.Series:
    v = df["value"].to_numpy(dtype="float64", na_value=np.nan)
    bad = _is_kind(df, "split") & ~np.isnan(v) & ~(np.isfinite(v) & (v > 0))
    return pd.Series(~bad, index=df.index)


def check_dividend_invalid(df: pd.DataFrame) -> pd.Series:
    v = df["value"].to_numpy(dtype="float64", na_value=np.nan)
    cash = np.fromiter((is_cash_kind(k) for k in df["kind"]), dtype=bool, count=len(df))
    bad = cash & ~np.isnan(v) & ~(np.isfinite(v) & (v >= 0))
    return pd.Series(~bad, index=df.index)


def check_not_a_session(df: pd.DataFrame) -> pd.Series:
    in_session, _ = bar_start_flags(df["ts"], "1d")
    return pd.Series(in_session, index=df.index)


def actions_schema() -> pa.DataFrameSchema:
    """pandera schema over a parsed actions frame (`ts` = ex-date at 00:00 UTC, `value` float)."""
    checks = {
        "bad_symbol": check_bad_symbol,
        "bad_kind": check_bad_kind,
        "split_ratio_invalid": check_split_ratio_invalid,
        "dividend_invalid": check_dividend_invalid,
        "not_a_session": check_not_a_session,
    }
    return pa.DataFrameSchema(
        {
            "symbol": pa.Column(str, nullable=True),
            "kind": pa.Column(str, nullable=True),
            "ts": pa.Column("datetime64[us, UTC]", nullable=True),
            "value": pa.Column("float64", nullable=True),
        },
        checks=[
            pa.Check(fn, name=code, element_wise=False, ignore_na=False, n_failure_cases=10)
            for code, fn in checks.items()
        ],
        name="CorporateActions",
        strict=False,
    )


ActionsSchema = actions_schema()


def _parse(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    missing_cols = [c for c in ACTION_COLUMNS if c not in df.columns]
    if missing_cols:
        raise ContractError(f"corporate actions frame lacks column(s) {', '.join(missing_cols)}")
    n = len(df)
    missing = np.zeros(n, dtype=bool)
    for col in ("symbol", "ex_date", "kind", "value"):
        missing |= df[col].isna().to_numpy()
    value = pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    not_numeric = df["value"].notna().to_numpy() & np.isnan(value)
    day = pd.to_datetime(df["ex_date"], errors="coerce", utc=True, format="mixed")
    day = day.dt.tz_convert(None).dt.normalize().dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    bad_date = df["ex_date"].notna().to_numpy() & day.isna().to_numpy()
    frame = pd.DataFrame(
        {
            "symbol": df["symbol"].astype("str").to_numpy(),
            "interval": ("action:" + df["kind"].astype("str")).to_numpy(),
            "kind": df["kind"].astype("str").to_numpy(),
            "ts": day.to_numpy(),
            "value": np.where(not_numeric, np.nan, value),
            "source": df["source"].astype("str").to_numpy(),
        }
    )
    frame["ts"] = frame["ts"].astype("datetime64[us, UTC]")
    return frame, {"missing_value": missing, "not_numeric": not_numeric, "bad_ex_date": bad_date}


def validate_corporate_actions(
    df: pd.DataFrame, now: pd.Timestamp, run_id: str | None = None
) -> ActionsResult:
    """(valid actions in the input's shape, quarantine rows); `len(valid)+len(quarantine)==len(df)`."""
    frame, failed = _parse(df)
    for code in RULE_CODES:
        failed[code] = np.zeros(len(frame), dtype=bool)
    try:
        ActionsSchema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as exc:
        for err in exc.schema_errors:
            name = getattr(err.check, "name", None)
            if name not in RULE_CODES or err.check_output is None:
                raise ContractError(f"corporate actions failed their schema: {err}") from None
            failed[name] = ~err.check_output.to_numpy(dtype=bool)
    bad = np.logical_or.reduce(list(failed.values()))
    valid = df.iloc[np.flatnonzero(~bad)].reset_index(drop=True)
    quarantine = quarantine_rows(
        df, frame, failed, DETAILS, np.flatnonzero(bad), run_id, pd.Timestamp(now)
    )
    return ActionsResult(valid, quarantine)
