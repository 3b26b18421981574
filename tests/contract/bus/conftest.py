"""Fixtures of the transport contract suite: every test runs against every backend.

``memory`` always runs (the durable SQLite mode, so crash and restart tests mean something);
``redis`` and ``nats`` need their servers (skipped locally when absent, failing under ``CI=true``).
Each test gets a fresh stream/subject/table prefix from :func:`services.unique_name`, and
partitions=4 with a 1-second visibility timeout so redelivery tests stay fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from bus_backends import BUS_KINDS, BusTarget, Restartable, with_options

from goalkeeper.bus import open_bus
from goalkeeper.ports.bus import Transport
from services import drop_bus_prefix, private_nats, private_redis, require, unique_name


@pytest.fixture(params=BUS_KINDS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BusTarget]:
    """A fresh namespace on one backend."""
    kind: str = request.param
    base = f"memory://{tmp_path}/bus.db" if kind == "memory" else require(kind)
    made = BusTarget(kind, base, unique_name("gkbus"))
    yield made
    await drop_bus_prefix(made.url(), made.prefix, 4)


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
