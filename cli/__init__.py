"""The `marketpipe` console script (outermost layer: may import flows)."""
