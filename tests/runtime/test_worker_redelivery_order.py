"""Per-goal order when the bus gives deliveries back out of publish order (issue 6's NATS bug).

No bus promises that nacked or timed-out deliveries come back in publish order: NATS JetStream
redelivers them in the order they *came due*. Two deterministic reproductions, without SIGKILL:

* a worker's own give-backs come back newest first (a wrapper bus scrambles them): the worker must
  hold newer events of the partition back until every older given-back one is applied;
* a "dead" holder leaves deliveries behind that come due newest first, and a worker takes its
  partition over (on every bus; NATS used to apply the newer half first).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from runtime_support import goal_events

from goalkeeper.bus import open_bus
from goalkeeper.errors import StoreError
from goalkeeper.ports.bus import Batch, Consumer, Delivery, EventLike, Transport, as_deliveries
from goalkeeper.ports.store import Commit, CommitResult
from goalkeeper.stores import open_store
from goalkeeper.worker import GoalFeedbackWorker, WorkerConfig
from goalkeeper.worker.leases import open_leases
from services import drop_bus_prefix, require, unique_name

OPTIONS = "partitions=1&visibility_timeout=1"
GROUP = "takeover-order"

BUSES = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("nats", id="nats", marks=pytest.mark.nats),
]


@pytest.fixture(params=BUSES)
async def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    kind: str = request.param
    prefix = unique_name("gkorder")
    if kind == "memory":
        yield f"memory://{tmp_path / 'bus.db'}?{OPTIONS}&prefix={prefix}"
        return
    url = f"{require(kind)}?{OPTIONS}&prefix={prefix}"
    try:
        yield url
    finally:
        await drop_bus_prefix(url, prefix, 1)


async def _die_holding(bus_url: str, lease_url: str, count: int) -> None:
    """Hold partition 0's lease, take ``count`` deliveries and give them back newest-due-first,
    then stop renewing; return once its membership and lease have expired."""
    leases = open_leases(lease_url)
    await leases.open()
    try:
        expires = time.monotonic() + 1.0
        await leases.heartbeat(GROUP, "a-dead~1", 1.0)  # sorts first: partition 0 is its share
        assert [g.partition for g in await leases.acquire(GROUP, [0], "a-dead~1", 1.0)] == [0]
        async with open_bus(bus_url) as bus:
            consumer = await bus.consumer(GROUP, "a-dead")
            got: list[Delivery] = []
            for _ in range(100):
                got.extend(await consumer.fetch(count, timeout=0.5))
                if len(got) >= count:
                    break
            assert len(got) == count
            await asyncio.sleep(0.6)  # let the fetch's open pull request (NATS) run out
            half = count // 2
            await consumer.nack(got[:half], delay=0.9)  # the older half comes due last
            await consumer.nack(got[half:], delay=0.1)
            await consumer.close(drain_timeout=0)
    finally:
        await leases.close()
    await asyncio.sleep(max(0.0, expires - time.monotonic()) + 0.1)


async def test_a_takeover_applies_the_dead_holders_events_in_publish_order(
    bus_url: str, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    events = goal_events("g", 11)  # 12 events of one goal
    async with open_bus(bus_url) as bus:
        await bus.publish_many(events)
    await _die_holding(bus_url, store_url, len(events))
    # Batches smaller than the backlog (as in production): a batch is sorted by position before it
    # is applied, so only an order broken *across* batches shows.
    config = WorkerConfig(name="b-live", group=GROUP, batch_size=4, fetch_timeout=0.05, lease_ttl=1.0)
    async with open_store(store_url) as store, GoalFeedbackWorker(store, bus_url, config=config):
        applied: list[str] = []
        deadline = time.monotonic() + 30
        while len(applied) < len(events) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            applied = [p.point["event_id"] for p in await store.metrics_history("g", limit=100)]
    assert applied == [e["event_id"] for e in events]


class _Scrambling:
    """A consumer that gives nacked deliveries back newest first, ahead of new events, one per fetch."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        self.group, self.name, self.partitions = inner.group, inner.name, inner.partitions
        self.back: deque[Delivery] = deque()
        self.nacked = 0

    @property
    def in_flight(self) -> int:
        return self.inner.in_flight

    async def fetch(self, max_events: int = 100, *, timeout: float = 1.0) -> Batch:
        if self.back:
            d = self.back.popleft()
            return Batch((replace(d, redelivered=d.redelivered + 1),))
        return await self.inner.fetch(max_events, timeout=timeout)

    async def ack(self, deliveries: Delivery | Iterable[Delivery]) -> None:
        await self.inner.ack(deliveries)

    async def nack(self, deliveries: Delivery | Iterable[Delivery], *, delay: float = 0.0) -> None:
        items = as_deliveries(deliveries)
        self.nacked += len(items)
        self.back.extend(reversed(items))  # kept in flight at the inner consumer: never redelivered

    async def in_progress(self, deliveries: Delivery | Iterable[Delivery]) -> None:
        await self.inner.in_progress(deliveries)

    async def close(self, *, drain_timeout: float = 5.0) -> None:
        self.back.clear()
        await self.inner.close(drain_timeout=drain_timeout)


class _ScramblingBus:
    """The memory bus, but its consumers give nacked deliveries back newest first."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.url, self.partitions = inner.url, inner.partitions
        self.consumers: list[_Scrambling] = []

    async def start(self) -> None:
        await self.inner.start()

    async def publish(self, event: EventLike) -> bool:
        return await self.inner.publish(event)

    async def publish_many(self, events: Iterable[EventLike]) -> int:
        return await self.inner.publish_many(events)

    async def consumer(self, group: str, name: str, *, partitions: Iterable[int] | None = None) -> Consumer:
        made = _Scrambling(await self.inner.consumer(group, name, partitions=partitions))
        self.consumers.append(made)
        return made

    async def close(self) -> None:
        await self.inner.close()


async def test_given_back_events_returning_newest_first_are_applied_in_publish_order() -> None:
    events = goal_events("g", 7)  # 8 events of one goal
    fail = [True]
    async with open_store("memory://") as store, open_bus("memory://?partitions=1") as inner:
        real_commit = store.commit_many

        async def commit_once_failing(commits: Sequence[Commit]) -> list[CommitResult]:
            if fail[0]:  # the first batch cannot be committed: the worker gives it back
                fail[0] = False
                raise StoreError("database unavailable (test)")
            return await real_commit(commits)

        store.commit_many = commit_once_failing  # type: ignore[method-assign]
        bus = _ScramblingBus(inner)
        await bus.publish_many(events)
        config = WorkerConfig(fetch_timeout=0.05, lease_ttl=1.0)
        async with GoalFeedbackWorker(store, bus, config=config) as worker:
            stats = await worker.run_until_idle(30)
        applied = [p.point["event_id"] for p in await store.metrics_history("g", limit=100)]
    assert not fail[0]
    assert bus.consumers[0].nacked > len(events)  # given back, and newer ones given back again
    assert stats.events_applied == len(events)
    assert applied == [e["event_id"] for e in events]
