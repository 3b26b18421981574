"""What a running API holds: the store, the bus, the embedded worker and the change hub.

:class:`Runtime` is created by :func:`goalkeeper.api.create_app` and lives on ``app.state``; the
app's lifespan starts it (opens the store, starts the bus, starts the worker in the same event
loop) and stops it in reverse order. There is no module-level state: two apps in one process (as
in the tests) share nothing.

:class:`ChangeHub` is how the SSE streams learn about commits without polling: the embedded
worker calls :meth:`ChangeHub.on_update` after each commit (its ``listeners=`` hook) and the hub
wakes the streams of that goal and of its tenant. Streams still poll the store every
``poll_interval`` seconds, so commits made by workers in other processes reach them too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..bus import open_bus
from ..ports.bus import Transport
from ..stores import open_store
from .config import ApiConfig
from .telemetry import ApiMetrics
from .views import GoalViews

if TYPE_CHECKING:
    from ..stores._base import BaseStore
    from ..worker import GoalFeedbackWorker, GoalUpdate

__all__ = ["EMBEDDED_BATCH_SIZE", "ChangeHub", "Runtime", "StatusCache"]

EMBEDDED_BATCH_SIZE = 100
"""Batch size of the embedded worker (a standalone ``goalkeeper worker`` uses its own default)."""


class ChangeHub:
    """Wakes waiting SSE streams when a goal changes.

    Each waiter is an :class:`asyncio.Event` registered for one stored goal id, or a queue of
    changed goal ids registered for a tenant prefix. Notifications never block: a waiter that is
    already woken simply stays woken, and the tenant queues are bounded (a slow reader loses
    duplicate notifications, never data, because streams read the data from the store).
    """

    def __init__(self) -> None:
        self._goals: dict[str, set[asyncio.Event]] = {}
        self._tenants: dict[str, set[asyncio.Queue[str]]] = {}
        self.closing = asyncio.Event()
        """Set at shutdown: every stream ends."""

    @contextmanager
    def watch_goal(self, goal_id: str) -> Iterator[asyncio.Event]:
        """Register a waiter for ``goal_id`` for the duration of the ``with`` block."""
        event = asyncio.Event()
        self._goals.setdefault(goal_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._goals.get(goal_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._goals[goal_id]

    @contextmanager
    def watch_tenant(self, prefix: str) -> Iterator[asyncio.Queue[str]]:
        """Register a queue receiving the ids of changed goals whose id starts with ``prefix``."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self._tenants.setdefault(prefix, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._tenants.get(prefix)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._tenants[prefix]

    def notify(self, goal_id: str) -> None:
        """Wake the streams of ``goal_id`` and of the tenant it belongs to."""
        for event in self._goals.get(goal_id, ()):
            event.set()
        for prefix, queues in self._tenants.items():
            if goal_id.startswith(prefix):
                for queue in queues:
                    if not queue.full():
                        queue.put_nowait(goal_id)

    def close(self) -> None:
        """End every stream: set :attr:`closing` and wake all waiters."""
        self.closing.set()
        for events in self._goals.values():
            for event in events:
                event.set()
        for queues in self._tenants.values():
            for queue in queues:
                if not queue.full():
                    queue.put_nowait("")

    def on_update(self, update: GoalUpdate) -> None:
        """The embedded worker's listener: a commit of ``update.goal_id`` happened."""
        self.notify(update.goal_id)

    @property
    def watchers(self) -> int:
        """How many streams are registered (for the ``/metrics`` gauge)."""
        return sum(len(v) for v in self._goals.values()) + sum(len(v) for v in self._tenants.values())


class StatusCache:
    """Recently seen goal statuses, so that posting events does not query the store per goal.

    Only goals that exist are cached, for ``ttl`` seconds: a goal closed through this API is
    updated at once (:meth:`put`), one closed by another process (``goalkeeper goals close``)
    stops accepting events here within ``ttl`` seconds. Bounded: the cache is cleared when it
    reaches ``maxsize`` entries.
    """

    def __init__(self, ttl: float = 2.0, maxsize: int = 50_000) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._entries: dict[str, tuple[str, float]] = {}

    def get(self, goal_id: str) -> str | None:
        """The cached status of ``goal_id``, or None when unknown or expired."""
        entry = self._entries.get(goal_id)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, goal_id: str, status: str) -> None:
        """Remember that ``goal_id`` exists with ``status``."""
        if len(self._entries) >= self.maxsize:
            self._entries.clear()
        self._entries[goal_id] = (status, time.monotonic() + self.ttl)


class Runtime:
    """The live resources of one API app (see the module docstring).

    Args:
        config: the app's configuration.
    """

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        self.log = logging.getLogger("goalkeeper.api")
        self.views = GoalViews()
        self.metrics = ApiMetrics()
        self.statuses = StatusCache()
        self.hub: ChangeHub | None = None
        self._store: BaseStore | None = None
        self._worker_store: BaseStore | None = None
        self._bus: Transport | None = None
        self.worker: GoalFeedbackWorker | None = None
        self.started_at = time.time()

    @property
    def store(self) -> BaseStore:
        """The open state store (only between start and stop)."""
        if self._store is None:
            raise RuntimeError("the API runtime is not started")
        return self._store

    @property
    def bus(self) -> Transport:
        """The started bus (only between start and stop)."""
        if self._bus is None:
            raise RuntimeError("the API runtime is not started")
        return self._bus

    async def start(self) -> None:
        """Open the store, start the bus and (if configured) the embedded worker.

        Raises:
            ConfigurationError: a bad URL or a missing optional dependency.
            BackendError: the store or bus cannot be reached.
        """
        self.hub = ChangeHub()
        store = open_store(self.config.store_url)
        await store.open()
        self._store = store
        try:
            bus = open_bus(self.config.resolved_bus_url())
            await bus.start()
            self._bus = bus
            if self.config.embedded_worker:
                from ..worker import GoalFeedbackWorker, WorkerConfig

                # The worker gets its own store object (its own connection): requests then never
                # queue behind the worker's commits. A volatile memory:// store must be shared,
                # since a second one would be a different, empty store.
                worker_store = store
                if not self.config.store_url.startswith("memory:"):
                    worker_store = open_store(self.config.store_url)
                    await worker_store.open()
                    self._worker_store = worker_store

                # Signal handlers belong to uvicorn, which owns the process; the worker is stopped
                # by the lifespan instead.
                # The worker applies events in this event loop: smaller batches keep the pauses it
                # causes between requests short (GOALKEEPER_BATCH_SIZE still wins).
                defaults: dict[str, Any] = {"install_signal_handlers": False}
                if "GOALKEEPER_BATCH_SIZE" not in os.environ:
                    defaults["batch_size"] = EMBEDDED_BATCH_SIZE
                worker_config = dataclasses.replace(WorkerConfig.from_env(), **defaults)
                self.worker = GoalFeedbackWorker(
                    worker_store, bus, config=worker_config, listeners=[self.hub.on_update]
                )
                await self.worker.start()
        except BaseException:
            await self.stop()
            raise
        self.log.info(
            "goalkeeper API started (store %s, worker %s)",
            self.config.masked_store_url(),
            "embedded" if self.worker is not None else "external",
        )

    async def stop(self) -> None:
        """Stop the worker (graceful), close the bus, close the store. Idempotent."""
        if self.hub is not None:
            self.hub.close()
        if self.worker is not None:
            worker, self.worker = self.worker, None
            try:
                await worker.stop()
            except Exception:  # keep closing the rest; the worker logs its own failure
                self.log.exception("embedded worker failed to stop cleanly")
        if self._bus is not None:
            bus, self._bus = self._bus, None
            await bus.close()
        if self._worker_store is not None:
            worker_store, self._worker_store = self._worker_store, None
            await worker_store.close()
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    def health(self) -> dict[str, Any]:
        """Whether the parts are up (store open, bus started, worker running)."""
        worker = "external"
        if self.config.embedded_worker:
            worker = "running" if self.worker is not None and _worker_alive(self.worker) else "stopped"
        return {
            "store": "ok" if self._store is not None else "down",
            "bus": "ok" if self._bus is not None else "down",
            "worker": worker,
        }


def _worker_alive(worker: Any) -> bool:
    running = getattr(worker, "running", None)
    return True if running is None else bool(running)
