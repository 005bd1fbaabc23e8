"""Names kept for flows not yet moved (the artifacts helpers now live in the layers they belong to):
rendering in `marketpipe.report_render`, coverage cells in `marketpipe.coverage`, publishing and
progress in `flows._publish`."""

from flows._publish import (
    RunProgress,
    publish_coverage_report,
    publish_quality_table,
)
from marketpipe.coverage import STATES, coverage_matrix
from marketpipe.report_render import (
    COLORS,
    MAX_SESSIONS,
    MAX_SYMBOLS,
    coverage_image_uri,
    coverage_markdown,
    coverage_png,
    coverage_summary,
    coverage_svg,
    quality_table,
)

__all__ = [
    "COLORS",
    "MAX_SESSIONS",
    "MAX_SYMBOLS",
    "STATES",
    "RunProgress",
    "coverage_image_uri",
    "coverage_markdown",
    "coverage_matrix",
    "coverage_png",
    "coverage_summary",
    "coverage_svg",
    "publish_coverage_report",
    "publish_quality_table",
    "quality_table",
]
