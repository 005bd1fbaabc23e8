"""The corporate-actions contract: one case per reason code, the pandera schema, row accounting."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from marketpipe.actions_contract import (
    ACTION_REASON_CODES,
    validate_corporate_actions,
)
from marketpipe.errors import ContractError

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
GOOD = {"symbol": "AAPL", "ex_date": date(2020, 8, 31), "kind": "split", "value": 4.0}

CASES: dict[str, dict] = {
    "missing_value": {"value": None},
    "not_numeric": {"value": "four"},
    "bad_ex_date": {"ex_date": "garbage"},
    "bad_symbol": {"symbol": "A;DROP"},
    "bad_kind": {"kind": "bonus"},
    "split_ratio_invalid": {"value": 0.0},
    "dividend_invalid": {"kind": "dividend", "value": -0.5},
    "not_a_session": {"ex_date": date(2024, 1, 6)},  # a Saturday
}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame([{**GOOD, "source": "test", **r} for r in rows])


def test_cases_cover_every_code():
    assert set(CASES) == set(ACTION_REASON_CODES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_each_code_fails_alone(code):
    df = frame({}, CASES[code], {"ex_date": date(2022, 8, 25), "value": 20.0})
    result = validate_corporate_actions(df, NOW, run_id="r1")
    assert result.quarantine["reason"].tolist() == [code]
    row = result.quarantine.iloc[0]
    assert row["run_id"] == "r1" and row["detail"] and row["interval"].startswith("action:")
    assert json.loads(row["payload"])["symbol"] == df.loc[1, "symbol"]
    assert len(result.valid) == 2 and result.valid["value"].tolist() == [4.0, 20.0]


@pytest.mark.parametrize(
    "kind, value, ok",
    [
        ("split", 0.0, False),
        ("split", -2.0, False),
        ("split", np.inf, False),
        ("split", 0.1, True),  # 1-for-10 reverse split
        ("dividend", 0.0, True),
        ("dividend", np.inf, False),
        ("dividend", 0.82, True),
    ],
)
def test_value_bounds(kind, value, ok):
    result = validate_corporate_actions(frame({"kind": kind, "value": value}), NOW)
    assert len(result.valid) == int(ok) and len(result.quarantine) == int(not ok)


def test_schema_names_the_check_and_counts_add_up():
    df = frame(*({} if i % 3 else CASES["split_ratio_invalid"] for i in range(30)))
    result = validate_corporate_actions(df, NOW)
    assert len(result.valid) + len(result.quarantine) == 30 and len(result.quarantine) == 10
    with pytest.raises(ContractError, match="value"):
        validate_corporate_actions(df.drop(columns=["value"]), NOW)
