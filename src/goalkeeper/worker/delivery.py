"""Suggestion delivery: the outbox side of the worker.

After a commit the worker hands the batch's suggestions to :class:`Dispatcher`, which delivers them
to every sink in a task of its own (a slow webhook never stalls the batches) and then marks them
delivered in the store. If a sink fails, the suggestions simply stay pending in the store's outbox;
the periodic :meth:`Dispatcher.sweep` (also run at start, so after a crash) finds the pending
suggestions of this worker's partitions and delivers them again. Delivery is at least once, with a
stable ``suggestion_id``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..ports.bus import partition_for
from ..ports.store import StateStore
from .logs import logger
from .metrics import NullMetrics
from .sinks import PermanentDeliveryError, SuggestionSink
from .types import GoalUpdate, Listener, WorkerStats

__all__ = ["Dispatcher", "notify"]

_MERGE = 1000  # most suggestions handed to a sink in one call


class Dispatcher:
    """Delivers committed suggestions to the sinks and marks them delivered (see the module docstring).

    Args:
        store: the opened store (its outbox is the source of truth).
        sinks: the sinks, called in order; with none, a suggestion counts as delivered at once.
        stats: the worker's counters.
        metrics: the worker's Prometheus metrics.
        grace: a pending suggestion younger than this many seconds is left to its committer.
    """

    def __init__(
        self,
        store: StateStore,
        sinks: Sequence[SuggestionSink],
        stats: WorkerStats,
        metrics: NullMetrics,
        grace: float,
    ) -> None:
        self.store = store
        self.sinks = list(sinks)
        self.stats = stats
        self.metrics = metrics
        self.grace = grace
        self._queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._queued: set[str] = set()  # ids queued or being delivered: a sweep must not double them
        self._active = 0

    @property
    def busy(self) -> bool:
        """True while suggestions are queued or being delivered."""
        return bool(self._active or not self._queue.empty())

    def enqueue(self, suggestions: Iterable[dict[str, Any]]) -> None:
        """Queue suggestions for delivery (ids already queued are skipped)."""
        fresh = [s for s in suggestions if s["suggestion_id"] not in self._queued]
        if fresh:
            self._queued.update(s["suggestion_id"] for s in fresh)
            self._queue.put_nowait(fresh)

    async def sweep(self, partitions: int, mine: set[int]) -> int:
        """Queue the pending outbox suggestions of the partitions ``mine``; return how many."""
        if not mine:
            return 0
        now = time.time()
        pending = await self.store.pending_suggestions(limit=1000)
        due = [
            s.suggestion
            for s in pending
            if now - s.created_at >= self.grace and partition_for(s.goal_id, partitions) in mine
        ]
        if due:
            logger.info("re-delivering suggestions from the outbox", extra={"suggestions": len(due)})
            self.enqueue(due)
        return len(due)

    async def run(self) -> None:
        """Deliver queued suggestions forever (cancel to stop; call :meth:`flush` first)."""
        while True:
            items = await self._queue.get()
            self._active += 1
            try:
                while not self._queue.empty() and len(items) < _MERGE:
                    items.extend(self._queue.get_nowait())
                await self._deliver(items)
            except Exception as exc:  # the outbox keeps them; the sweep retries
                self.stats.sink_failures += 1
                self.metrics.suggestion("failed", len(items))
                logger.warning(
                    "suggestion delivery failed; left in the outbox",
                    extra={"suggestions": len(items), "error": f"{type(exc).__name__}: {exc}"},
                )
            finally:
                self._queued.difference_update(s["suggestion_id"] for s in items)
                self._active -= 1

    async def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to drain; True if it did."""
        deadline = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def _deliver(self, items: list[dict[str, Any]]) -> None:
        remaining = items
        for sink in self.sinks:
            try:
                await sink.deliver(remaining)
            except PermanentDeliveryError as exc:
                # The receiver will never take these: record them instead of retrying forever.
                rejected = set(exc.suggestion_ids)
                for s in remaining:
                    if s["suggestion_id"] in rejected:
                        await self.store.add_dead_letter(
                            s, f"sink {sink.name!r} rejected the suggestion: {exc}", goal_id=s.get("goal_id")
                        )
                remaining = [s for s in remaining if s["suggestion_id"] not in rejected]
                self.metrics.suggestion("dead_letter", len(rejected))
                self.stats.dead_letters += len(rejected)
                logger.error(
                    "sink rejected suggestions for good", extra={"sink": sink.name, "error": str(exc)}
                )
        ids = [s["suggestion_id"] for s in items]
        await self.store.mark_delivered(ids)
        self.stats.suggestions_delivered += len(ids)
        self.metrics.suggestion("delivered", len(ids))


async def notify(listeners: Sequence[Listener], update: GoalUpdate, timeout: float) -> int:
    """Tell every listener about a commit; return how many failed (logged, never raised).

    A listener must never break the worker: an exception, or an async listener running longer than
    ``timeout`` seconds, is logged with the goal, version and listener name, and counted.
    """
    failures = 0
    for listener in listeners:
        try:
            result = listener(update)
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, timeout)
        except Exception as exc:
            failures += 1
            logger.warning(
                "listener failed",
                extra={"goal_id": update.goal_id, "version": update.version,
                       "listener": getattr(listener, "__qualname__", repr(listener)),
                       "error": f"{type(exc).__name__}: {exc}"},
            )  # fmt: skip
    return failures
