"""Summaries as formatted tables (rich), never a Python repr."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def console(stderr: bool = False):
    from rich.console import Console

    width = max(shutil.get_terminal_size((120, 24)).columns, 100)
    return Console(file=sys.stderr if stderr else sys.stdout, width=width, highlight=False)


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if value is None:
        return "—"
    if isinstance(value, list | tuple | set):
        scalars = all(isinstance(v, str | int | float) for v in value)
        return ", ".join(fmt(v) for v in value) if scalars and len(value) <= 6 else f"{len(value)}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    stderr: bool = False,
) -> None:
    """One table; numbers right-aligned."""
    from rich import box
    from rich.table import Table

    rows = [list(r) for r in rows]
    table = Table(box=box.SIMPLE_HEAVY, show_edge=False)
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(
            isinstance(r[i], int | float) for r in rows if r[i] is not None
        )
        table.add_column(col, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    out = console(stderr)
    if title:
        out.print(title, markup=False)
    out.print(table)


def as_mapping(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return dict(vars(obj))


def print_kv(title: str | None, obj: Any, *, stderr: bool = False) -> None:
    """A dataclass, dict or model as a two-column table (what, value)."""
    summary = getattr(obj, "summary", None)
    mapping = summary() if callable(summary) else as_mapping(obj)
    print_table(
        title, ["", "value"], [(k.replace("_", " "), v) for k, v in mapping.items()], stderr=stderr
    )
