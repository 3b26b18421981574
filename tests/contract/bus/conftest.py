"""Fixtures of the transport contract suite: every test runs against every backend.

``memory`` always runs (the durable SQLite mode, so crash and restart tests mean something);
``redis`` and ``nats`` need their servers (skipped locally when absent, failing under ``CI=true``).
Each test gets a fresh stream/subject/table prefix from :func:`services.unique_name`, and
partitions=4 with a 1-second visibility timeout so redelivery tests stay fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bus_backends import BUS_KINDS, BusTarget, Restartable, with_options

from goalkeeper.bus import open_bus
from goalkeeper.ports.bus import Transport
from services import private_nats, private_redis, require, unique_name


async def _cleanup(url: str, prefix: str) -> None:
    """Remove what a test left on a shared server (its own prefix only)."""
    if url.startswith("redis"):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url.split("?")[0])
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif url.startswith("nats"):
        import nats

        nc = await nats.connect(url.split("?")[0])
        js = nc.jetstream()
        for part in range(4):
            with contextlib.suppress(Exception):
                await js.delete_stream(f"{prefix}_bus_{part}")
        await nc.close()


@pytest.fixture(params=BUS_KINDS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusTarget]:
    """A fresh namespace on one backend."""
    kind: str = request.param
    base = f"memory://{tmp_path}/bus.db" if kind == "memory" else require(kind)
    made = BusTarget(kind, base, unique_name("gkbus"))
    yield made
    await _cleanup(made.url(), made.prefix)


@pytest.fixture
async def bus(target: BusTarget) -> AsyncIterator[Transport]:
    """A started transport on ``target`` with the suite's options."""
    transport = open_bus(target.url())
    await transport.start()
    yield transport
    await transport.close()


@pytest.fixture(params=BUS_KINDS)
def restartable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Restartable]:
    """A broker private to this test (never one of the shared servers)."""
    kind: str = request.param
    prefix = unique_name("gkbus")
    if kind == "memory":
        yield Restartable(kind, with_options(f"memory://{tmp_path}/bus.db", prefix))
        return
    require(kind)
    starter = private_redis if kind == "redis" else private_nats
    with starter() as server:
        yield Restartable(kind, with_options(server.url, prefix, "reconnect_timeout=30"), server)
