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


def bin_matrix(matrix: pd.DataFrame, max_columns: int = MAX_SESSIONS) -> tuple[pd.DataFrame, str]:
    """(matrix, unit): sessions as they are when they fit, else weeks (about two years), else
    months. A bin is present when all its sessions are, quarantined when any is, partial when
    some bars are stored, missing otherwise. Columns of a binned matrix are each bin's first day."""
    if len(matrix.columns) <= max_columns:
        return matrix, "session"
    days = pd.DatetimeIndex(pd.to_datetime([str(c) for c in matrix.columns]))
    unit, freq = ("week", "W-SUN") if len(matrix.columns) <= 5 * 105 else ("month", "M")
    labels = days.to_period(freq).start_time.date
    by_bin = matrix.T.set_axis(labels)  # one row per session, labelled by its bin

    def share(state: str, how: str) -> pd.DataFrame:
        return getattr((by_bin == state).groupby(level=0, sort=False), how)().T

    present_all = share("present", "all")
    quarantined_any = share("quarantined", "any")
    stored_any = share("present", "any") | share("partial", "any")
    binned = pd.DataFrame("missing", index=matrix.index, columns=present_all.columns)
    binned = binned.mask(stored_any, "partial").mask(quarantined_any, "quarantined")
    return binned.mask(present_all, "present"), unit


def _window_columns(columns, window) -> tuple[int, int] | None:
    """First and last column position inside the run's window [start, end] (dates)."""
    if window is None or not len(columns):
        return None
    lo, hi = (pd.Timestamp(str(w)) for w in window)
    days = pd.DatetimeIndex(pd.to_datetime([str(c) for c in columns]))
    inside = [i for i, d in enumerate(days) if d <= hi and (i + 1 == len(days) or days[i + 1] > lo)]
    return (inside[0], inside[-1]) if inside else None


def coverage_png(
    matrix: pd.DataFrame, window: tuple | None = None, unit: str = "session"
) -> bytes | None:
    """The coverage picture as PNG (None when matplotlib is not installed): at least 800 px
    wide, one row per symbol, the run's `window` (start, end) outlined."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch, Rectangle
    except ImportError:
        return None
    m = _clip(matrix)
    codes = m.replace({s: i for i, s in enumerate(STATES)}).to_numpy(dtype=float)
    rows, cols = codes.shape
    fig, ax = plt.subplots(figsize=(10.0, 1.9 + 0.32 * max(rows, 1)), dpi=100)  # 1000 px wide
    try:
        ax.imshow(
            codes,
            aspect="auto",
            interpolation="nearest",
            cmap=ListedColormap([COLORS[s] for s in STATES]),
            vmin=-0.5,
            vmax=len(STATES) - 0.5,
        )
        ax.set_yticks(range(rows), [str(s) for s in m.index], fontsize=10)
        step = max(1, -(-cols // 10))
        ax.set_xticks(
            range(0, cols, step), [str(c) for c in m.columns[::step]], fontsize=9, rotation=35,
            ha="right",
        )  # fmt: skip
        ax.set_xlabel(f"{unit} (first day)" if unit != "session" else "session", fontsize=10)
        handles = [Patch(color=COLORS[s], label=s) for s in STATES]
        span = _window_columns(m.columns, window)
        if span is not None:
            first, last = span
            ax.add_patch(
                Rectangle(
                    (first - 0.5, -0.5), last - first + 1, rows, fill=False, lw=2.5, ec="#1565c0"
                )
            )
            handles.append(Patch(fill=False, ec="#1565c0", lw=2.5, label="this run's window"))
        fig.legend(handles=handles, fontsize=10, ncol=len(handles), loc="upper center",
                   frameon=False)  # fmt: skip
        fig.tight_layout(rect=(0, 0, 1, 0.9))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        return buf.getvalue()
    finally:
        plt.close(fig)


def coverage_svg(matrix: pd.DataFrame, cell: int = 8, window: tuple | None = None) -> str:
    """The same picture as an SVG drawn by hand (no plotting library needed), ≥ 800 px wide."""
    m = _clip(matrix)
    label_w, top = 90, 22
    cell_w = max(cell, min(40, (800 - label_w) // max(len(m.columns), 1)))
    cell_h = max(cell, 16)
    w = max(800, label_w + cell_w * len(m.columns) + 4)
    h = top + cell_h * len(m.index) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'font-family="sans-serif" font-size="12">'
    ]
    x = label_w
    for s in STATES:
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{COLORS[s]}"/>')
        parts.append(f'<text x="{x + 16}" y="15">{s}</text>')
        x += 110
    for r, (sym, row) in enumerate(m.iterrows()):
        y = top + r * cell_h
        parts.append(f'<text x="2" y="{y + cell_h - 3}">{html.escape(str(sym))[:12]}</text>')
        for c, state in enumerate(row):
            parts.append(
                f'<rect x="{label_w + c * cell_w}" y="{y}" width="{cell_w - 1}" '
                f'height="{cell_h - 1}" fill="{COLORS.get(state, "#000")}"/>'
            )
    if len(m.columns):
        y = top + cell_h * len(m.index) + 14
        for c in (0, len(m.columns) - 1):
            anchor = "start" if c == 0 else "end"
            x = label_w + c * cell_w + (0 if c == 0 else cell_w)
            parts.append(f'<text x="{x}" y="{y}" text-anchor="{anchor}">{m.columns[c]}</text>')
    span = _window_columns(m.columns, window)
    if span is not None:
        first, last = span
        parts.append(
            f'<rect x="{label_w + first * cell_w}" y="{top}" width="{(last - first + 1) * cell_w}" '
            f'height="{cell_h * len(m.index)}" fill="none" stroke="#1565c0" stroke-width="3"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def coverage_image_uri(
    matrix: pd.DataFrame, window: tuple | None = None, unit: str = "session"
) -> str:
    """`data:image/png;base64,…` (matplotlib) or `data:image/svg+xml;base64,…`."""
    png = coverage_png(matrix, window, unit)
    if png is not None:
        return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    svg = coverage_svg(matrix, window=window).encode()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


def coverage_markdown(
    matrix: pd.DataFrame, title: str, notes: list[str] | None = None, window: tuple | None = None
) -> str:
    """Markdown: title, the coverage picture (binned by week or month for long ranges, the run's
    `window` outlined), then a per-symbol table of session counts."""
    summary = coverage_summary(matrix)
    picture, unit = bin_matrix(matrix)
    first = str(matrix.columns[0]) if len(matrix.columns) else "-"
    last = str(matrix.columns[-1]) if len(matrix.columns) else "-"
    lines = [
        f"# {title}",
        "",
        f"{len(matrix.index)} symbols × {len(matrix.columns)} sessions ({first} … {last})",
        "",
    ]
    if unit != "session":
        lines += [f"_One column per {unit}; the table below counts sessions._", ""]
    if len(picture.columns) > MAX_SESSIONS or len(matrix.index) > MAX_SYMBOLS:
        lines += [
            f"_Picture limited to the last {MAX_SESSIONS} columns and first {MAX_SYMBOLS} "
            "symbols; the table below is complete._",
            "",
        ]
    if window is not None:
        lines += [f"This run's window: {window[0]} … {window[1]} (outlined).", ""]
    if len(matrix.columns) and len(matrix.index):
        lines += [f"![coverage]({coverage_image_uri(picture, window, unit)})", ""]
    lines += ["| symbol | " + " | ".join(STATES) + " |", "|---|" + "---:|" * len(STATES)]
    for row in summary:
        sym = str(row["symbol"]).replace("|", "\\|")
        lines.append(f"| {sym} | " + " | ".join(str(row[s]) for s in STATES) + " |")
    for note in notes or []:
        lines += ["", note]
    return "\n".join(lines) + "\n"
