"""Storage tiers: the hot SQL store (`hot`) and the cold Parquet lake (`lake`)."""
