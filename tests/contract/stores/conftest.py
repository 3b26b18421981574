"""Backend parametrization for the StateStore contract suite.

Every test that uses the ``store_url`` / ``store`` / ``peer`` fixtures runs once per backend in
:data:`STORE_URLS`. Memory and SQLite always run; PostgreSQL and Redis need their server (skipped
locally when it is down, a failure under ``CI=true``). Each test gets its own namespace: a fresh
SQLite file, a fresh PostgreSQL schema (dropped afterwards) or a fresh Redis key prefix (deleted
afterwards); shared servers are never flushed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest
from store_backends import STORE_URLS, with_options

from goalkeeper.stores import open_store
from goalkeeper.stores._base import BaseStore
from services import require, unique_name


def _drop_pg_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True, connect_timeout=5) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _drop_redis_prefix(base: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(base)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture(params=STORE_URLS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend's id: memory, sqlite, postgres or redis."""
    scheme = urlsplit(str(request.param)).scheme
    return {"postgresql": "postgres", "rediss": "redis"}.get(scheme, scheme)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, backend: str, tmp_path) -> Iterator[str]:
    """A URL naming a fresh, empty namespace of the backend under test."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    elif backend == "postgres":
        base = require("postgres")
        schema = unique_name("gk")
        yield with_options(base, schema=schema)
        _drop_pg_schema(base, schema)
    else:
        base = require("redis")
        prefix = unique_name("gk") + ":"
        yield with_options(base, prefix=prefix)
        _drop_redis_prefix(base, prefix)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[BaseStore]:
    """An opened store on the test's namespace."""
    s = open_store(store_url)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def peer(store: BaseStore, store_url: str, backend: str) -> AsyncIterator[BaseStore]:
    """A second writer on the same namespace: its own connection (the same object for memory://)."""
    if backend == "memory":
        yield store
        return
    s = open_store(store_url)
    await s.open()
    yield s
    await s.close()
