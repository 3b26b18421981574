"""Per-partition hold-back: keep goal order when deliveries have to be given back to the bus.

When a batch cannot be committed (a store error, lapsed leases, a goal that keeps losing its
compare-and-set) its deliveries are nacked for redelivery, and during a takeover drain new events
are nacked with a delay (below). No backend promises that given-back deliveries come back in
publish order, nor before newer events: NATS JetStream, for one, redelivers them in the order
their delays run out, which is not the order they were published in. So the worker keeps, per
partition, the exact **positions** it gave back and has not seen again. A delivery is applied only
when no given-back position of its partition *before* it is still outstanding; a newer one that
arrives early is given back again (with a delay that brings it back when the oldest outstanding one
is due) and waits its turn. Per-goal order across give-backs therefore holds whatever order the bus
returns them in. A position that has not come back within ``limit`` seconds (the partition moved
to another worker, say) is dropped.

**Draining after a takeover** (buses that cannot rewind a partition: see
:meth:`goalkeeper.bus.nats.NatsJetStreamBus.rewind`). When a partition is taken over from a dead
worker, the dead worker's unacknowledged deliveries are due by the time the partition is consumed,
but a bus may still hand out newer events first (its redelivery timers, or one fetch that cannot
hold the whole backlog). For ``duration`` seconds (the bus's visibility timeout, by which every one
of them has been offered again) only redeliveries of that partition are applied; new events are
given back with a delay that brings them back when the drain is over, and are held back like any
other given-back delivery.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ..ports.bus import Delivery
from .processing import position_key

__all__ = ["HoldBack", "Screened"]

_Position = tuple[int, ...]


class Screened(NamedTuple):
    """A fetched batch split by :meth:`HoldBack.screen`."""

    keep: list[Delivery]
    """To process now, in the order fetched."""
    again: list[Delivery]
    """Behind an outstanding given-back delivery of their partition: give back again."""
    again_delay: float
    """Seconds until the oldest outstanding delivery blocking ``again`` is due back."""
    later: list[Delivery]
    """New events of a partition still draining a dead worker's redeliveries: give back."""
    later_delay: float
    """Seconds until that drain is over."""


class HoldBack:
    """Given-back positions per partition, and the deliveries that must wait for them.

    Args:
        limit: seconds after which a given-back position is dropped even if it never came back.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        # partition -> position -> (given back at, due back at), both monotonic
        self._out: dict[int, dict[_Position, tuple[float, float]]] = {}
        self._draining: dict[int, float] = {}  # partition -> monotonic end of its drain

    def __len__(self) -> int:
        """Partitions with given-back deliveries still outstanding."""
        return len(self._out)

    def outstanding(self, partition: int) -> list[_Position]:
        """The given-back positions of ``partition`` not seen again yet, oldest first."""
        return sorted(self._out.get(partition, {}))

    def gave_back(self, deliveries: Iterable[Delivery], delay: float = 0.0) -> None:
        """Record deliveries that were nacked with ``delay``: newer ones of their partitions wait."""
        now = time.monotonic()
        for d in deliveries:
            self._out.setdefault(d.partition, {})[position_key(d)] = (now, now + max(0.0, delay))

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

    def screen(self, deliveries: Sequence[Delivery]) -> Screened:
        """Split a fetched batch: what to process, what to give back again, what to give back
        until its partition's drain is over (see the module docstring)."""
        now = time.monotonic()
        keep, again, delay = self._screen_held(deliveries, now)
        if not self._draining:
            return Screened(keep, again, delay, [], 0.0)
        for p in [p for p, until in self._draining.items() if until <= now]:
            del self._draining[p]
        later = [d for d in keep if d.partition in self._draining and d.redelivered == 0]
        if not later:
            return Screened(keep, again, delay, [], 0.0)
        keep = [d for d in keep if not (d.partition in self._draining and d.redelivered == 0)]
        wait = max(self._draining[d.partition] for d in later) - now
        return Screened(keep, again, delay, later, max(0.0, wait))

    def _screen_held(
        self, deliveries: Sequence[Delivery], now: float
    ) -> tuple[list[Delivery], list[Delivery], float]:
        if not self._out:
            return list(deliveries), [], 0.0
        for p in list(self._out):
            out = self._out[p]
            for pos in [pos for pos, (since, _) in out.items() if now - since > self.limit]:
                del out[pos]
            if not out:
                del self._out[p]
        for d in deliveries:  # these are back: they no longer block anything
            held = self._out.get(d.partition)
            if held is not None:
                held.pop(position_key(d), None)
                if not held:
                    del self._out[d.partition]
        # The oldest position still outstanding per partition: nothing after it may be applied.
        blocking = {p: min(out) for p, out in self._out.items()}
        keep: list[Delivery] = []
        again: list[Delivery] = []
        due = float("inf")
        for d in deliveries:
            first = blocking.get(d.partition)
            if first is None or position_key(d) < first:
                keep.append(d)
            else:
                again.append(d)
                due = min(due, self._out[d.partition][first][1])
        return keep, again, (max(0.0, due - now) if again else 0.0)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the holds of partitions this worker no longer consumes."""
        for p in partitions:
            self._out.pop(p, None)
            self._draining.pop(p, None)
