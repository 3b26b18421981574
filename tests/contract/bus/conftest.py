"""Fixtures of the transport contract suite: every test runs against every backend.

``memory`` always runs (the durable SQLite mode, so crash and restart tests mean something);
``redis`` and ``nats`` need their servers (skipped locally when absent, failing under ``CI=true``).
Each test gets a fresh stream/subject/table prefix from :func:`services.unique_name`, and
partitions=4 with a 1-second visibility timeout so redelivery tests stay fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from goalkeeper.bus import open_bus
from goalkeeper.ports.bus import Transport
from services import private_nats, private_redis, require, unique_name

BUS_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("nats", id="nats", marks=pytest.mark.nats),
]

TEST_OPTIONS = "partitions=4&visibility_timeout=1&dedup_window=30"


def with_options(base: str, prefix: str, extra: str = "") -> str:
    """``base`` plus the suite's options, a unique prefix and ``extra`` (``k=v&...``)."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{TEST_OPTIONS}&prefix={prefix}" + (f"&{extra}" if extra else "")


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


@dataclass
class BusTarget:
    """Where a contract test publishes: ``url(extra)`` gives the URL with extra options."""

    kind: str
    base: str
    prefix: str

    def url(self, extra: str = "") -> str:
        """The bus URL with the suite's options and ``extra`` (``k=v&...``)."""
        return with_options(self.base, self.prefix, extra)


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


@dataclass
class Restartable:
    """A broker the test may restart: a private Redis/NATS server, or the SQLite file."""

    kind: str
    url: str
    server: Any = None

    async def restart(self, bus: Transport) -> Transport:
        """Restart the broker; return the transport to continue with.

        Redis and NATS: the server process is stopped and started again and the *same* client
        must reconnect. memory: the "broker" is the process itself, so the transport is closed
        and reopened on the same file.
        """
        if self.server is None:
            await bus.close()
            reopened = open_bus(self.url)
            await reopened.start()
            return reopened
        self.server.stop()
        self.server.start()
        return bus


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
