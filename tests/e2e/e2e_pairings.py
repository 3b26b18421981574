"""The pairings of the end-to-end tests (a module of its own, so tests can import ``Pairing``).

Embedded SQLite, Redis Streams + PostgreSQL, NATS + PostgreSQL.

Each test gets its own namespace: a temporary SQLite file, a fresh PostgreSQL schema, a fresh bus
prefix; everything it created on the shared servers is removed afterwards. The bus runs with
8 partitions and a 2-second visibility timeout so that takeovers after a SIGKILL stay short.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from services import drop_bus_prefix

BUS_OPTIONS = "partitions=8&visibility_timeout=2&dedup_window=60"
PARTITIONS = 8


@dataclass
class Pairing:
    """Store and bus URLs of one pairing."""

    kind: str
    store_url: str
    bus_url: str
    workdir: Path


PAIRINGS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("redis+postgres", id="redis-postgres", marks=[pytest.mark.redis, pytest.mark.postgres]),
    pytest.param("nats+postgres", id="nats-postgres", marks=[pytest.mark.nats, pytest.mark.postgres]),
]


async def cleanup(pair: Pairing, prefix: str, schema: str | None) -> None:
    if schema is not None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            pair.store_url.split("?")[0], autocommit=True
        ) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await drop_bus_prefix(pair.bus_url, prefix, PARTITIONS)
