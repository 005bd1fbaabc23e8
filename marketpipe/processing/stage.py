"""The processing stage over stored data (Prefect-free): read raw bars from hot ∪ cold, clean,
optionally resample, adjust, compute features, score quality, and store the results.

Features are computed on back-adjusted prices (a split is not a -75 % return); storage keeps raw.
Rows in = rows out: cleaning removes only exact-key duplicates (counted) and flags outliers.

Each symbol is processed on its own: when one symbol's data makes processing fail (e.g. values
that overflow to inf, which the features contract refuses), that symbol gets one quarantine row
(`reason='processing_failed'`, `ts` null, the error in `detail`) and is listed in
`ProcessReport.failed`; the other symbols complete. Store and service failures still propagate
(the task retries them).

Window independence: features (and outlier flags) are computed over the window plus warm-up
history read before it (`processing.history`), and only the window's rows are written, so a
re-run over any window rewrites the same values and an incremental run equals one over all
history (to 1e-12 relative; tests check 1e-9).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta

import pandas as pd
import pandera.errors as pa_errors

from marketpipe.errors import ContractError
from marketpipe.processing.adjusted_read import adjust_stored
from marketpipe.processing.clean import clean_bars
from marketpipe.processing.contract import validate_features
from marketpipe.processing.features import compute_features, warmup_bars
from marketpipe.processing.history import read_with_history
from marketpipe.processing.quality import count_quarantined, quality_scores
from marketpipe.processing.resample import resample_bars
from marketpipe.storage import Stores
from marketpipe.storage.read import read_bars
from marketpipe.storage.router import plan_writes


@dataclass
class ProcessReport:
    symbols: list[str]
    interval: str
    bars_in: int = 0
    duplicates_removed: int = 0
    flagged: int = 0
    features_hot: int = 0
    features_cold: int = 0
    quality_rows: int = 0
    resampled: dict[str, int] = field(default_factory=dict)
    quality: list[dict] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # symbol -> why processing failed

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def add(self, part: ProcessReport) -> None:
        """Fold one symbol's report into this one."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        for target, n in part.resampled.items():
            self.resampled[target] = self.resampled.get(target, 0) + n
        self.quality.extend(part.quality)
        self.failed.update(part.failed)


_COUNTS = (
    "bars_in",
    "duplicates_removed",
    "flagged",
    "features_hot",
    "features_cold",
    "quality_rows",
)
# what one symbol's data can make processing raise; anything else (stores, services) propagates
DATA_ERRORS = (
    pa_errors.SchemaError,
    pa_errors.SchemaErrors,
    ContractError,
    ValueError,
    ArithmeticError,
)


def process_symbols(
    stores: Stores,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    now: pd.Timestamp,
    hot_days: int,
    resample_to: list[str] | None = None,
) -> ProcessReport:
    """Process each symbol over [start, end] (inclusive dates), isolated from the others."""
    report = ProcessReport(symbols=list(symbols), interval=interval)
    for symbol in symbols:
        try:
            part = _process_group(
                stores, [symbol], start, end, interval, now, hot_days, resample_to
            )
        except DATA_ERRORS as exc:
            report.failed[symbol] = _quarantine_failure(
                stores, symbol, interval, start, end, exc, now
            )
            continue
        report.add(part)
    return report


def _quarantine_failure(
    stores: Stores, symbol: str, interval: str, start: date, end: date, exc: Exception, now
) -> str:
    """One quarantine row for a symbol whose processing failed; returns the one-line reason."""
    why = f"processing_failed: {_describe(exc)}"
    payload = {"stage": "processing", "start": str(start), "end": str(end)}
    stores.hot.write_quarantine(
        pd.DataFrame(
            {
                "symbol": [symbol],
                "interval": [interval],
                "ts": [pd.NaT],
                "source": ["processing"],
                "reason": ["processing_failed"],
                "detail": [why[len("processing_failed: ") :]],
                "payload": [json.dumps(payload)],
                "run_id": [None],
                "quarantined_at": [now],
            }
        )
    )
    return why


def _describe(exc: Exception) -> str:
    """One line: pandera errors by the checks and columns that failed, others by their message."""
    if isinstance(exc, pa_errors.SchemaErrors):
        cases = exc.failure_cases[["column", "check"]].drop_duplicates().astype(str)
        failed = sorted({f"{c}: {k}" for c, k in zip(cases["column"], cases["check"], strict=True)})
        return f"features contract failed ({'; '.join(failed)})"[:500]
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:500]


def _process_group(
    stores: Stores,
    symbols: list[str],
    start: date,
    end: date,
    interval: str,
    now: pd.Timestamp,
    hot_days: int,
    resample_to: list[str] | None = None,
) -> ProcessReport:
    """Process one group of symbols over [start, end] (inclusive dates)."""
    hi = end + timedelta(days=1)
    report = ProcessReport(symbols=list(symbols), interval=interval)

    def read(syms: list[str], lo: date, up: date) -> pd.DataFrame:
        return read_bars(stores, syms, lo, up, interval)

    frame = read_with_history(read, symbols, start, hi, interval, need=warmup_bars())
    lo_ts = pd.Timestamp(start, tz="UTC")
    in_window = (frame["ts"] >= lo_ts).to_numpy()
    raw = frame.loc[in_window].reset_index(drop=True)
    report.bars_in = len(raw)
    if raw.empty:
        return report
    for target in resample_to or []:
        report.resampled[target] = _store_resampled(stores, raw, target, now, hot_days)
    cleaned = clean_bars(frame)
    bars = cleaned.bars
    window_rows = (bars["ts"] >= lo_ts).to_numpy()
    report.duplicates_removed = len(raw) - int(window_rows.sum())
    report.flagged = int((bars.loc[window_rows, "outlier_flags"] != "").sum())
    flags = cleaned.flags.loc[(cleaned.flags["ts"] >= lo_ts).to_numpy()]
    actions = stores.hot.read_corporate_actions(symbols)
    # the same adjustment `read --adjusted` applies (factors see bars after the window too);
    # `bars` holds the warm-up history too, and only the window's features are written
    adjusted = adjust_stored(stores, bars, actions, symbols, interval, _utc(hi))
    computed = compute_features(adjusted)
    features = validate_features(computed.loc[computed["ts"] >= lo_ts].reset_index(drop=True))
    plan = plan_writes(features, now, hot_days)
    report.features_hot = stores.hot.upsert_features(plan.hot)
    report.features_cold = stores.cold.write_features(plan.cold) if len(plan.cold) else 0
    quarantine = stores.hot.read_quarantine(symbols=symbols, interval=interval)
    quarantine = quarantine.loc[
        (quarantine["ts"] >= pd.Timestamp(start, tz="UTC"))
        & (quarantine["ts"] < pd.Timestamp(hi, tz="UTC"))
    ]
    scores = quality_scores(
        raw,
        quarantined_counts=count_quarantined(quarantine) if len(quarantine) else None,
        flags=flags,
        now=now,
    )
    scores["computed_at"] = now
    report.quality_rows = stores.hot.upsert_quality(scores)
    report.quality = _quality_summary(scores)
    return report


def _utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _store_resampled(stores: Stores, raw: pd.DataFrame, target: str, now, hot_days: int) -> int:
    out = resample_bars(raw, target)
    plan = plan_writes(out, now, hot_days)
    if len(plan.cold):
        stores.cold.write_bars(plan.cold)
    if len(plan.hot):
        stores.hot.upsert_bars(plan.hot)
    return len(out)


def _quality_summary(scores: pd.DataFrame) -> list[dict]:
    """Per symbol: sessions scored, mean/min score, missing, quarantined, outliers (JSON-safe)."""
    if scores.empty:
        return []
    g = scores.groupby(["symbol", "interval"])
    summary = g.agg(
        sessions=("score", "size"),
        mean_score=("score", "mean"),
        min_score=("score", "min"),
        missing=("missing", "sum"),
        quarantined=("quarantined", "sum"),
        outliers=("outliers", "sum"),
    ).reset_index()
    rows = []
    for rec in summary.to_dict("records"):
        rows.append(
            {
                "symbol": str(rec["symbol"]),
                "interval": str(rec["interval"]),
                "sessions": int(rec["sessions"]),
                "mean_score": round(float(rec["mean_score"]), 4),
                "min_score": round(float(rec["min_score"]), 4),
                "missing": int(rec["missing"]),
                "quarantined": int(rec["quarantined"]),
                "outliers": int(rec["outliers"]),
            }
        )
    return rows
