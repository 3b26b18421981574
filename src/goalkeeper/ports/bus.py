"""The ``Transport`` port: how events travel from publishers to the worker.

A transport carries events (wire dicts of :mod:`goalkeeper.events`, or their JSON bytes) keyed by
``goal_id``. It is deliberately ignorant of the domain: it reads only ``goal_id`` (the partition
key) and ``event_id`` (the idempotency key) from each event and hands the rest through untouched.

Contract, shared by every backend (``memory://``, ``redis://``, ``nats://``) and checked by one
test suite in ``tests/contract/bus``:

* :meth:`Transport.publish` routes an event to partition :func:`partition_for` ``(goal_id, n)``.
  When the partition's backlog is full it *waits* (backpressure); it never drops an event.
* A :class:`Consumer` of a named *group* owns a set of partitions and fetches :class:`Batch` es,
  at most ``max_in_flight`` unacknowledged deliveries at a time. Within one partition, deliveries
  come in publish order (a redelivery may come back after newer events: see ``redelivered``).
* ``ack`` after the work is committed; ``nack(delay=...)`` asks for a redelivery later;
  ``in_progress`` extends the ack deadline of long work. A delivery that is neither acked nor
  touched within the visibility timeout (its consumer died) is redelivered to any consumer of the
  same group that owns the partition: at-least-once.
* ``close()`` drains: it waits for handed-out deliveries to be acked (up to a timeout) and releases
  the rest for redelivery.

Third parties implement these Protocols without inheriting anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, overload, runtime_checkable

from goalkeeper.core.text import stable_hash
from goalkeeper.errors import ConfigurationError, InvalidInputError

__all__ = [
    "DEFAULT_PARTITIONS",
    "Batch",
    "Consumer",
    "Delivery",
    "EventLike",
    "Transport",
    "as_deliveries",
    "partition_for",
]

DEFAULT_PARTITIONS = 16
"""Partitions per transport unless the URL says otherwise (``?partitions=N``).

The count is fixed per deployment: changing it re-keys goals to other partitions, so it needs a
drain first. 16 lets up to 16 worker processes share the load.
"""

EventLike = Mapping[str, Any] | bytes | str
"""What :meth:`Transport.publish` accepts: a wire dict, or its JSON text (``str`` or ``bytes``)."""


def partition_for(goal_id: str, partitions: int) -> int:
    """The partition that carries every event of ``goal_id``.

    Uses a stable BLAKE2b hash (:func:`goalkeeper.core.text.stable_hash`), never Python's salted
    ``hash()``: every process, on every machine, must agree on it.

    Args:
        goal_id: The goal's id (non-empty).
        partitions: The number of partitions (>= 1).

    Returns:
        An integer in ``[0, partitions)``.

    Raises:
        InvalidInputError: ``goal_id`` is not a non-empty string.
        ConfigurationError: ``partitions`` is not a positive integer.
    """
    if not isinstance(goal_id, str) or not goal_id:
        raise InvalidInputError("must be a non-empty string", field="goal_id")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ConfigurationError(f"partitions must be a positive integer, got {partitions!r}")
    return int(stable_hash(goal_id, 16), 16) % partitions


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of one event to one consumer.

    Attributes:
        partition: The partition the event was published to.
        id: The backend's position of the event in its partition (a SQLite row id, a Redis stream
            entry id, a JetStream stream sequence), as text. Unique within the partition.
        goal_id: The event's goal.
        event_id: The event's idempotency key; a duplicate publish carries the same one.
        payload: The event as a wire dict.
        redelivered: How many times this event was delivered before this delivery (0 the first
            time). Non-zero means an earlier consumer died, nacked or timed out.
    """

    partition: int
    id: str
    goal_id: str
    event_id: str
    payload: dict[str, Any] = field(compare=False)
    redelivered: int = 0


@dataclass(frozen=True, slots=True)
class Batch(Sequence[Delivery]):
    """The deliveries returned by one :meth:`Consumer.fetch`, in partition order.

    Attributes:
        deliveries: The deliveries; within a partition, in the order the backend delivered them.
    """

    deliveries: tuple[Delivery, ...] = ()

    def __len__(self) -> int:
        """Number of deliveries."""
        return len(self.deliveries)

    def __iter__(self) -> Iterator[Delivery]:
        """Iterate over the deliveries."""
        return iter(self.deliveries)

    @overload
    def __getitem__(self, index: int) -> Delivery: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Delivery]: ...
    def __getitem__(self, index: int | slice) -> Delivery | Sequence[Delivery]:
        """The delivery (or deliveries) at ``index``."""
        return self.deliveries[index]

    @property
    def event_ids(self) -> list[str]:
        """The event ids, in delivery order."""
        return [d.event_id for d in self.deliveries]


def as_deliveries(deliveries: Delivery | Iterable[Delivery]) -> list[Delivery]:
    """Normalise the argument of ``ack``/``nack``/``in_progress``: one delivery or many.

    Raises:
        InvalidInputError: something other than a :class:`Delivery` was passed.
    """
    items = [deliveries] if isinstance(deliveries, Delivery) else list(deliveries)
    for item in items:
        if not isinstance(item, Delivery):
            raise InvalidInputError(f"expected Delivery, got {type(item).__name__}", field="deliveries")
    return items


@runtime_checkable
class Consumer(Protocol):
    """A member of a consumer group, owning a fixed set of partitions.

    Attributes:
        group: The consumer group; members of one group share the work and its acknowledgements.
        name: This member's name, unique within the group.
        partitions: The partitions this member fetches from.
    """

    group: str
    name: str
    partitions: tuple[int, ...]

    @property
    def in_flight(self) -> int:
        """Deliveries handed out by ``fetch`` and not yet acked or nacked (<= max_in_flight)."""
        ...

    async def fetch(self, max_events: int = 100, *, timeout: float = 1.0) -> Batch:
        """Wait up to ``timeout`` seconds for events; return at most ``max_events`` of them.

        Returns an empty batch on timeout, and also when ``max_in_flight`` deliveries are
        unacknowledged (backpressure on the consumer side).
        """
        ...

    async def ack(self, deliveries: Delivery | Iterable[Delivery]) -> None:
        """Mark deliveries done (call after the work is committed). Acking twice is harmless."""
        ...

    async def nack(self, deliveries: Delivery | Iterable[Delivery], *, delay: float = 0.0) -> None:
        """Give deliveries back for redelivery after ``delay`` seconds."""
        ...

    async def in_progress(self, deliveries: Delivery | Iterable[Delivery]) -> None:
        """Restart the ack deadline (visibility timeout) of deliveries still being worked on."""
        ...

    async def close(self, *, drain_timeout: float = 5.0) -> None:
        """Stop fetching; wait up to ``drain_timeout`` for acks; release what is left."""
        ...


@runtime_checkable
class Transport(Protocol):
    """An event bus with partitions, consumer groups and at-least-once delivery.

    Attributes:
        url: The URL the transport was opened with (credentials included: do not log it).
        partitions: The number of partitions.
    """

    url: str
    partitions: int

    async def start(self) -> None:
        """Connect and create what is missing (streams, tables). Idempotent.

        Raises:
            BusError: the broker is unreachable (the message names the address).
        """
        ...

    async def publish(self, event: EventLike) -> bool:
        """Publish one event; wait (backpressure) while its partition is full.

        Returns:
            ``True`` if the event was stored, ``False`` if the backend recognised it as a
            duplicate of an ``event_id`` published within the dedup window.
        """
        ...

    async def publish_many(self, events: Iterable[EventLike]) -> int:
        """Publish events in order (batched); return how many were new (not duplicates)."""
        ...

    async def consumer(self, group: str, name: str, *, partitions: Iterable[int] | None = None) -> Consumer:
        """A member ``name`` of ``group`` owning ``partitions`` (default: all of them)."""
        ...

    async def close(self) -> None:
        """Finish pending publishes, close consumers (draining) and disconnect. Idempotent."""
        ...

    async def __aenter__(self) -> Self:
        """Start the transport."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the transport."""
        ...
