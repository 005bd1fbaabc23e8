"""The import ledger (`import_files` in the hot store): files `marketpipe import` has fully landed.

A file is finished when its row's path, size and fingerprint (mtime in ns, or the S3 ETag) match
the file as listed now; a changed file is imported again (every write is an upsert on the key).
The row is written only after every batch of the file is stored and its quarantine written.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from marketpipe.storage.hot import SqlHotStore
from marketpipe.storage.hot_frames import utc_now
from marketpipe.storage.hot_tables import UtcDateTime

_META = sa.MetaData()
import_files = sa.Table(
    "import_files",
    _META,
    sa.Column("path", sa.Text, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("hot", sa.BigInteger, nullable=False),
    sa.Column("cold", sa.BigInteger, nullable=False),
    sa.Column("quarantined", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("imported_at", UtcDateTime, nullable=False),
)


def finished(store: SqlHotStore, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
    """{path: (size, fingerprint)} of the given paths that the ledger holds."""
    wanted = list(paths)
    out: dict[str, tuple[int, str]] = {}
    c = import_files.c
    with store._tx() as conn:
        for i in range(0, len(wanted), 500):
            stmt = sa.select(c.path, c.size, c.fingerprint).where(c.path.in_(wanted[i : i + 500]))
            out.update({p: (int(s), str(f)) for p, s, f in conn.execute(stmt)})
    return out


def record(
    store: SqlHotStore, path: str, size: int, fingerprint: str, counts: dict, run_id: str | None
) -> None:
    """Mark `path` finished with its row counts (replacing an older entry)."""
    values = {
        "path": path,
        "size": int(size),
        "fingerprint": str(fingerprint),
        **{k: int(counts.get(k, 0)) for k in ("rows", "hot", "cold", "quarantined")},
        "run_id": None if run_id is None else str(run_id),
        "imported_at": utc_now(),
    }
    ins = store._insert(import_files).values(**values)
    stmt = ins.on_conflict_do_update(
        index_elements=["path"], set_={k: ins.excluded[k] for k in values if k != "path"}
    )
    with store._tx() as conn:
        conn.execute(stmt)


def entries(store: SqlHotStore) -> list[dict]:
    """Every ledger row (for `marketpipe import --list` and tests)."""
    with store._tx() as conn:
        rows = conn.execute(sa.select(import_files).order_by(import_files.c.path)).mappings()
        return [dict(r) for r in rows]
