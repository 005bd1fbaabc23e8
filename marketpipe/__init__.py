"""marketpipe core library: providers, contracts, storage, calendar and settings.

This package never imports Prefect (see DESIGN.md "Layers"); `tasks/` and `flows/` wrap it.
"""

__version__ = "0.1.0"
