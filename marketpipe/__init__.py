"""marketpipe core library: providers, contracts, storage, calendar and settings.

This package never imports Prefect (see DESIGN.md "Layers"); `tasks/` and `flows/` wrap it.
The Python API (`import marketpipe as mp; mp.read(...)`, `mp.sql`, `mp.run`, `mp.backfill`,
`mp.import_`) lives in `marketpipe.api` and is loaded on first use, so `import marketpipe` stays
light and Prefect-free.
"""

import sys
import types

__version__ = "0.1.0"

_API = ("read", "sql", "run", "backfill", "import_", "resolve_settings")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from marketpipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'marketpipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


class _Package(types.ModuleType):
    """`marketpipe.backfill` is also a core module: importing it must not replace `mp.backfill`
    (the import system binds a loaded submodule on its package; the module stays importable
    through `sys.modules` and `from marketpipe.backfill import …`)."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
