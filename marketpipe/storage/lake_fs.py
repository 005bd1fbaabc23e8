"""Thin fsspec wrapper for the lake: paths under one root, Parquet I/O, error mapping.

Connection-level failures (endpoint down, refused, timed out) become `ServiceUnavailable` with a
one-line message that names the lake but never credentials.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import fsspec
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from marketpipe.errors import MarketpipeError, ServiceUnavailable
from marketpipe.redact import mask_url
from marketpipe.settings import bound_s3fs_retries
from marketpipe.storage.lake_paths import (
    BARS_SCHEMA,
    DATASET_DIR,
    DATASET_SCHEMA,
    PARTITION_COLUMNS,
    PARTITION_SCHEMA,
    TMP_DIR,
)

_HIVE = pads.partitioning(PARTITION_SCHEMA, flavor="hive")  # segment_encoding="uri"
_CONNECTION_ERROR_NAMES = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ClientConnectionError",
}
# Dictionary-encode only low-cardinality columns: trying it on near-unique prices and times
# costs ~2x write time and makes files larger. Sorted `ts` delta-encodes to almost nothing.
PARQUET_WRITE_OPTIONS = {
    "compression": "snappy",
    "write_statistics": True,
    "row_group_size": 131_072,  # per-row-group ts min/max lets a date-range read skip groups
    "use_dictionary": ["source", "volume", "trades"],
    "column_encoding": {"ts": "DELTA_BINARY_PACKED"},
}


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionError | TimeoutError):
            return True
        if any(k.__name__ in _CONNECTION_ERROR_NAMES for k in type(cur).__mro__):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


class LakeFS:
    """All lake I/O goes through here; paths given to methods are relative to the lake root."""

    def __init__(self, url: str, storage_options: dict | None = None):
        self.url = url.rstrip("/")
        opts = dict(storage_options or {})
        endpoint = (opts.get("client_kwargs") or {}).get("endpoint_url") or opts.get("endpoint_url")
        cfg = opts.get("config_kwargs") or {}
        bounds = [
            f"{name} timeout {cfg[key]:g} s"
            for name, key in (("connect", "connect_timeout"), ("read", "read_timeout"))
            if isinstance(cfg.get(key), int | float)
        ]
        where = [f"endpoint {mask_url(endpoint)}"] if endpoint else []
        self.display = mask_url(self.url) + (
            f" ({', '.join(where + bounds)})" if where or bounds else ""
        )
        with self.guard("opening the lake"):
            self.fs, root = fsspec.core.url_to_fs(self.url, **opts)
        bound_s3fs_retries(self.fs)  # one try per S3 call; the store task retries, on a budget
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        # Native pyarrow I/O for local folders (fast); fsspec-wrapped otherwise.
        self.arrow_fs = (
            pafs.LocalFileSystem()
            if self.is_local
            else pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))
        )

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Map connection failures raised inside the block to ServiceUnavailable."""
        try:
            yield
        except (MarketpipeError, FileNotFoundError):
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise ServiceUnavailable(
                    f"cold lake {self.display} unreachable while {action}: {type(exc).__name__}"
                ) from exc
            raise

    def abs(self, rel: str) -> str:
        return f"{self.root}/{rel.strip('/')}" if rel else self.root

    def new_tmp_dir(self) -> str:
        return f"{TMP_DIR}/{uuid.uuid4().hex}"

    # ------------------------------------------------------------------ listing
    def list_dir(self, rel: str) -> list[tuple[str, str, int]]:
        """Children of `rel` as (name, type 'file'|'directory', size); [] when it does not exist."""
        with self.guard(f"listing {rel or '/'}"):
            try:
                entries = self.fs.ls(self.abs(rel), detail=True, refresh=True)
            except FileNotFoundError:
                return []
        out = []
        for e in entries:
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            out.append((name, e.get("type", "file"), int(e.get("size") or 0)))
        return sorted(out)

    def exists(self, rel: str) -> bool:
        with self.guard(f"checking {rel}"):
            return self.fs.exists(self.abs(rel))

    # ------------------------------------------------------------------ parquet I/O
    def write_parquet(self, table: pa.Table, rel: str) -> int:
        """Write one Parquet file at `rel` (overwrites). Returns its size in bytes.

        Not atomic on a local folder (callers stage and `move`). On object stores the file is
        encoded in memory (≤ ~128 MB by the lake's file bound) and sent as one PUT (multipart
        above 100 MB), which readers see only once complete.
        """
        path = self.abs(rel)
        table = table.drop_columns([c for c in PARTITION_COLUMNS if c in table.column_names])
        with self.guard(f"writing {rel}"):
            if self.is_local:
                self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                pq.write_table(table, path, **PARQUET_WRITE_OPTIONS)
                return os.path.getsize(path)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **PARQUET_WRITE_OPTIONS)
            data = sink.getvalue().to_pybytes()
            self.fs.pipe_file(path, data)
            return len(data)

    def dataset(self, rels: list[str]) -> pads.Dataset:
        """A pyarrow dataset over exactly these files (no discovery, so no other partition is
        read). `interval`, `symbol` and `year` come from the Hive path (percent-decoded); the
        files may sit under `bars/` or under a copy of it (`_superseded/{stamp}/bars/`)."""
        bases = {r.split(f"{DATASET_DIR}/interval=", 1)[0] for r in rels}
        if len(bases) != 1:
            raise ValueError("files from more than one dataset root")
        with self.guard("opening files"):
            return pads.dataset(
                [self.abs(r) for r in rels],
                schema=DATASET_SCHEMA,
                format="parquet",
                filesystem=self.arrow_fs,
                partitioning=_HIVE,
                partition_base_dir=self.abs(bases.pop() + DATASET_DIR),
            )

    def read_parquet(self, rels: list[str], filter=None) -> pa.Table:  # noqa: A002
        """Canonical-schema table (BARS_SCHEMA columns) of these files, optionally filtered."""
        with self.guard("reading files"):
            if not rels:
                return BARS_SCHEMA.empty_table()
            table = self.dataset(rels).to_table(filter=filter, columns=BARS_SCHEMA.names)
            return table.cast(BARS_SCHEMA)

    # ------------------------------------------------------------------ moves, copies, deletes
    def move(self, src: str, dst: str) -> None:
        """Put `src` at `dst`, replacing it. Local: atomic rename. S3: server-side copy (atomic
        per object) then delete of `src`."""
        with self.guard(f"moving into {dst}"):
            if self.is_local:
                self.fs.makedirs(self.abs(dst).rsplit("/", 1)[0], exist_ok=True)
                self.fs.mv(self.abs(src), self.abs(dst))
            else:
                self.fs.copy(self.abs(src), self.abs(dst))
                self.fs.rm(self.abs(src))

    def copy(self, src: str, dst: str) -> None:
        with self.guard(f"copying to {dst}"):
            if self.is_local:
                self.fs.makedirs(self.abs(dst).rsplit("/", 1)[0], exist_ok=True)
            self.fs.copy(self.abs(src), self.abs(dst))

    def remove(self, rels: list[str]) -> None:
        if not rels:
            return
        with self.guard("removing files"):
            self.fs.rm([self.abs(r) for r in rels])

    def remove_tree(self, rel: str) -> None:
        with self.guard(f"removing {rel}"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(self.abs(rel), recursive=True)
