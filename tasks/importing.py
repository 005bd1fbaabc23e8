"""Import tasks: one task per bar file or group of small files, never per row."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from marketpipe import importer
from marketpipe.importer_read import BarFile
from marketpipe.storage import Stores
from tasks.policy import STORE_RETRYING


@task(name="import", task_run_name="import-{label}", cache_policy=NO_CACHE)
def import_group(
    stores: Stores, refs: list[importer.FileRef], label: str, options: dict
) -> list[importer.FileReport]:
    # a bad file comes back as a `failed` report (one line naming it); the others still land
    return importer.import_files(stores, refs, on_done=importer.notify, **options)


# a lost store connection re-streams the file (bar writes are upserts; its quarantine rows are
# written only once the whole file is stored, so a retry never doubles them)
@task(name="replay", task_run_name="replay-{label}", cache_policy=NO_CACHE, **STORE_RETRYING)
def replay_file(stores: Stores, bar_file: BarFile, label: str, options: dict) -> importer.Streamed:
    streamed = importer.stream_file(stores, bar_file, **options)
    if streamed.quarantine is not None:
        stores.hot.write_quarantine(streamed.quarantine)
        streamed.quarantine = None
    return streamed
