"""Per-partition hold-back: keep goal order when deliveries have to be given back to the bus.

When a batch cannot be committed (a store error, lapsed leases, a goal that keeps losing its
compare-and-set) its deliveries are nacked for immediate redelivery. A bus is free to hand out
*newer* events of the same partition before those come back, and applying them first would break
per-goal order. So the worker remembers, per partition, the oldest position it gave back; until a
delivery at or before that position returns, every newer delivery of that partition is nacked
again instead of applied. Every backend serves due redeliveries before new events, so the wait is
one fetch in practice; a hold that is not released within ``limit`` seconds (the partition moved to
another worker, say) is dropped.

**Draining after a takeover.** When a partition is taken over from a dead worker, the dead
worker's unacknowledged deliveries are due by the time the partition is consumed, but a bus may
still hand out newer events first (its redelivery timers, or one fetch that cannot hold the whole
backlog). For ``duration`` seconds (the bus's visibility timeout, by which every one of them has
been offered again) only redeliveries of that partition are applied; new events are given back
with a delay that brings them back when the drain is over, behind the backlog.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from ..ports.bus import Delivery
from .processing import position_key

__all__ = ["HoldBack"]


class HoldBack:
    """Partitions with given-back deliveries, and the newer deliveries that must wait for them.

    Args:
        limit: seconds after which a hold is dropped even if its delivery never came back.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._held: dict[int, tuple[tuple[int, ...], float]] = {}  # partition -> (oldest position, since)
        self._draining: dict[int, float] = {}  # partition -> monotonic end of its drain

    def __len__(self) -> int:
        """Partitions currently held back."""
        return len(self._held)

    def gave_back(self, deliveries: Iterable[Delivery]) -> None:
        """Record deliveries that were nacked: their partitions wait for them."""
        now = time.monotonic()
        for d in deliveries:
            pos = position_key(d)
            held = self._held.get(d.partition)
            if held is None or pos < held[0]:
                self._held[d.partition] = (pos, now if held is None else held[1])

    def drain(self, partitions: Iterable[int], duration: float) -> None:
        """Partitions just taken over from a dead worker: only redeliveries for ``duration`` seconds."""
        until = time.monotonic() + duration
        for p in partitions:
            self._draining[p] = until

    @property
    def draining(self) -> set[int]:
        """Partitions still draining the redeliveries of a dead holder."""
        now = time.monotonic()
        return {p for p, until in self._draining.items() if until > now}

    def screen(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[Delivery], list[Delivery], list[Delivery], float]:
        """Split a fetched batch into (to process, to give back at once, to give back until the drain
        is over, seconds until it is over)."""
        keep, again = self._screen_held(deliveries)
        if not self._draining:
            return keep, again, [], 0.0
        now = time.monotonic()
        for p in [p for p, until in self._draining.items() if until <= now]:
            del self._draining[p]
        later = [d for d in keep if d.partition in self._draining and d.redelivered == 0]
        if not later:
            return keep, again, [], 0.0
        keep = [d for d in keep if not (d.partition in self._draining and d.redelivered == 0)]
        wait = max(self._draining[d.partition] for d in later) - now
        return keep, again, later, wait

    def _screen_held(self, deliveries: Sequence[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        if not self._held:
            return list(deliveries), []
        now = time.monotonic()
        for p in [p for p, (_, since) in self._held.items() if now - since > self.limit]:
            del self._held[p]
        returned = {
            d.partition
            for d in deliveries
            if d.partition in self._held and position_key(d) <= self._held[d.partition][0]
        }
        for p in returned:
            del self._held[p]
        keep = [d for d in deliveries if d.partition not in self._held]
        again = [d for d in deliveries if d.partition in self._held]
        return keep, again

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the holds of partitions this worker no longer consumes."""
        for p in partitions:
            self._held.pop(p, None)
            self._draining.pop(p, None)
