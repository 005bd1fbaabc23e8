"""Bulk import of bar files: find them, skip the finished ones, stream each through the contract.

`discover(targets, storage_options)` expands files, directories (recursively), globs and
`s3://bucket/prefix` targets into `FileRef`s (Parquet, CSV, CSV.gz; sorted). `pending(store,
refs)` drops the files the ledger (`importer_ledger`) already holds unchanged. `import_file(...)`
streams one file in bounded batches (`importer_read.BarFile`) through the same steps as every
ingestion (`ingest.check_batch` → `ingest.store_batch`: contract, quarantine, hot/cold routing),
then writes the file's quarantine and its ledger row. A file that cannot be read or mapped fails
alone: its report carries one line naming it, and the caller goes on with the other files.
Rows in = stored (hot + cold) + quarantined, per file and per symbol.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd
import pyarrow as pa

from marketpipe import importer_ledger
from marketpipe.errors import ConfigError, MarketpipeError
from marketpipe.importer_read import BATCH_ROWS, BarFile, Selection, is_bar_file
from marketpipe.ingest import add_counts, check_batch, store_batch
from marketpipe.providers.base import FetchResult
from marketpipe.stage_timer import StageTimer
from marketpipe.storage import Stores
from marketpipe.symbols import is_valid_symbol

QUARANTINE_FLUSH_ROWS = (
    100_000  # a file's quarantine is written at its end unless it grows past this
)


@dataclass(frozen=True)
class FileRef:
    """A file to import: `url` keys the ledger (absolute path or s3://bucket/key)."""

    url: str
    size: int
    fingerprint: str  # mtime in ns, or the object's ETag

    @property
    def remote(self) -> bool:
        return "://" in self.url


@dataclass
class FileReport:
    url: str
    status: str  # imported | skipped | failed
    rows: int = 0
    hot: int = 0
    cold: int = 0
    quarantined: int = 0
    error: str | None = None
    per_symbol: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "hot": self.hot,
            "cold": self.cold,
            "quarantined": self.quarantined,
        }


@dataclass
class Streamed:
    """What `stream_file` did: per-symbol counts, the held-back quarantine, first/last bar."""

    per_symbol: dict[str, dict[str, int]]
    quarantine: pd.DataFrame | None
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    timings: dict[str, float] = field(default_factory=dict)


class ImportListener:
    """Told about an import run in this process (the CLI's progress bar); override what you need."""

    def planned(self, todo: int, skipped: int) -> None:  # files to import / already imported
        pass

    def finished(self, report: FileReport) -> None:
        pass


_LISTENERS: list[ImportListener] = []


def add_listener(listener: ImportListener) -> None:
    _LISTENERS.append(listener)


def remove_listener(listener: ImportListener) -> None:
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


def notify_planned(todo: int, skipped: int) -> None:
    for listener in list(_LISTENERS):
        listener.planned(todo, skipped)


def notify(report: FileReport) -> None:
    for listener in list(_LISTENERS):
        listener.finished(report)


# ---------------------------------------------------------------- discovery
def discover(targets: Iterable[str], storage_options: dict | None = None) -> list[FileRef]:
    """Every bar file named by `targets`; a target that matches nothing is a ConfigError."""
    refs: dict[str, FileRef] = {}
    for target in targets:
        found = _s3_refs(target, storage_options) if target.startswith("s3://") else _local(target)
        if not found:
            raise ConfigError(f"no .parquet/.csv/.csv.gz files at {target}")
        refs.update({r.url: r for r in found})
    return [refs[k] for k in sorted(refs)]


def _local(target: str) -> list[FileRef]:
    p = Path(target).expanduser()
    if any(ch in target for ch in "*?["):
        paths = [Path(x) for x in glob.glob(str(p), recursive=True)]
    elif p.is_dir():
        paths = [x for x in p.rglob("*") if x.is_file()]
    elif p.is_file():
        return [_local_ref(p)]
    else:
        raise ConfigError(f"import path not found: {target}")
    return [_local_ref(x) for x in paths if x.is_file() and is_bar_file(x.name)]


def _local_ref(p: Path) -> FileRef:
    st = p.stat()
    return FileRef(url=str(p.resolve()), size=st.st_size, fingerprint=str(st.st_mtime_ns))


def s3_filesystem(storage_options: dict | None):
    import fsspec

    return fsspec.filesystem("s3", **(storage_options or {}))


def _s3_refs(target: str, storage_options: dict | None) -> list[FileRef]:
    fs = s3_filesystem(storage_options)
    path = target.removeprefix("s3://")
    try:
        if fs.isfile(path):
            infos = {path: fs.info(path)}
        else:
            infos = fs.find(path, detail=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot list {target}: {exc}") from None
    out = []
    for key, info in infos.items():
        if info.get("type", "file") == "file" and is_bar_file(key):
            tag = str(info.get("ETag") or info.get("etag") or info.get("LastModified", ""))
            out.append(FileRef(url=f"s3://{key}", size=int(info.get("size", 0)), fingerprint=tag))
    return out


def pending(stores: Stores, refs: list[FileRef]) -> tuple[list[FileRef], list[FileRef]]:
    """(files to import, files the ledger holds unchanged)."""
    done = importer_ledger.finished(stores.hot, [r.url for r in refs])
    todo = [r for r in refs if done.get(r.url) != (r.size, r.fingerprint)]
    skipped = [r for r in refs if done.get(r.url) == (r.size, r.fingerprint)]
    return todo, skipped


def group_small(refs: list[FileRef], min_bytes: int = 4 << 20) -> list[list[FileRef]]:
    """Consecutive small files grouped to about `min_bytes` each (one task per group)."""
    groups: list[list[FileRef]] = []
    size = 0
    for r in refs:
        if not groups or size >= min_bytes:
            groups.append([])
            size = 0
        groups[-1].append(r)
        size += r.size
    return groups


# ---------------------------------------------------------------- one file
def open_file(ref: FileRef, storage_options: dict | None = None) -> BarFile:
    if ref.remote:
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        fs = PyFileSystem(FSSpecHandler(s3_filesystem(storage_options)))
        return BarFile(ref.url.removeprefix("s3://"), filesystem=fs)
    return BarFile(ref.url)


def file_symbol(bar_file: BarFile, symbol: str | None) -> str | None:
    """The symbol of a file without a symbol column: `symbol`, else the file name's stem."""
    if "symbol" in bar_file.columns:
        return None
    if symbol:
        return symbol.upper()
    stem = PurePosixPath(bar_file.name).name.split(".")[0].upper()
    if not is_valid_symbol(stem):
        raise ConfigError(f"{bar_file.path} has no symbol column: pass --symbol")
    return stem


def stream_file(
    stores: Stores,
    bar_file: BarFile,
    *,
    selection: Selection,
    now: pd.Timestamp,
    hot_days: int,
    run_id: str | None,
    symbol: str | None = None,
    source: str = "import",
    batch_rows: int = BATCH_ROWS,
    watermark_source: str | None = None,
    timer: StageTimer | None = None,
) -> Streamed:
    """Every selected row of `bar_file` through contract → route → store, batch by batch.

    The quarantine is held back (`Streamed.quarantine`, written by the caller with the ledger
    row) unless it grows past `QUARANTINE_FLUSH_ROWS`.
    """
    timer = timer if timer is not None else StageTimer()
    per_symbol: dict[str, dict[str, int]] = {}
    held: list[pd.DataFrame] = []
    held_rows = 0
    first = last = None
    batches = bar_file.batches(
        selection, symbol=symbol, source=source, batch_rows=batch_rows, timer=timer
    )
    for fb in batches:
        checked = check_batch(FetchResult(bars=fb.bars, rejected=fb.rejected), now, run_id)
        stored = store_batch(
            stores,
            checked,
            now,
            hot_days,
            (),
            watermark_source=watermark_source,
            write_quarantine=False,
        )
        # check_batch/store_batch carry the timings of this batch only (they start empty)
        timer.merge(stored.timings)
        add_counts(per_symbol, stored.per_symbol)
        if len(fb.bars):
            lo, hi = fb.bars["ts"].min(), fb.bars["ts"].max()
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
        if len(checked.quarantine):
            held.append(checked.quarantine)
            held_rows += len(checked.quarantine)
        if held_rows >= QUARANTINE_FLUSH_ROWS:
            with timer.stage("bookkeeping"):
                stores.hot.write_quarantine(pd.concat(held, ignore_index=True))
            held, held_rows = [], 0
    quarantine = pd.concat(held, ignore_index=True) if held else None
    return Streamed(per_symbol, quarantine, first, last, timer.as_dict())


def import_file(
    stores: Stores,
    ref: FileRef,
    *,
    selection: Selection = Selection(),
    now: pd.Timestamp,
    hot_days: int,
    run_id: str | None = None,
    symbol: str | None = None,
    batch_rows: int = BATCH_ROWS,
    storage_options: dict | None = None,
    source: str = "import",
) -> FileReport:
    """Import one file and record it in the ledger; failures come back as a `failed` report."""
    timer = StageTimer()
    try:
        bar_file = open_file(ref, storage_options)
        streamed = stream_file(
            stores,
            bar_file,
            selection=selection,
            now=now,
            hot_days=hot_days,
            run_id=run_id,
            symbol=file_symbol(bar_file, symbol),
            source=source,
            batch_rows=batch_rows,
            timer=timer,
        )
        report = _report(ref.url, "imported", streamed.per_symbol, timer)
        with timer.stage("bookkeeping"):
            if streamed.quarantine is not None:
                stores.hot.write_quarantine(streamed.quarantine)
            importer_ledger.record(
                stores.hot, ref.url, ref.size, ref.fingerprint, report.counts(), run_id
            )
        report.timings = timer.as_dict()
        return report
    except (MarketpipeError, pa.ArrowException, OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if ref.url not in first and os.path.basename(ref.url) not in first:
            first = f"{ref.url}: {first}"
        return FileReport(url=ref.url, status="failed", error=first, timings=timer.as_dict())


def import_files(
    stores: Stores,
    refs: list[FileRef],
    on_done: Callable[[FileReport], None] | None = None,
    **options,
) -> list[FileReport]:
    """Import a group of files one after the other (a task's unit of work)."""
    reports = []
    for ref in refs:
        rep = import_file(stores, ref, **options)
        reports.append(rep)
        if on_done is not None:
            on_done(rep)
    return reports


def _report(url: str, status: str, per_symbol: dict, timer: StageTimer) -> FileReport:
    tot = {k: sum(c.get(k, 0) for c in per_symbol.values()) for k in ("fetched", "hot", "cold")}
    quarantined = sum(c.get("quarantined", 0) for c in per_symbol.values())
    return FileReport(
        url=url,
        status=status,
        rows=tot["fetched"],
        hot=tot["hot"],
        cold=tot["cold"],
        quarantined=quarantined,
        per_symbol=per_symbol,
        timings=timer.as_dict(),
    )


def summarise(reports: list[FileReport], skipped: list[FileRef]) -> dict:
    """A run's totals: files imported/skipped/failed, rows, and the failed files' lines."""
    imported = [r for r in reports if r.status == "imported"]
    failed = [r for r in reports if r.status == "failed"]
    totals = {
        k: sum(getattr(r, k) for r in imported) for k in ("rows", "hot", "cold", "quarantined")
    }
    timer = StageTimer()
    for r in reports:
        timer.merge(r.timings)
    return {
        "files": {"imported": len(imported), "skipped": len(skipped), "failed": len(failed)},
        "totals": totals,
        "failed": [r.error for r in failed],
        "imported": [r.url for r in imported],
        **timer.summary(),
    }


# ---------------------------------------------------------------- reports
def source_storage_options(settings) -> dict:
    """fsspec options for reading `s3://` import targets (the S3 endpoint of the settings)."""
    endpoint = getattr(settings, "s3_endpoint_url", None)
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def group_label(refs: list[FileRef]) -> str:
    first = PurePosixPath(refs[0].url).name
    return first if len(refs) == 1 else f"{first}+{len(refs) - 1}"


def summary_rows(reports: list[FileReport]) -> list[dict]:
    """One artifact row per file: status, rows, hot, cold, quarantined, error."""
    return [
        {"file": r.url, "status": r.status, **r.counts(), "error": r.error or ""} for r in reports
    ]


def stage_rows(report: dict) -> list[dict]:
    """The stage table of a run report: stage, seconds, share, slowest."""
    stages = report.get("stages") or {}
    total = sum(stages.values()) or 1.0
    slow = report.get("slowest_stage")
    return [
        {"stage": k, "seconds": v, "share": round(v / total, 3), "slowest": k == slow}
        for k, v in stages.items()
    ]


def replay_report(streamed: Streamed, symbols, interval: str, start, end) -> dict:
    """The ingestion report of a streamed replay (the shape `marketpipe run` prints)."""
    zero = {"fetched": 0, "hot": 0, "cold": 0, "quarantined": 0}
    names = list(symbols) if symbols else sorted(streamed.per_symbol)
    rows = [
        {"symbol": s, "source": "replay", **zero, **streamed.per_symbol.get(s, {})} for s in names
    ]
    totals = {k: sum(r[k] for r in rows) for k in zero}
    timer = StageTimer(streamed.timings)
    return {
        "interval": interval,
        "start": str(start or (streamed.first.date() if streamed.first is not None else "-")),
        "end": str(end or (streamed.last.date() if streamed.last is not None else "-")),
        "rows": rows,
        "totals": totals,
        **timer.summary(),
    }
