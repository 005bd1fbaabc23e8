"""Prefect flows: compose tasks, return small reports (never frames)."""

from blocks.loader import deployment_block_defaults
from marketpipe.settings import add_defaults_source

# deployment runs take stores/credentials from the blocks `make deploy` saved (env overrides)
add_defaults_source(deployment_block_defaults)
