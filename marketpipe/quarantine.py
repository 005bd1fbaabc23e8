"""Quarantine rows: one per rejected input row, naming every check it failed.

Shared by the Bars contract and the corporate-actions contract. `reason` holds the failed codes
sorted and joined with `,`; `detail` their descriptions joined with `; `; `payload` the original
row as JSON text (values JSON cannot hold, such as inf or timestamps, as strings).
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pc

from marketpipe.bars import QUARANTINE_COLUMNS, TS_DTYPE

__all__ = ["empty_quarantine", "quarantine_rows"]


@lru_cache(maxsize=1)
def _empty_quarantine_template() -> pd.DataFrame:
    dtypes = dict.fromkeys(QUARANTINE_COLUMNS, "str")
    dtypes["ts"] = dtypes["quarantined_at"] = TS_DTYPE
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()})


def empty_quarantine() -> pd.DataFrame:
    """A zero-row quarantine frame with the canonical columns and dtypes."""
    return _empty_quarantine_template().copy()


def quarantine_rows(
    raw: pd.DataFrame,
    keys: pd.DataFrame,
    failed: dict[str, np.ndarray],
    details: dict[str, str],
    pos: np.ndarray,
    run_id: str | None,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """Quarantine rows for input positions `pos`.

    `raw` is the input as given (for the payload), `keys` a parsed frame with `symbol, interval,
    ts, source` (row i = input row i), `failed` one mask per reason code over all input rows.
    """
    if len(pos) == 0:
        return empty_quarantine()
    codes = sorted(failed)
    # encode each row's failed-check set as a bit pattern, then render text once per distinct set
    bits = np.zeros(len(pos), dtype=np.int64)
    for i, code in enumerate(codes):
        bits |= failed[code][pos].astype(np.int64) << i
    patterns, inverse = np.unique(bits, return_inverse=True)
    reasons, texts = [], []
    for p in patterns:
        names = [c for i, c in enumerate(codes) if (int(p) >> i) & 1]
        reasons.append(",".join(names))
        texts.append("; ".join(details[c] for c in names))
    out = keys[["symbol", "interval", "ts", "source"]].iloc[pos].reset_index(drop=True)
    n = len(pos)
    out["reason"] = pd.array(np.asarray(reasons, dtype=object)[inverse], dtype="str")
    out["detail"] = pd.array(np.asarray(texts, dtype=object)[inverse], dtype="str")
    out["payload"] = pd.array(_payloads(raw.iloc[pos]), dtype="str")
    out["run_id"] = pd.array([run_id] * n, dtype="str")
    stamp = np.full(n, now.tz_convert(None).floor("us").to_datetime64(), dtype="datetime64[us]")
    out["quarantined_at"] = pd.DatetimeIndex(stamp).tz_localize("UTC")
    return out.astype({"ts": TS_DTYPE})


def _payloads(raw: pd.DataFrame) -> list[str]:
    """Each original row as one JSON object; values JSON cannot hold (inf, timestamps) as strings.

    Built column-wise with pyarrow string kernels; `DataFrame.to_json` is slow on timestamps.
    """
    parts: list[pa_arrow.Array | str] = []
    for i, col in enumerate(raw.columns):
        parts.append(("{" if i == 0 else ",") + json.dumps(str(col)) + ":")
        parts.append(_json_column(raw[col]))
    if not parts:
        return ["{}"] * len(raw)
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "").to_pylist()


def _json_column(s: pd.Series) -> pa_arrow.Array:
    """JSON text of every value of one column (never null: JSON `null` instead)."""
    if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s):
        return _json_timestamps(s)
    if pd.api.types.is_bool_dtype(s) and not s.isna().any():
        return pa_arrow.array(np.where(s.to_numpy(dtype=bool), "true", "false"))
    if pd.api.types.is_integer_dtype(s):
        values = pa_arrow.array(s.astype("Int64").to_numpy(dtype=object, na_value=None))
        return pc.fill_null(pc.cast(values, pa_arrow.string()), "null")
    if pd.api.types.is_float_dtype(s):
        v = s.to_numpy(dtype="float64", na_value=np.nan)
        text = pc.cast(pa_arrow.array(v), pa_arrow.string())
        for mask, literal in ((np.isnan(v), "null"), (np.isposinf(v), '"inf"')):
            if mask.any():
                text = pc.if_else(pa_arrow.array(mask), literal, text)
        if np.isneginf(v).any():
            text = pc.if_else(pa_arrow.array(np.isneginf(v)), '"-inf"', text)
        return text
    # text and mixed objects: encode each distinct value once
    try:
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
    except TypeError:  # unhashable values
        return pa_arrow.array([json.dumps(_json_safe(v), ensure_ascii=False) for v in s])
    encoded = [json.dumps(_json_safe(u), ensure_ascii=False) for u in uniques] + ["null"]
    return pa_arrow.array(np.asarray(encoded, dtype=object)[codes])


def _json_timestamps(s: pd.Series) -> pa_arrow.Array:
    """Quoted ISO 8601 text per timestamp (tz-aware as UTC with `Z`), `null` for NaT."""
    index = pd.DatetimeIndex(s)
    aware = index.tz is not None
    values = index.as_unit("us").asi8.view("datetime64[us]")  # tz-aware asi8 is UTC
    text = pa_arrow.array(np.datetime_as_string(values, unit="us"))
    quoted = pc.binary_join_element_wise('"', text, 'Z"' if aware else '"', "")
    return pc.if_else(pa_arrow.array(np.isnat(values)), "null", quoted)


def _json_safe(v: object) -> object:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else (None if np.isnan(v) else str(float(v)))
    if isinstance(v, str):
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
