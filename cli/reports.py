"""The CLI's summaries of runs and backfills: tables, never a dict or a dataclass repr."""

from __future__ import annotations

import typer

from cli.tables import print_kv, print_table

_COUNTS = ("fetched", "hot", "cold", "quarantined")


def print_reports(reports: dict) -> None:
    for stage, rep in reports.items():
        if stage == "skipped":
            typer.echo(f"skipped: {rep}")
        elif stage == "ingestion":
            _ingestion(rep)
        elif stage == "processing":
            _processing(rep)
        elif stage == "realtime":
            print_kv("realtime session", rep or {})
        elif stage == "historical":
            print_backfill(rep)
        elif isinstance(rep, dict):
            print_kv(stage, rep)
        else:
            typer.echo(f"{stage}: {rep}")


def _ingestion(rep: dict) -> None:
    title = f"ingestion {rep['interval']} {rep['start']}..{rep['end']} (run {rep['run_id']})"
    rows = [
        [r["symbol"], *(int(r.get(k, 0)) for k in _COUNTS), r.get("source", "")]
        for r in rep["rows"]
    ]
    t = rep["totals"]
    rows.append(["total", *(int(t.get(k, 0)) for k in _COUNTS), ""])
    print_table(title, ["symbol", *_COUNTS, "source"], rows)
    typer.echo(f"  hot store: {rep['hot']}")
    typer.echo(f"  cold lake: {rep['cold']}")
    _stages(rep)


def _stages(rep: dict) -> None:
    """Seconds per stage and the slowest one (ingestion, replay, import and backfill reports)."""
    if rep.get("stages"):
        from marketpipe.stage_timer import format_stages

        typer.echo(f"  {format_stages(rep)}")


def _processing(rep: dict) -> None:
    title = f"processing {rep.get('interval', '')} {rep.get('start', '')}..{rep.get('end', '')}"
    totals = rep.get("totals") or {}
    print_table(title, list(totals) or ["rows"], [list(totals.values()) or [0]])
    failed = rep.get("failed") or {}
    if failed:  # symbols whose processing failed were quarantined; the others completed
        print_table(
            "processing failed (quarantined)",
            ["symbol", "why"],
            [[sym, why] for sym, why in failed.items()],
        )
    quality = rep.get("quality") or []
    if quality:
        cols = ["symbol", "sessions", "mean_score", "min_score", "missing", "outliers"]
        print_table(
            "quality per symbol",
            [c.replace("_", " ") for c in cols],
            [[q.get(c) for c in cols] for q in quality],
        )


def print_backfill(summary: dict) -> None:
    t = summary.get("totals") or {}
    typer.echo(
        f"done: {t.get('chunks_run', 0)} chunks run ({summary.get('chunks_skipped', 0)} skipped "
        f"as finished), {t.get('requests', 0)} requests, {t.get('hot', 0)} hot, "
        f"{t.get('cold', 0)} cold, {t.get('quarantined', 0)} quarantined"
    )
    _stages(summary)
    comp = summary.get("completeness") or []
    if comp:
        cols = ["symbol", "expected", "present", "missing", "quarantined"]
        print_table("completeness", cols, [[row.get(c) for c in cols] for row in comp])
