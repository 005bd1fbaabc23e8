"""Column-name checks for input files (CSV / Parquet), shared by every reader of user files.

pandas renames a repeated CSV header to `close.1` and then silently uses the first one; Arrow
keeps both and fails later with a raw error; two names that differ only by case (`close,Close`)
collide once a reader matches names case-insensitively. `check_file_columns(path, what)` reads
only the header (CSV first line, Parquet schema) and raises `ContractError` (exit 2) with one line
naming the file and the columns, before any row is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from marketpipe.errors import ContractError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")


def normalise_name(name: object) -> str:
    """How readers match a column name: stripped, case-folded, spaces as `_`."""
    return str(name).strip().casefold().replace(" ", "_")


def column_problem(names: Iterable[object]) -> str | None:
    """A one-line description of the first duplicate or colliding pair of names, else None."""
    seen: dict[str, str] = {}
    exact: set[str] = set()
    for raw in names:
        name = str(raw)
        if name in exact:
            return f"column {name!r} appears more than once"
        exact.add(name)
        key = normalise_name(name)
        if key in seen:
            other = seen[key]
            how = "differ only by case" if other.casefold() == name.casefold() else "collide"
            return f"columns {other!r} and {name!r} {how} (names are matched case-insensitively)"
        seen[key] = name
    return None


def check_column_names(names: Iterable[object], what: str) -> None:
    """Raise ContractError('{what}: column 'close' appears more than once') on a bad header."""
    problem = column_problem(names)
    if problem:
        raise ContractError(f"{what}: {problem}; rename or drop one")


def file_column_names(path: str | Path) -> list[str] | None:
    """The header of a CSV (first line, compression by suffix) or the Parquet schema's names;
    None when the file cannot be read as either (the reader reports that its own way)."""
    p = Path(path)
    name = p.name.lower()
    try:
        if name.endswith(PARQUET_SUFFIXES):
            import pyarrow.parquet as pq

            return list(pq.read_schema(p).names)
        if name.endswith(CSV_SUFFIXES):
            import pandas as pd

            head = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False)
            return [str(v) for v in head.iloc[0].tolist()] if len(head) else []
    except Exception:  # unreadable: not this check's business
        return None
    return None


def check_file_columns(path: str | Path, what: str | None = None) -> None:
    """Check a file's column names before reading it (see the module docstring)."""
    names = file_column_names(path)
    if names:
        check_column_names(names, what or f"file {Path(path).name}")
