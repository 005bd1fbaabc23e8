"""Alembic environment for the hot store: the caller passes an open connection.

`marketpipe.storage.hot_migrate.migrate()` sets `config.attributes["connection"]`; running
`alembic` from the command line is not supported (the URL comes from settings, not an .ini).
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run hot-store migrations through marketpipe.storage.hot_migrate.migrate()")

context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
