"""Redis and NATS: the worker applies a goal's events in order across a fetch lost in transit.

The same cut as ``tests/contract/bus/test_bus_lost_in_transit.py``, with the real worker consuming:
a :class:`CuttingProxy` between the worker's bus and the server drops the reply carrying events
4-6 after the broker handed them out, the client reconnects, and events 7-9 are published
afterwards. The worker must apply all ten, in publish order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from runtime_support import goal_events

from cutting_proxy import CuttingProxy, proxied_buses
from goalkeeper.ports.bus import Transport
from goalkeeper.ports.store import StateStore
from goalkeeper.stores import open_store
from goalkeeper.worker import GoalFeedbackWorker, WorkerConfig
from services import unique_name

VISIBILITY = 2.0


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[CuttingProxy, Transport, Transport]]:
    """(proxy, bus straight to the server, bus through the proxy) on a fresh prefix."""
    kind: str = request.param
    async with proxied_buses(kind, "gkcutw", VISIBILITY) as (proxy, direct, via):
        yield proxy, direct, via


async def _applied(store: StateStore, goal: str, n: int, within: float) -> list[str]:
    deadline = time.monotonic() + within
    applied: list[str] = []
    while len(applied) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        applied = [p.point["event_id"] for p in await store.metrics_history(goal, limit=100)]
    return applied


async def test_the_worker_applies_a_goals_events_in_order_across_a_fetch_lost_in_transit(
    buses: tuple[CuttingProxy, Transport, Transport],
) -> None:
    proxy, direct, via = buses
    goal = unique_name("g")
    events = goal_events(goal, 9)  # 10 events of one goal
    ids = [e["event_id"] for e in events]
    config = WorkerConfig(batch_size=4, fetch_timeout=0.05, lease_ttl=1.0)
    async with open_store("memory://") as store, GoalFeedbackWorker(store, via, config=config):
        await direct.publish_many(events[:4])
        assert await _applied(store, goal, 4, 10.0) == ids[:4]
        await asyncio.sleep(0.7)  # NATS: let the last pull request expire, so the next one gets 4-6
        proxy.cut_on(ids[4].encode())
        await direct.publish_many(events[4:7])
        await asyncio.wait_for(proxy.cut_done.wait(), 10.0)
        await asyncio.sleep(0.5)  # the client reconnects
        await direct.publish_many(events[7:])
        applied = await _applied(store, goal, len(events), 3 * VISIBILITY + 10.0)
    assert proxy.cuts == 1
    assert applied == ids
