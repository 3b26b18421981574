"""Which partitions this worker consumes: leases, the takeover fence and the bus consumer.

:class:`PartitionManager` runs the protocol of :mod:`goalkeeper.worker.leases` for one worker: it
heartbeats, computes this member's share, releases partitions that moved away (only between
batches, when nothing of them is in flight), acquires the rest and keeps one bus consumer over the
partitions that are *ready*.

Every consumer starts where per-goal order needs it to: on a bus that can **rewind** a partition
(NATS JetStream: :meth:`~goalkeeper.bus.nats.NatsJetStreamBus.rewind`), each consumer the manager
builds first rewinds its partitions, so it receives every unacknowledged event of them from the
oldest, in publish order, before anything newer; a dead holder's deliveries need no waiting. On
the other buses, a partition taken over from a dead holder becomes ready only once the holder's
unacknowledged deliveries are due for redelivery (the takeover *fence*), and the worker then drains
them before newer events (:mod:`goalkeeper.worker.ordering`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..ports.bus import Consumer, Transport
from .leases import LeaseBackend, assign
from .logs import logger

__all__ = ["PartitionManager"]


class PartitionManager:
    """Leases and the consumer of one worker (see the module docstring).

    Args:
        bus: the started transport.
        leases: the opened lease backend.
        group: the consumer group (also the lease group).
        member: the bus consumer name.
        lease_id: this incarnation's identity in the lease tables.
        ttl: lease time-to-live in seconds.
        drain_timeout: seconds a consumer close waits for acks.
        on_release: called with the partitions given up (the worker drops their cached sessions).
        on_takeover: called with partitions taken over from a dead holder once they are consumed
            (the worker drains their redeliveries before applying new events).
    """

    def __init__(
        self,
        bus: Transport,
        leases: LeaseBackend,
        *,
        group: str,
        member: str,
        lease_id: str,
        ttl: float,
        drain_timeout: float,
        on_release: Callable[[list[int]], None],
        on_takeover: Callable[[list[int]], None] = lambda partitions: None,
    ) -> None:
        self.bus = bus
        self.leases = leases
        self.group = group
        self.member = member
        self.lease_id = lease_id
        self.ttl = ttl
        self.drain_timeout = drain_timeout
        self._on_release = on_release
        self._on_takeover = on_takeover
        self._dirty: set[int] = set()  # taken over from a dead holder, not consumed yet
        self.held: dict[int, float] = {}  # partition -> monotonic time it may be consumed from
        self.consumer: Consumer | None = None
        self.ready: tuple[int, ...] = ()
        self.valid_until = 0.0  # our leases are trusted until then (monotonic)
        self.next_rebalance = 0.0
        self.members: list[str] = []
        # A bus that rewinds partitions hands a new consumer every unacked event in publish order.
        rewind = getattr(bus, "rewind", None)
        self._rewind: Callable[[str, tuple[int, ...]], Awaitable[None]] | None = (
            rewind if callable(rewind) else None
        )
        self.missing = False  # some partitions of our share are still held by someone else
        self._lock = asyncio.Lock()  # renewal and rebalancing must not interleave their lease calls

    @property
    def fenced(self) -> bool:
        """True while a held partition waits for its takeover fence."""
        return len(self.ready) < len(self.held)

    def fence_over(self) -> bool:
        """True when a fenced partition has become ready (the consumer needs rebuilding)."""
        now = time.monotonic()
        return any(t <= now for p, t in self.held.items() if p not in self.ready)

    def usable(self) -> bool:
        """True if there is a consumer and our leases are still valid by our own clock."""
        return self.consumer is not None and time.monotonic() < self.valid_until

    def may_commit(self, partitions: set[int]) -> bool:
        """True if we still hold every one of ``partitions`` with a lease valid by our own clock.

        Checked right before a batch is committed: a worker that was stalled past its lease must not
        commit, because a new holder may already be applying newer events of the same goals.
        """
        return time.monotonic() < self.valid_until and all(p in self.held for p in partitions)

    async def renew(self) -> None:
        """Heartbeat and renew the leases we hold (the background task calls this every ttl / 3).

        Renewal runs beside the batches so that a long batch cannot let the leases lapse.
        """
        async with self._lock:
            started = time.monotonic()
            self.members = await self.leases.heartbeat(self.group, self.lease_id, self.ttl)
            held = sorted(self.held)
            granted = {
                g.partition for g in await self.leases.acquire(self.group, held, self.lease_id, self.ttl)
            }
            self.valid_until = started + self.ttl * 0.8
            lost = [p for p in held if p not in granted]
            for p in lost:  # someone else holds it now (we were cut off for too long): stop at once
                self.held.pop(p, None)
                self._dirty.discard(p)
            if lost:
                self._on_release(lost)
                logger.warning("partition leases lost", extra={"partitions": lost, "member": self.member})

    async def rebalance(self) -> None:
        """Between batches: release what moved away, acquire our missing share, rebuild the consumer."""
        self.next_rebalance = time.monotonic() + self.ttl / 3
        async with self._lock:
            if not self.members:
                self.members = await self.leases.heartbeat(self.group, self.lease_id, self.ttl)
            want = assign(self.members, self.bus.partitions, self.lease_id)
            gone = [p for p in self.held if p not in want]
            if gone:
                # Between batches nothing of ours is in flight: close the consumer, then release.
                await self._consume(tuple(p for p in self.ready if p not in gone))
                await self.leases.release(self.group, gone, self.lease_id)
                for p in gone:
                    del self.held[p]
                    self._dirty.discard(p)
                self._on_release(gone)
                logger.info("partitions released", extra={"partitions": gone, "member": self.member})
            started = time.monotonic()
            grants = await self.leases.acquire(self.group, want, self.lease_id, self.ttl)
            self.valid_until = started + self.ttl * 0.8
            visibility = float(getattr(getattr(self.bus, "options", None), "visibility_timeout", 30.0))
            fresh, taken_over = [], []
            for grant in grants:
                if grant.partition in self.held:
                    continue
                # A dirty grant: the old holder's deliveries come due `visibility` after its lease
                # ended; wait for that (plus a margin for clock granularity and reclaim rhythm).
                # A rewinding bus hands them out again at once, in order: no fence, no drain.
                fence = not grant.clean and self._rewind is None
                wait = max(0.0, visibility - grant.expired_ago) + 0.25 + 0.05 * visibility if fence else 0.0
                self.held[grant.partition] = time.monotonic() + wait
                if fence:
                    self._dirty.add(grant.partition)
                if not grant.clean:
                    taken_over.append(grant.partition)
                fresh.append((grant.partition, round(wait, 2)))
            if fresh:
                logger.info(
                    "partitions acquired",
                    extra={"partitions": fresh, "taken_over": taken_over, "member": self.member},
                )
            self.missing = len(grants) < len(want)
        await self.refresh()

    async def refresh(self) -> None:
        """Point the consumer at the partitions that are ready now."""
        now = time.monotonic()
        ready = tuple(sorted(p for p, t in self.held.items() if t <= now))
        if ready != self.ready:
            await self._consume(ready)
            taken = sorted(self._dirty & set(ready))
            if taken:
                self._dirty -= set(taken)
                self._on_takeover(taken)

    async def release_all(self) -> None:
        """Close the consumer and release every lease cleanly (graceful shutdown)."""
        await self._consume(())
        async with self._lock:
            if self.held:
                await self.leases.release(self.group, sorted(self.held), self.lease_id)
            await self.leases.leave(self.group, self.lease_id)
            self.held.clear()

    async def _consume(self, partitions: tuple[int, ...]) -> None:
        old, self.consumer, self.ready = self.consumer, None, ()
        if old is not None:
            await old.close(drain_timeout=self.drain_timeout)
        if partitions:
            if self._rewind is not None:
                # We hold the leases of all of them and our previous consumer is closed: whatever is
                # unacknowledged (given back by us, or held by a dead holder) starts over, in order.
                await self._rewind(self.group, partitions)
            self.consumer = await self.bus.consumer(self.group, self.member, partitions=partitions)
            self.ready = partitions
