"""Processing core (pure pandas/numpy, no Prefect): clean, resample, adjust, features, quality."""

from marketpipe.processing.adjust import adjust_bars, adjustment_factors, bar_factors
from marketpipe.processing.clean import CleanResult, clean_bars, dedupe_bars
from marketpipe.processing.contract import Features, features_schema, validate_features
from marketpipe.processing.features import compute_features, feature_columns
from marketpipe.processing.quality import calendar_expected, count_quarantined, quality_scores
from marketpipe.processing.resample import resample_bars

__all__ = [
    "CleanResult",
    "Features",
    "adjust_bars",
    "adjustment_factors",
    "bar_factors",
    "calendar_expected",
    "clean_bars",
    "compute_features",
    "count_quarantined",
    "dedupe_bars",
    "feature_columns",
    "features_schema",
    "quality_scores",
    "resample_bars",
    "validate_features",
]
