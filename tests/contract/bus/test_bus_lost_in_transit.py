"""Redis and NATS: a fetch whose reply is lost in transit does not let newer events overtake it.

The broker executes the fetch (Redis ``XREADGROUP >`` puts the entries in this consumer's pending
list; NATS delivers the messages to the pull request and counts them as pending) but the reply never
reaches the client: a :class:`CuttingProxy` between the consumer and the server drops it and cuts the
connection, and the client reconnects. Events published afterwards must not be handed out before the
lost ones: those come back first (Redis at once, from the consumer's own pending list; NATS when the
server redelivers them, newer messages of the partition held back until then), marked redelivered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from cutting_proxy import CuttingProxy, proxied_buses
from goalkeeper.ports.bus import Consumer, Delivery, Transport
from services import unique_name

VISIBILITY = 2.0


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
async def setup(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[str, CuttingProxy, Transport, Transport]]:
    """(proxy, bus straight to the server, bus through the proxy) on a fresh prefix."""
    kind: str = request.param
    async with proxied_buses(kind, "gkcut", VISIBILITY) as (proxy, direct, via):
        yield kind, proxy, direct, via


async def _take(consumer: Consumer, n: int, within: float) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < n and time.monotonic() < deadline:
        batch = list(await consumer.fetch(n - len(got), timeout=0.2))
        await consumer.ack(batch)
        got.extend(batch)
    return got


async def test_a_fetch_lost_in_transit_comes_back_before_newer_events(
    setup: tuple[str, CuttingProxy, Transport, Transport],
) -> None:
    kind, proxy, direct, via = setup
    tag = unique_name("ev")
    ids = [f"{tag}-{i}" for i in range(10)]
    events = [{"goal_id": "g", "event_id": i, "type": "message"} for i in ids]
    consumer = await via.consumer("grp", "a")

    await direct.publish_many(events[:5])
    first = await _take(consumer, 5, 10.0)
    assert [d.event_id for d in first] == ids[:5]
    await asyncio.sleep(0.7)  # NATS: let the last pull request expire, so the next fetch pulls anew

    # The reply carrying events 5-7 is lost: the broker has handed them to this consumer.
    proxy.cut_on(ids[5].encode())
    await direct.publish_many(events[5:8])
    during: list[Delivery] = []
    deadline = time.monotonic() + 10.0
    while not proxy.cut_done.is_set() and time.monotonic() < deadline:
        batch = list(await consumer.fetch(10, timeout=0.2))
        await consumer.ack(batch)
        during.extend(batch)
    assert proxy.cuts == 1
    during.extend(await _take(consumer, 10, 0.5))  # the client reconnects; Redis recovers at once
    if kind == "redis":
        assert [d.event_id for d in during] == ids[5:8]

    # Newer events published after the reconnect must not overtake the lost ones.
    await direct.publish_many(events[8:])
    rest = await _take(consumer, 10 - 5 - len(during), 3 * VISIBILITY + 5.0)
    after = during + rest
    assert [d.event_id for d in after] == ids[5:]
    assert all(d.redelivered >= 1 for d in after[:3])  # the lost ones come back marked redelivered
    assert all(d.redelivered == 0 for d in after[3:])
    assert len(await consumer.fetch(10, timeout=0.3)) == 0  # nothing twice
    assert consumer.in_flight == 0
