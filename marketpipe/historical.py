"""Former home of the backfill steps, incremental starts and completeness (names kept for callers
not yet moved): `marketpipe.backfill_run` (build_plan), `marketpipe.ingest_plan`
(incremental_start), `marketpipe.run_reports` (completeness)."""

from marketpipe.backfill_run import build_plan
from marketpipe.ingest_plan import OVERLAP_SESSIONS, incremental_start
from marketpipe.run_reports import completeness

__all__ = ["OVERLAP_SESSIONS", "build_plan", "completeness", "incremental_start"]
