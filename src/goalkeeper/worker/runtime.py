"""``GoalFeedbackWorker``: the crash-safe background service joining bus, sessions, store and sinks.

One worker is one asyncio task running a loop of small steps:

* **leases** (every ``lease_ttl / 3``): heartbeat, compute this member's share of the partitions,
  release what moved away (cleanly, between batches), acquire the rest, and (re)build the bus
  consumer over the partitions that are ready (on NATS the partitions are rewound to their oldest
  unacknowledged event first; on the other buses a dirty takeover waits for the dead holder's
  deliveries to come due: see :mod:`goalkeeper.worker.partitions`);
* **batch**: fetch up to ``batch_size`` deliveries, hold back those behind a given-back delivery
  of their partition (:mod:`goalkeeper.worker.ordering`), process the rest
  (:mod:`goalkeeper.worker.processing`: apply in per-goal order, commit snapshot + inbox + outbox +
  metric points in one transaction), tell the listeners, **then ack**, then hand the suggestions
  to the delivery task;
* **outbox sweep** (every ``outbox_interval``, and at start): suggestions of our partitions that
  were committed but never marked delivered (for example because the previous process was killed)
  are delivered again.

Side tasks: the delivery task (sinks, then ``mark_delivered``), one poller per action source, and
the optional metrics HTTP endpoint. A SIGKILL at any moment loses nothing: an unacked delivery is
redelivered and skipped by the inbox if it was committed; a committed suggestion stays in the outbox
until delivered; suggestion ids are deterministic, so a replay produces the same suggestion.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from ..core.session import GoalSession
from ..errors import ConfigurationError, GoalkeeperError
from ..ports.bus import Consumer, Delivery, Transport, partition_for
from ..ports.store import Commit, StateStore
from .config import WorkerConfig
from .delivery import Dispatcher, notify
from .leases import LeaseBackend, lease_url_for, open_leases
from .logs import logger, mask_url, stats_fields
from .metrics import NullMetrics, make_metrics, record_batch
from .ordering import HoldBack
from .partitions import PartitionManager
from .processing import GoalProcessor, SessionCache, position_key
from .sinks import SuggestionSink, as_sinks
from .sources import ActionSource, SourcePoller, run_poller
from .types import GoalUpdate, Listener, WorkerStats

__all__ = ["GoalFeedbackWorker"]


class GoalFeedbackWorker:
    """Consume events from a bus, keep every goal's state in a store, deliver suggestions.

    Args:
        store: an opened :class:`~goalkeeper.ports.store.StateStore` (the caller opens and closes
            it) or a store URL (the worker opens and closes it).
        bus: a started :class:`~goalkeeper.ports.bus.Transport` (caller-managed) or a bus URL.
        config: the worker's configuration (default :class:`WorkerConfig()`).
        sinks: where suggestions go; a plain callable is wrapped in a :class:`CallbackSink`.
            Without sinks a committed suggestion counts as delivered at once (listeners and the
            store still have it).
        listeners: called with a :class:`GoalUpdate` after every commit (sync or async).
        sources: :class:`ActionSource` s to poll; what they return is published to the bus.
        session_factory: builds a new goal's session (default ``GoalSession(goal_id)`` with the
            config's profile); use it for a custom strategy or embedder.
        session_restorer: rebuilds a session from its snapshot (default ``GoalSession.restore``).

    Raises:
        ConfigurationError: a bad URL, config, sink, listener or source.

    Example::

        async with GoalFeedbackWorker("sqlite:///goalkeeper.db", "memory:///goalkeeper.db") as worker:
            await worker.run_until_idle()
    """

    def __init__(
        self,
        store: StateStore | str,
        bus: Transport | str,
        *,
        config: WorkerConfig | None = None,
        sinks: Sequence[SuggestionSink | Callable[[dict[str, Any]], object]] = (),
        listeners: Sequence[Listener] = (),
        sources: Sequence[ActionSource] = (),
        session_factory: Callable[[str], GoalSession] | None = None,
        session_restorer: Callable[[dict[str, Any]], GoalSession] | None = None,
    ) -> None:
        self.config = config if config is not None else WorkerConfig()
        if not isinstance(self.config, WorkerConfig):
            raise ConfigurationError(f"config must be a WorkerConfig, got {type(config).__name__}")
        if isinstance(store, str):
            from ..stores import open_store

            self.store: StateStore = open_store(store)
            self._own_store = True
        else:
            self.store, self._own_store = store, False
        if isinstance(bus, str):
            from ..bus import open_bus

            self.bus: Transport = open_bus(bus)
            self._own_bus = True
        else:
            self.bus, self._own_bus = bus, False
        self.sinks = as_sinks(sinks)
        for listener in listeners:
            if not callable(listener):
                raise ConfigurationError(f"a listener must be callable, got {listener!r}")
        self.listeners = list(listeners)
        for source in sources:
            if not isinstance(source, ActionSource):
                raise ConfigurationError(f"a source must implement ActionSource, got {source!r}")
        self._pollers = [
            SourcePoller(s, self.config.poll_interval, self.config.poll_max_interval) for s in sources
        ]
        profile = self.config.profile
        self._factory = session_factory or (lambda goal_id: GoalSession(goal_id, profile=profile))
        self._restorer = session_restorer or GoalSession.restore
        self.lease_url = self.config.lease_url or lease_url_for(self.store.url)
        self._leases: LeaseBackend = open_leases(self.lease_url)
        self.member = self.config.member_name
        # Leases name the incarnation, not just the member: a worker restarted under the same
        # --name must not inherit its dead predecessor's leases as "clean" (its unacked
        # deliveries are not due yet, and consuming newer events first would break goal order).
        self._lease_id = f"{self.member}~{uuid.uuid4().hex[:8]}"
        self.stats = WorkerStats()
        self._metrics: NullMetrics = make_metrics()
        if self.config.metrics_port is not None and self._metrics.registry is None:
            raise ConfigurationError('metrics_port needs prometheus-client: pip install "goalkeeper[server]"')
        self._cache = SessionCache(self.config.session_cache)
        self._processor: GoalProcessor | None = None
        self._parts = PartitionManager(
            self.bus, self._leases, group=self.config.group, member=self.member, lease_id=self._lease_id,
            ttl=self.config.lease_ttl, drain_timeout=self.config.drain_timeout, on_release=self._forget,
            on_takeover=self._drain,
        )  # fmt: skip
        self._dispatcher = Dispatcher(
            self.store, self.sinks, self.stats, self._metrics, self.config.outbox_grace
        )
        self._next_sweep = 0.0
        self._holdback = HoldBack(limit=2 * _visibility(self.bus) + 5.0)
        self._side_tasks: list[asyncio.Task[None]] = []
        self._main: asyncio.Task[None] | None = None
        self._opened = False
        self._stop = asyncio.Event()
        self._idle_steps = 0
        self._idle_changed = asyncio.Event()
        self._metrics_server: Any = None

    # -- public surface -----------------------------------------------------------------------

    @property
    def partitions(self) -> tuple[int, ...]:
        """The partitions this worker currently consumes."""
        return self._parts.ready

    @property
    def registry(self) -> Any:
        """The worker's own Prometheus ``CollectorRegistry`` (None without prometheus-client)."""
        return self._metrics.registry

    def metrics_text(self) -> bytes:
        """This worker's metrics in the Prometheus text format."""
        self._metrics.gauges(partitions=len(self._parts.ready), sessions=len(self._cache))
        return self._metrics.text()

    def request_stop(self) -> None:
        """Ask the worker to finish the batch in flight and stop (safe from signal handlers)."""
        self._stop.set()

    async def __aenter__(self) -> Self:
        """Start the worker in a background task."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop gracefully."""
        await self.stop()

    async def start(self) -> None:
        """Open what the worker owns, join the group and run the loop in a background task."""
        if self._main is not None and not self._main.done():
            return
        await self._open()
        self._stop.clear()
        self._main = asyncio.create_task(self._loop(), name=f"goalkeeper-worker-{self.member}")

    async def stop(self) -> None:
        """Finish the batch in flight, release partitions, flush deliveries and close owned resources."""
        self.request_stop()
        main, self._main = self._main, None
        try:
            if main is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await main
        finally:
            await self._close()

    async def run(self) -> None:
        """Run in the foreground until :meth:`request_stop`, SIGTERM or SIGINT; then stop gracefully.

        Raises:
            GoalkeeperError: the store, bus or lease database cannot be opened.
        """
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if self.config.install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    handled.append(sig)
        try:
            await self._open()
            self._stop.clear()
            await self._loop()
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            await self._close()

    async def run_until_idle(self, timeout: float = 60.0) -> WorkerStats:
        """Process until everything published so far is applied, committed, acked and handed to the
        sinks; return the stats. Starts the worker's resources if needed (close them with
        :meth:`stop`, or use ``async with``). Meant for tests and batch jobs.

        Raises:
            TimeoutError: not idle within ``timeout`` seconds.
        """
        if self._main is not None and not self._main.done():
            # Two idle steps after now: the second one's fetch started after this call.
            target, main = self._idle_steps + 2, self._main
            async with asyncio.timeout(timeout):
                while self._idle_steps < target:
                    self._idle_changed.clear()
                    waiter = asyncio.ensure_future(self._idle_changed.wait())
                    try:
                        await asyncio.wait([waiter, main], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                    if main.done():  # the loop ended (stopped, or crashed: re-raise its error)
                        main.result()
                        break
            return self.stats
        await self._open()
        async with asyncio.timeout(timeout):
            while not await self._step():
                pass
            await self._dispatcher.flush(timeout)
        return self.stats

    # -- lifecycle ------------------------------------------------------------------------------

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("signal received; stopping gracefully", extra={"signal": sig.name, "member": self.member})
        self.request_stop()
        # A second signal gets the default behaviour (Ctrl-C twice leaves at once; nothing is lost).
        loop = asyncio.get_running_loop()
        for other in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(other)

    async def _open(self) -> None:
        if self._opened:
            return
        try:
            if self._own_store:
                await self.store.open()
            if self._own_bus:
                await self.bus.start()
            await self._leases.open()
        except BaseException:
            await self._close_resources()
            raise
        self._opened = True
        with_metrics = "metrics" in getattr(Commit, "__dataclass_fields__", {})
        self._processor = GoalProcessor(
            self.store, self._cache, self._factory, self._restorer,
            max_retries=self.config.max_commit_retries, with_metrics=with_metrics,
        )  # fmt: skip
        self._parts.next_rebalance = self._next_sweep = 0.0
        self._side_tasks = [
            asyncio.create_task(self._dispatcher.run(), name="goalkeeper-worker-delivery"),
            asyncio.create_task(self._renew_forever(), name="goalkeeper-worker-leases"),
        ]
        self._side_tasks += [
            asyncio.create_task(run_poller(p, self.store, self.bus, self.config.batch_size, self.stats))
            for p in self._pollers
        ]
        if self.config.metrics_port is not None:
            import prometheus_client

            self._metrics_server, _ = prometheus_client.start_http_server(
                self.config.metrics_port, addr=self.config.metrics_host, registry=self._metrics.registry
            )
        logger.info(
            "worker started",
            extra={"member": self.member, "group": self.config.group, "store": self.store.url,
                   "lease_url": mask_url(self.lease_url), "partitions_total": self.bus.partitions},
        )  # fmt: skip

    async def _close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        try:
            await self._parts.release_all()
        except GoalkeeperError as exc:  # the leases expire on their own; a takeover just waits longer
            logger.warning("could not release leases", extra={"error": str(exc)})
        await self._dispatcher.flush(self.config.drain_timeout)
        for task in self._side_tasks:
            task.cancel()
        for task in self._side_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._side_tasks = []
        for sink in self.sinks:
            closer = getattr(sink, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        await self._close_resources()
        logger.info("worker stopped", extra={"member": self.member, **stats_fields(self.stats)})

    async def _close_resources(self) -> None:
        with contextlib.suppress(Exception):
            await self._leases.close()
        if self._own_bus:
            with contextlib.suppress(Exception):
                await self.bus.close()
        if self._own_store:
            with contextlib.suppress(Exception):
                await self.store.close()

    # -- the loop -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                idle = await self._step()
                failures = 0
            except Exception as exc:
                # A backend hiccup (or a bug): back off and carry on. Nothing acked was lost, and
                # nothing unacked is: the batch was given back. Unexpected errors get a traceback.
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                logger.error(
                    "worker step failed; retrying",
                    exc_info=not isinstance(exc, GoalkeeperError),
                    extra={
                        "error": f"{type(exc).__name__}: {exc}",
                        "attempt": failures,
                        "backoff_seconds": delay,
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            if idle:
                self._idle_steps += 1
                self._idle_changed.set()

    async def _step(self) -> bool:
        """One turn of the loop; True when there was nothing to do (idle)."""
        parts, now = self._parts, time.monotonic()
        if now >= parts.next_rebalance:
            await parts.rebalance()
        elif parts.fence_over():
            await parts.refresh()
        if now >= self._next_sweep:
            self._next_sweep = now + self.config.outbox_interval
            await self._dispatcher.sweep(self.bus.partitions, set(parts.held))
        consumer = parts.consumer
        if consumer is None or not parts.usable():
            wait = min(self.config.fetch_timeout, max(0.01, parts.next_rebalance - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            return not parts.fenced and not self._busy() and not parts.missing
        batch = await consumer.fetch(self.config.batch_size, timeout=self.config.fetch_timeout)
        if not batch:
            return not parts.fenced and not self._busy()
        await self._handle(consumer, list(batch))
        return False

    async def _renew_forever(self) -> None:
        """Keep our membership and leases alive, independently of how long a batch takes."""
        while True:
            await asyncio.sleep(self.config.lease_ttl / 3)
            try:
                await self._parts.renew()
            except GoalkeeperError as exc:  # leases lapse on their own if this persists; fetching stops
                logger.warning("lease renewal failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    def _busy(self) -> bool:
        # Given-back deliveries are still to come back: not idle.
        return self._dispatcher.busy or any(p.busy for p in self._pollers) or len(self._holdback) > 0

    def _drain(self, partitions: list[int]) -> None:
        """Partitions taken over from a dead worker: apply their redeliveries before new events."""
        self._holdback.drain(partitions, _visibility(self.bus))

    def _forget(self, partitions: list[int]) -> None:
        """Drop the cached sessions of partitions we no longer hold (another worker moves them on)."""
        count, gone = self.bus.partitions, set(partitions)
        self._cache.drop_where(lambda goal_id: partition_for(goal_id, count) in gone)
        self._holdback.forget(gone)

    async def _handle(self, consumer: Consumer, deliveries: list[Any]) -> None:
        assert self._processor is not None
        started = time.monotonic()
        self.stats.events_received += len(deliveries)
        screened = self._holdback.screen(deliveries)
        deliveries = screened.keep
        if screened.again:  # older events of their partitions are still given back: they go first
            await self._give_back(consumer, screened.again, screened.again_delay)
        if screened.later:  # new events of a partition still draining a dead worker's redeliveries
            await self._give_back(consumer, screened.later, screened.later_delay)
        if not deliveries:
            return
        try:
            result = await self._processor.process(deliveries, self._parts.may_commit)
        except Exception:
            # Give everything back for immediate redelivery (the loop backs off before fetching).
            with contextlib.suppress(GoalkeeperError):
                await self._give_back(consumer, deliveries, 0.0)
            raise
        for update in result.updates:
            await self._notify(update)
        if result.ack:
            await consumer.ack(result.ack)
        if result.nack:
            await self._give_back(consumer, result.nack, 0.0)
            self._metrics.event("retried", len(result.nack))
        suggestions = record_batch(
            self.stats, self._metrics, result, time.monotonic() - started, len(self._cache)
        )
        if suggestions:
            self._dispatcher.enqueue(suggestions)
        logger.debug(
            "batch committed",
            extra={"events": len(deliveries), "applied": result.applied, "goals": len(result.updates),
                   "seconds": round(time.monotonic() - started, 4)},
        )  # fmt: skip

    async def _give_back(self, consumer: Consumer, deliveries: list[Delivery], delay: float) -> None:
        """Nack deliveries (oldest first per partition), after recording them in the hold-back so
        that nothing newer of their partitions is applied before they are back."""
        delay = min(delay, _visibility(self.bus))
        ordered = sorted(deliveries, key=lambda d: (d.partition, position_key(d)))
        self._holdback.gave_back(ordered, delay)
        await consumer.nack(ordered, delay=delay)

    async def _notify(self, update: GoalUpdate) -> None:
        self.stats.listener_failures += await notify(self.listeners, update, self.config.listener_timeout)


def _visibility(bus: Transport) -> float:
    """The bus's visibility timeout (redelivery delay of a dead consumer's deliveries), if it has one."""
    return float(getattr(getattr(bus, "options", None), "visibility_timeout", 30.0))
