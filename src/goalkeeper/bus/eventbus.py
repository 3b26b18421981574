"""``FeedbackEventBus``: the simple in-process publish/subscribe bus users of the reference expect.

It keeps the reference's shape (``subscribe(handler)``, ``publish(event)``) but none of its
failure modes (reference §1.9, §2.1 items 16-17, §2.3):

* it runs over the embedded ``memory://`` transport, so a full queue makes ``publish`` *wait*
  (backpressure) instead of dropping the event;
* sync and async handlers go through one code path (a coroutine handler is always awaited, never
  left un-awaited);
* a failing handler is reported (logged, passed to ``on_error``, counted) and *retried* with
  exponential backoff; only the handlers that failed run again. After ``max_attempts`` the event
  goes to :attr:`FeedbackEventBus.dead_letters`, logged at ERROR: never silently dropped;
* ``aclose()`` is a coroutine that drains (no deadlock when called from the event loop).

Example:
    >>> import asyncio
    >>> async def demo() -> list[int]:
    ...     seen: list[int] = []
    ...     async with FeedbackEventBus() as bus:
    ...         bus.subscribe(lambda event: seen.append(event["value"]))
    ...         await bus.publish({"goal_id": "g1", "value": 1})
    ...         await bus.join()
    ...     return seen
    >>> asyncio.run(demo())
    [1]
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from goalkeeper.bus.memory import MemoryBus
from goalkeeper.errors import BusError, ConfigurationError, InvalidInputError
from goalkeeper.ports.bus import Consumer, Delivery

__all__ = ["DeadLetter", "FeedbackEventBus", "Handler"]

logger = logging.getLogger("goalkeeper.bus")

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]
"""A subscriber: a function or coroutine function taking the event dict."""

ErrorCallback = Callable[[dict[str, Any], Handler, BaseException, int], None]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event some handler kept failing on.

    Attributes:
        event: The event.
        handler: Name of the handler that failed.
        error: ``repr`` of its last exception.
        attempts: How many times it was tried.
    """

    event: dict[str, Any]
    handler: str
    error: str
    attempts: int


class FeedbackEventBus:
    """In-process publish/subscribe with at-least-once delivery to every handler.

    Args:
        url: The embedded transport (``memory://`` by default; a ``memory:///path.db`` URL makes
            published events survive a crash).
        max_attempts: Tries per handler and event before the event is dead-lettered (>= 1).
        retry_delay: Seconds before the first retry; doubled on each further attempt.
        max_pending: Most published, not yet handled events; ``publish`` waits beyond it.
        on_error: Called as ``on_error(event, handler, exception, attempt)`` for every failure.
    """

    def __init__(
        self,
        *,
        url: str = "memory://",
        max_attempts: int = 5,
        retry_delay: float = 0.05,
        max_pending: int = 10_000,
        on_error: ErrorCallback | None = None,
    ) -> None:
        """Configure the bus; it starts on first use (or ``async with``)."""
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be a positive integer, got {max_attempts!r}")
        if not isinstance(retry_delay, int | float) or not math.isfinite(retry_delay) or retry_delay < 0:
            raise ConfigurationError(f"retry_delay must be a non-negative number, got {retry_delay!r}")
        if not url.startswith("memory:"):
            raise ConfigurationError(f"FeedbackEventBus runs on memory:// only, got {url!r}")
        self.max_attempts = max_attempts
        self.retry_delay = float(retry_delay)
        self.on_error = on_error
        # One partition: a single in-process dispatcher, so events are handled in publish order.
        self._bus = MemoryBus.from_url(url, partitions=1, max_backlog=max_pending, max_in_flight=256)
        self._handlers: list[Handler] = []
        self._done: dict[str, set[int]] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self._consumer: Consumer | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.dead_letters: deque[DeadLetter] = deque(maxlen=1000)
        """The most recent 1000 dead-lettered events."""
        self.failures = 0
        """How many handler calls raised (each is also logged and passed to ``on_error``)."""

    async def __aenter__(self) -> Self:
        """Start the bus."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Drain and close."""
        await self.aclose()

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Add ``handler`` (sync or async); return a function that unsubscribes it."""
        if not callable(handler):
            raise InvalidInputError("must be callable", field="handler")
        self._handlers.append(handler)
        return lambda: self.unsubscribe(handler)

    def unsubscribe(self, handler: Handler) -> None:
        """Remove ``handler``; unknown handlers are ignored."""
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    async def start(self) -> None:
        """Open the transport and start the dispatcher. Idempotent."""
        if self._dispatcher is None:
            await self._bus.start()
            self._consumer = await self._bus.consumer("feedback-event-bus", "dispatcher")
            self._dispatcher = asyncio.create_task(self._dispatch(), name="goalkeeper-feedback-event-bus")

    async def publish(self, event: Mapping[str, Any]) -> str:
        """Queue ``event`` for every handler; wait while ``max_pending`` events are unhandled.

        ``goal_id`` defaults to ``"default"`` and ``event_id`` to a fresh UUID; a duplicate
        ``event_id`` is recognised and not delivered twice.

        Returns:
            The event's ``event_id``.

        Raises:
            InvalidInputError: ``event`` is not a JSON-able mapping.
        """
        if not isinstance(event, Mapping):
            raise InvalidInputError(f"expected a mapping, got {type(event).__name__}", field="event")
        full = {"goal_id": "default", **event}
        full.setdefault("event_id", uuid.uuid4().hex)
        await self.start()
        self._outstanding += 1
        self._idle.clear()
        try:
            if not await self._bus.publish(full):
                self._settled()
        except BaseException:
            self._settled()
            raise
        return str(full["event_id"])

    async def join(self) -> None:
        """Wait until every published event was handled (or dead-lettered)."""
        await self._idle.wait()

    async def aclose(self) -> None:
        """Wait for outstanding events, then stop the dispatcher and close the transport."""
        if self._dispatcher is not None:
            await self.join()
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        await self._bus.close()

    def _settled(self) -> None:
        self._outstanding -= 1
        if self._outstanding <= 0:
            self._outstanding = 0
            self._idle.set()

    async def _dispatch(self) -> None:
        consumer = self._consumer
        if consumer is None:  # pragma: no cover - start() sets it first
            raise BusError("FeedbackEventBus is not started")
        while True:
            batch = await consumer.fetch(100, timeout=1.0)
            for delivery in batch:
                await self._deliver(consumer, delivery)

    async def _deliver(self, consumer: Consumer, delivery: Delivery) -> None:
        event, key = delivery.payload, delivery.event_id
        done = self._done.setdefault(key, set())
        retry: float | None = None
        for index, handler in enumerate(list(self._handlers)):
            if id(handler) in done:
                continue
            attempt = self._attempts.get((key, id(handler)), 0) + 1
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._report(event, handler, exc, attempt)
                if attempt >= self.max_attempts:
                    self.dead_letters.append(DeadLetter(event, _name(handler), repr(exc), attempt))
                    logger.error("feedback event %s dead-lettered after %d attempts", key, attempt)
                    done.add(id(handler))
                else:
                    self._attempts[(key, id(handler))] = attempt
                    delay = self.retry_delay * 2 ** (attempt - 1)
                    retry = delay if retry is None else min(retry, delay)
                continue
            done.add(id(handler))
            del index
        if retry is not None:
            await consumer.nack(delivery, delay=retry)
            return
        await consumer.ack(delivery)
        self._done.pop(key, None)
        for handler in self._handlers:
            self._attempts.pop((key, id(handler)), None)
        self._settled()

    def _report(self, event: dict[str, Any], handler: Handler, exc: Exception, attempt: int) -> None:
        self.failures += 1
        logger.warning(
            "feedback event handler %s failed on event %s (attempt %d of %d): %r",
            _name(handler), event.get("event_id"), attempt, self.max_attempts, exc,
        )  # fmt: skip
        if self.on_error is not None:
            try:
                self.on_error(event, handler, exc, attempt)
            except Exception:  # a broken error callback must not stop delivery
                logger.exception("FeedbackEventBus on_error callback failed")


def _name(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)
