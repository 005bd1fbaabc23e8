"""Hot store block: prefect-sqlalchemy's `SqlAlchemyConnector` built from a SQLAlchemy URL.

The URL is split into components so the password lands in `ConnectionComponents.password`
(a SecretStr, encrypted by the Prefect server) and never in a plain string field.
"""

from __future__ import annotations

from pydantic import SecretStr


def hot_store_connector(url: str):
    """A `SqlAlchemyConnector` for `url` (not saved). The password goes into a SecretStr."""
    from prefect_sqlalchemy import ConnectionComponents, SqlAlchemyConnector
    from sqlalchemy.engine import make_url

    u = make_url(url)
    query = {k: str(v) for k, v in u.query.items()}
    password = u.password
    if password is None and "password" in query:  # `…/db?password=…`: keep it secret too
        password = query.pop("password")
    components = ConnectionComponents(
        driver=u.drivername,
        database=u.database,
        username=u.username,
        password=SecretStr(password) if password is not None else None,
        host=u.host,
        port=u.port,
        query=query or None,
    )
    return SqlAlchemyConnector(connection_info=components)


def connector_url(block) -> str:
    """The SQLAlchemy URL of a loaded connector block (with the real password: never log it)."""
    info = block.connection_info
    if hasattr(info, "create_url"):
        return info.create_url().render_as_string(hide_password=False)
    return str(info)
