"""Polling mode: the :class:`ActionSource` protocol for sources that cannot push, and the poller.

A source is something the worker asks for new events on an interval: a table of a user's database,
an HTTP endpoint, a directory of files. The worker **publishes** what a source returns to its bus
(so polled events get the same durability, ordering and exactly-once handling as pushed ones) and
only then calls :meth:`ActionSource.ack`, so a source can advance its cursor knowing nothing is
lost. A crash between the publish and the ack gives a repeat poll; the bus and the store's inbox
drop the repeats by ``event_id``, so a source must give each event a stable ``event_id``.

Back-off: after a poll that returned events the next one comes at once (a backlog drains at full
speed); after an empty poll the wait is ``poll_interval``, doubling with each further empty poll up
to ``poll_max_interval``; a failing poll backs off exponentially from ``poll_interval`` with jitter
and is logged, never stopping the worker.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..ports.bus import Transport
from ..ports.store import StateStore
from .logs import logger
from .types import WorkerStats

__all__ = ["ActionSource", "SourcePoller", "run_poller"]


@runtime_checkable
class ActionSource(Protocol):
    """A pull-based source of events (wire dicts of :mod:`goalkeeper.events`)."""

    name: str
    """A short name used in logs."""

    async def poll(self, max_events: int) -> Sequence[Mapping[str, Any]]:
        """Return up to ``max_events`` new events (possibly none), oldest first."""
        ...

    async def ack(self, events: Sequence[Mapping[str, Any]]) -> None:
        """The events of the last poll are durably published: advance the cursor past them."""
        ...


class SourcePoller:
    """Polls one source on its own schedule with back-off (see the module docstring).

    Args:
        source: the source.
        interval: seconds between polls while the source has events.
        max_interval: the longest wait after empty or failing polls.
    """

    def __init__(self, source: ActionSource, interval: float, max_interval: float) -> None:
        self.source = source
        self.interval = interval
        self.max_interval = max_interval
        self.failures = 0
        self.busy = False  # a poll (and its publish) is under way
        self._wait = 0.0
        self._due = 0.0  # poll at once on start

    def due(self, now: float | None = None) -> bool:
        """Whether the next poll is due."""
        return (time.monotonic() if now is None else now) >= self._due

    def until_due(self) -> float:
        """Seconds until the next poll is due (0 if it is)."""
        return max(0.0, self._due - time.monotonic())

    def succeeded(self, got: int) -> None:
        """Schedule the next poll after a successful one that returned ``got`` events."""
        self.failures = 0
        self._wait = self.interval if got else min(self.max_interval, max(self.interval, self._wait * 2))
        self._due = time.monotonic() + (0.0 if got else self._wait)

    def failed(self, exc: BaseException) -> None:
        """Schedule the next poll after a failure (exponential back-off with jitter) and log it."""
        self.failures += 1
        base = min(self.max_interval, self.interval * 2 ** min(self.failures, 30))
        delay = base * (0.5 + random.random() / 2)
        self._due = time.monotonic() + delay
        logger.warning(
            "action source poll failed; backing off",
            extra={"source": self.source.name, "attempt": self.failures, "backoff_seconds": round(delay, 3),
                   "error": f"{type(exc).__name__}: {exc}"},
        )  # fmt: skip


async def run_poller(
    poller: SourcePoller, store: StateStore, bus: Transport, batch_size: int, stats: WorkerStats
) -> None:
    """Poll one source forever: publish what it returns to the bus, then ack it (cancel to stop).

    An event without a string ``goal_id`` / ``event_id`` is recorded as a dead letter (it could never
    be routed or deduplicated) and the rest of the poll goes on.
    """
    while True:
        await asyncio.sleep(poller.until_due())
        poller.busy = True
        try:
            events = list(await poller.source.poll(batch_size))
            good: list[Mapping[str, Any]] = []
            for event in events:
                reason = _unroutable(event)
                if reason is None:
                    good.append(event)
                    continue
                payload = dict(event) if isinstance(event, Mapping) else {"value": repr(event)}
                await store.add_dead_letter(
                    payload, f"source {poller.source.name!r} gave an invalid event: {reason}"
                )
                stats.dead_letters += 1
            if good:
                await bus.publish_many(good)
            await poller.source.ack(events)
            stats.polled += len(good)
            poller.succeeded(len(events))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing source backs off; it never stops the worker
            poller.failed(exc)
        finally:
            poller.busy = False


def _unroutable(event: object) -> str | None:
    """Why an event cannot be published, or None if it can."""
    if not isinstance(event, Mapping):
        return f"expected an object, got {type(event).__name__}"
    for name in ("goal_id", "event_id"):
        value = event.get(name)
        if not isinstance(value, str) or not value:
            return f"{name}: must be a non-empty string"
    return None
