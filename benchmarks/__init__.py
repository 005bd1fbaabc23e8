"""Benchmarks: each prints our figure beside its baseline's, as rows/s and as a ratio, in one run."""
