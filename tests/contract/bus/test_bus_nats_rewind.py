"""NATS only: redeliveries come back in the order they came due, and ``rewind`` restores publish order.

The first test pins the broker behaviour behind issue 6 (per-goal order broken across a takeover on
NATS); the others check :meth:`NatsJetStreamBus.rewind`, which the worker relies on instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from goalkeeper.bus import open_bus
from goalkeeper.bus.nats import NatsJetStreamBus
from goalkeeper.ports.bus import Consumer, Delivery
from services import require, unique_name

pytestmark = pytest.mark.nats


@pytest.fixture
async def buses() -> AsyncIterator[Callable[[float], Awaitable[NatsJetStreamBus]]]:
    """Started transports on a fresh one-partition prefix, with the given visibility timeout."""
    prefix = unique_name("gkrewind")
    made: list[NatsJetStreamBus] = []

    async def make(visibility: float) -> NatsJetStreamBus:
        transport = open_bus(
            f"{require('nats')}?partitions=1&visibility_timeout={visibility}&prefix={prefix}"
        )
        assert isinstance(transport, NatsJetStreamBus)
        await transport.start()
        made.append(transport)
        return transport

    yield make
    if made:
        await made[0].js.delete_stream(made[0].stream(0))
    for transport in made:
        await transport.close()


def _events(n: int) -> list[dict[str, Any]]:
    return [{"goal_id": "g", "event_id": f"e{i}", "type": "message"} for i in range(n)]


async def _take(consumer: Consumer, n: int, within: float = 10.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < n and time.monotonic() < deadline:
        got.extend(await consumer.fetch(n - len(got), timeout=0.2))
    return got


async def _give_back_newest_due_first(bus: NatsJetStreamBus, n: int, delays: tuple[float, float]) -> None:
    """A consumer takes ``n`` events, gives the older half back with a longer delay than the newer
    half, and goes away (what a worker killed during a takeover drain leaves behind)."""
    consumer = await bus.consumer("grp", "a")
    got = await _take(consumer, n)
    assert len(got) == n
    await asyncio.sleep(0.6)  # let the open pull request expire: nobody takes the redeliveries early
    await consumer.nack(got[: n // 2], delay=delays[0])
    await consumer.nack(got[n // 2 :], delay=delays[1])
    await consumer.close(drain_timeout=0)


async def test_redeliveries_come_back_in_the_order_they_came_due(
    buses: Callable[[float], Awaitable[NatsJetStreamBus]],
) -> None:
    bus = await buses(1.0)
    await bus.publish_many(_events(10))
    await _give_back_newest_due_first(bus, 10, (0.9, 0.1))
    await asyncio.sleep(1.2)
    b = await bus.consumer("grp", "b")
    got = await _take(b, 10)
    assert [d.event_id for d in got] == [f"e{i}" for i in [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]]
    await b.close(drain_timeout=0)


async def test_rewind_hands_out_every_unacked_event_at_once_in_publish_order(
    buses: Callable[[float], Awaitable[NatsJetStreamBus]],
) -> None:
    bus = await buses(120.0)
    await bus.publish_many(_events(10))
    await _give_back_newest_due_first(bus, 10, (110.0, 100.0))  # not due again within this test
    await bus.rewind("grp", [0])
    c = await bus.consumer("grp", "c")
    got = await _take(c, 10)
    assert [d.event_id for d in got] == [f"e{i}" for i in range(10)]
    assert all(d.redelivered == 0 for d in got)
    await c.ack(got[:3])
    await c.close(drain_timeout=0)  # gives the rest back
    await bus.rewind("grp", [0])
    d = await bus.consumer("grp", "d")
    rest = await _take(d, 7)
    assert [x.event_id for x in rest] == [f"e{i}" for i in range(3, 10)]  # acked ones are gone
    await d.ack(rest)
    assert len(await d.fetch(10, timeout=0.3)) == 0
    await d.close(drain_timeout=0)


async def test_rewinding_a_group_that_never_consumed_is_harmless(
    buses: Callable[[float], Awaitable[NatsJetStreamBus]],
) -> None:
    bus = await buses(1.0)
    await bus.publish_many(_events(2))
    await bus.rewind("never", [0])
    consumer = await bus.consumer("never", "w")
    assert [d.event_id for d in await _take(consumer, 2)] == ["e0", "e1"]
    await consumer.close(drain_timeout=0)
