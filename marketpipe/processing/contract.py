"""pandera contract for the features frame (`features` table of the hot store).

Checks: key columns present and typed, every numeric feature finite where defined (NaN allowed for
warm-up, +/-inf never), RSI within [0, 100], `bb_lower <= bb_mid <= bb_upper` where defined.
Column names follow `compute_features`' configuration; `Features` is the schema for the defaults.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from marketpipe.processing.features import feature_columns


def _finite_or_nan(s: pd.Series) -> pd.Series:
    return pd.Series(~np.isinf(s.to_numpy(dtype="float64")), index=s.index)


def _bands_ordered(df: pd.DataFrame) -> pd.Series:
    lo, mid, hi = (df[c].to_numpy(dtype="float64") for c in ("bb_lower", "bb_mid", "bb_upper"))
    undefined = np.isnan(lo) | np.isnan(mid) | np.isnan(hi)
    return pd.Series(undefined | ((lo <= mid) & (mid <= hi)), index=df.index)


def features_schema(columns: list[str] | None = None) -> pa.DataFrameSchema:
    """Schema for a features frame with the given column list (defaults: the table's columns)."""
    columns = columns or feature_columns()
    finite = pa.Check(_finite_or_nan, element_wise=False, name="finite_where_defined")
    fixed: dict[str, pa.Column] = {
        "symbol": pa.Column("str", nullable=False),
        "interval": pa.Column("str", nullable=False),
        "ts": pa.Column("datetime64[us, UTC]", nullable=False, coerce=True),
        "outlier_flags": pa.Column("str", nullable=False),
    }
    spec: dict[str, pa.Column] = {}
    for col in columns:
        if col in fixed:
            spec[col] = fixed[col]
            continue
        checks = [finite]
        if col.startswith("rsi_"):
            checks.append(pa.Check.in_range(0.0, 100.0, ignore_na=True))
        spec[col] = pa.Column("float64", checks=checks, nullable=True)
    return pa.DataFrameSchema(
        spec,
        checks=[pa.Check(_bands_ordered, name="bb_lower_le_mid_le_upper")],
        unique=["symbol", "interval", "ts"],
        strict=True,
        ordered=True,
    )


Features = features_schema()


def validate_features(df: pd.DataFrame, schema: pa.DataFrameSchema = Features) -> pd.DataFrame:
    """Validate lazily (every failure reported at once); raises `pandera.errors.SchemaErrors`."""
    return schema.validate(df, lazy=True)
