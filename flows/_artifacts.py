"""Artifacts that explain a run in the Prefect UI (every value JSON-safe, never fatal to a run).

- `quality_table(report_rows, quarantine)` / `publish_quality_table(...)`: per symbol, rows
  fetched / stored / quarantined and the quarantine reason codes with counts;
- `RunProgress(total, key)`: a progress artifact created at 0 % and updated as chunks finish;
- `coverage_matrix(...)` → `coverage_png` (matplotlib) or `coverage_svg` (drawn here) →
  `coverage_markdown(...)` / `publish_coverage_report(...)`: symbols × sessions, each cell
  present / partial / missing / quarantined, embedded as a `data:` URI so it needs no file server.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Iterable
from datetime import date, timedelta

import pandas as pd

from marketpipe.coverage import STATES, coverage_states, window_coverage
from marketpipe.status import json_safe

log = logging.getLogger(__name__)

COLORS = {
    "present": "#2e7d32",
    "partial": "#f9a825",
    "quarantined": "#8e24aa",
    "missing": "#e0e0e0",
}
MAX_SESSIONS = 120  # image width: the most recent sessions only
MAX_SYMBOLS = 60  # image height: the first symbols only (the table lists them all)


def _logger():
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return log


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


# ---------------------------------------------------------------- quality table
def quality_table(report_rows: list[dict], quarantine: pd.DataFrame | None) -> list[dict]:
    """One row per symbol: counts from the run report plus `reasons` ('high_lt_low: 2, …')."""
    reasons: dict[str, dict[str, int]] = {}
    if quarantine is not None and len(quarantine):
        q = quarantine.assign(
            symbol=quarantine["symbol"].astype(str), reason=quarantine["reason"].astype(str)
        )
        for (sym, reason), n in q.groupby(["symbol", "reason"]).size().items():
            for code in reason.split(","):
                reasons.setdefault(sym, {})
                reasons[sym][code] = reasons[sym].get(code, 0) + int(n)
    rows, seen = [], set()
    for row in report_rows:
        sym = str(row.get("symbol"))
        seen.add(sym)
        codes = reasons.get(sym, {})
        rows.append(
            {
                **{k: json_safe(v) for k, v in row.items()},
                "reasons": ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) or "",
            }
        )
    for sym in sorted(set(reasons) - seen):  # e.g. an unsafe symbol string from the vendor
        codes = reasons[sym]
        rows.append(
            {
                "symbol": sym,
                "quarantined": sum(codes.values()),
                "reasons": ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())),
            }
        )
    return rows


def publish_quality_table(
    key: str, report_rows: list[dict], quarantine: pd.DataFrame | None, description: str
) -> None:
    from prefect.artifacts import create_table_artifact

    try:
        create_table_artifact(
            table=quality_table(report_rows, quarantine), key=key, description=description
        )
    except Exception as exc:
        _logger().warning("could not publish artifact %s: %s", key, exc)


# ---------------------------------------------------------------- progress
class RunProgress:
    """A progress artifact: `RunProgress(total=n, key="ingestion-progress")`, then `.advance()`."""

    def __init__(self, total: int, key: str, description: str = ""):
        self.total = max(int(total), 1)
        self.done = 0
        self.key = key
        self.artifact_id = None
        if not _in_run():
            return  # outside a flow/task run there is nothing to attach it to
        try:
            from prefect.artifacts import create_progress_artifact

            self.artifact_id = create_progress_artifact(
                progress=0.0, key=key, description=description or f"0/{self.total} chunks"
            )
        except Exception as exc:
            _logger().warning("could not publish progress artifact %s: %s", key, exc)

    @property
    def percent(self) -> float:
        return round(100.0 * min(self.done, self.total) / self.total, 2)

    def advance(self, n: int = 1) -> float:
        self.done += n
        if self.artifact_id is not None:
            try:
                from prefect.artifacts import update_progress_artifact

                update_progress_artifact(
                    self.artifact_id,
                    progress=self.percent,
                    description=f"{self.done}/{self.total} chunks",
                )
            except Exception as exc:
                _logger().warning("could not update progress artifact %s: %s", self.key, exc)
        return self.percent


# ---------------------------------------------------------------- coverage
def coverage_matrix(
    bars: pd.DataFrame,
    quarantine: pd.DataFrame | None,
    symbols: Iterable[str],
    interval: str,
    start: date,
    end: date,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """symbols × sessions of `present | partial | quarantined | missing` (`marketpipe.coverage`)."""
    symbols = list(dict.fromkeys(symbols))
    frame = window_coverage(bars, quarantine, symbols, interval, start, end, now=now)
    return coverage_states(frame, symbols)


def coverage_summary(matrix: pd.DataFrame) -> list[dict]:
    """Per symbol: sessions in each state (JSON-safe rows)."""
    rows = []
    for sym, row in matrix.iterrows():
        vc = row.value_counts()
        rows.append({"symbol": str(sym), **{s: int(vc.get(s, 0)) for s in STATES}})
    return rows


def _clip(matrix: pd.DataFrame) -> pd.DataFrame:
    return matrix.iloc[:MAX_SYMBOLS, -MAX_SESSIONS:]


def coverage_png(matrix: pd.DataFrame) -> bytes | None:
    """A small PNG of the matrix (None when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch
    except ImportError:
        return None
    m = _clip(matrix)
    codes = m.replace({s: i for i, s in enumerate(STATES)}).to_numpy(dtype=float)
    rows, cols = codes.shape
    fig, ax = plt.subplots(figsize=(min(9.0, 1.6 + 0.07 * cols), 0.9 + 0.22 * max(rows, 1)), dpi=72)
    try:
        ax.imshow(
            codes,
            aspect="auto",
            interpolation="nearest",
            cmap=ListedColormap([COLORS[s] for s in STATES]),
            vmin=-0.5,
            vmax=len(STATES) - 0.5,
        )
        ax.set_yticks(range(rows), [str(s) for s in m.index], fontsize=7)
        step = max(1, cols // 8)
        ax.set_xticks(
            range(0, cols, step), [str(c) for c in m.columns[::step]], fontsize=6, rotation=30
        )
        ax.legend(
            handles=[Patch(color=COLORS[s], label=s) for s in STATES],
            fontsize=6,
            ncol=4,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            frameon=False,
        )
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=72)
        return buf.getvalue()
    finally:
        plt.close(fig)


def coverage_svg(matrix: pd.DataFrame, cell: int = 8) -> str:
    """The same picture as an SVG drawn by hand (no plotting library needed)."""
    m = _clip(matrix)
    label_w, top = 70, 14
    w, h = label_w + cell * len(m.columns) + 4, top + cell * len(m.index) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'font-family="sans-serif" font-size="8">'
    ]
    x = label_w
    for s in STATES:
        parts.append(f'<rect x="{x}" y="2" width="8" height="8" fill="{COLORS[s]}"/>')
        parts.append(f'<text x="{x + 10}" y="9">{s}</text>')
        x += 60
    for r, (sym, row) in enumerate(m.iterrows()):
        y = top + r * cell
        parts.append(f'<text x="2" y="{y + cell - 1}">{html.escape(str(sym))[:12]}</text>')
        for c, state in enumerate(row):
            parts.append(
                f'<rect x="{label_w + c * cell}" y="{y}" width="{cell - 1}" '
                f'height="{cell - 1}" fill="{COLORS.get(state, "#000")}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def coverage_image_uri(matrix: pd.DataFrame) -> str:
    """`data:image/png;base64,…` (matplotlib) or `data:image/svg+xml;base64,…`."""
    png = coverage_png(matrix)
    if png is not None:
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    svg = coverage_svg(matrix).encode()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def coverage_markdown(matrix: pd.DataFrame, title: str, notes: list[str] | None = None) -> str:
    """Markdown: title, the coverage picture, then a per-symbol table of session counts."""
    summary = coverage_summary(matrix)
    first = str(matrix.columns[0]) if len(matrix.columns) else "-"
    last = str(matrix.columns[-1]) if len(matrix.columns) else "-"
    lines = [
        f"# {title}",
        "",
        f"{len(matrix.index)} symbols × {len(matrix.columns)} sessions ({first} … {last})",
        "",
    ]
    if len(matrix.columns) > MAX_SESSIONS or len(matrix.index) > MAX_SYMBOLS:
        lines += [
            f"_Picture limited to the last {MAX_SESSIONS} sessions and first {MAX_SYMBOLS} "
            "symbols; the table below is complete._",
            "",
        ]
    if len(matrix.columns) and len(matrix.index):
        lines += [f"![coverage]({coverage_image_uri(matrix)})", ""]
    lines += ["| symbol | " + " | ".join(STATES) + " |", "|---|" + "---:|" * len(STATES)]
    for row in summary:
        sym = str(row["symbol"]).replace("|", "\\|")
        lines.append(f"| {sym} | " + " | ".join(str(row[s]) for s in STATES) + " |")
    for note in notes or []:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def publish_coverage_report(
    stores,
    symbols: list[str],
    interval: str,
    start: date,
    end: date,
    key: str,
    title: str,
    notes: list[str] | None = None,
) -> dict | None:
    """Read what the stores hold for the range, publish the markdown report; returns the summary."""
    from prefect.artifacts import create_markdown_artifact

    from marketpipe.storage.read import read_bars

    try:
        bars = read_bars(stores, symbols, start, end + timedelta(days=1), interval)
        quarantine = stores.hot.read_quarantine(symbols=symbols, interval=interval)
        matrix = coverage_matrix(
            bars, quarantine, symbols, interval, start, end, now=pd.Timestamp.now(tz="UTC")
        )
        markdown = coverage_markdown(matrix, title, notes)
        create_markdown_artifact(
            markdown=markdown, key=key, description=f"coverage {interval} {start}..{end}"
        )
        return {"sessions": len(matrix.columns), "symbols": coverage_summary(matrix)}
    except Exception as exc:
        _logger().warning("could not publish coverage report %s: %s", key, exc)
        return None
