"""Fixtures for storage tests: a hot store on each engine (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import pytest

from marketpipe.storage.hot import SqlHotStore


@pytest.fixture(params=["sqlite", "postgresql"])
def hot_url(request) -> str:
    """A fresh hot-store URL: an SQLite file, or a new real PostgreSQL database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def hot_store(hot_url):
    store = SqlHotStore(hot_url)
    try:
        yield store
    finally:
        store.dispose()
