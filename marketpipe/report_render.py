"""Rendering of run reports (Prefect-free): tables as JSON-safe rows, the coverage picture as PNG
(matplotlib) or a hand-drawn SVG, and the markdown that embeds it as a `data:` URI (so it needs no
file server). What is rendered is computed elsewhere (`marketpipe.coverage`, `marketpipe.run_reports`).
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

from marketpipe.coverage import STATES
from marketpipe.status import json_safe

COLORS = {
    "present": "#2e7d32",
    "partial": "#f9a825",
    "quarantined": "#8e24aa",
    "missing": "#e0e0e0",
}
MAX_SESSIONS = 120  # image width: the most recent sessions only
MAX_SYMBOLS = 60  # image height: the first symbols only (the table lists them all)


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
