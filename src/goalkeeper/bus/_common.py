"""Shared machinery of the bus backends: URL options, the event codec and the base classes.

The base classes hold what every backend does the same way (argument checks, the consumer's
in-flight bound, draining on close); a backend implements only the broker-specific calls
(``_fetch``, ``_ack``, ``_nack``, ``_touch``, ``_release``, ``_publish``). Third-party transports
need not inherit from them: the contract is the Protocol in :mod:`goalkeeper.ports.bus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from goalkeeper.errors import BusError, ConfigurationError, InvalidInputError
from goalkeeper.ports.bus import (
    DEFAULT_PARTITIONS,
    Batch,
    Delivery,
    EventLike,
    as_deliveries,
    partition_for,
)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class BusOptions:
    """Options every backend understands, read from the URL's query string.

    Example: ``redis://localhost:6379/0?partitions=32&prefix=prod&visibility_timeout=60``.
    """

    partitions: int = DEFAULT_PARTITIONS
    """Number of partitions (fixed per deployment; changing it re-keys goals)."""
    prefix: str = "goalkeeper"
    """Namespace of the streams, subjects or queue rows (letters, digits, ``_``, ``-``)."""
    visibility_timeout: float = 30.0
    """Seconds an unacked delivery stays with its consumer before it is redelivered to another."""
    max_in_flight: int = 1000
    """Most unacked deliveries one consumer holds (consumer-side backpressure)."""
    max_backlog: int = 100_000
    """Most stored, not yet acked events per partition; ``publish`` waits beyond it."""
    dedup_window: float = 120.0
    """Seconds during which a second publish of the same ``event_id`` is recognised and skipped."""
    reconnect_timeout: float = 30.0
    """Seconds an operation keeps retrying while the broker is unreachable before ``BusError``."""
    connect_timeout: float = 5.0
    """Seconds to wait for the first connection in ``start()``."""
    poll_interval: float = 0.05
    """``memory://`` only: how often a consumer looks for rows written by other processes."""

    def __post_init__(self) -> None:
        """Validate every field (``ConfigurationError`` names the bad one)."""
        if not _NAME.match(self.prefix):
            raise ConfigurationError(f"prefix must match {_NAME.pattern}, got {self.prefix!r}")
        for name in ("partitions", "max_in_flight", "max_backlog"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        if self.partitions > 4096:
            raise ConfigurationError(f"partitions must be at most 4096, got {self.partitions}")
        for name in ("visibility_timeout", "dedup_window", "reconnect_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
        if not math.isfinite(self.poll_interval) or self.poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be positive, got {self.poll_interval!r}")


_OPTION_TYPES: dict[str, type] = {f.name: (int if f.type == "int" else str if f.type == "str" else float)
                                  for f in fields(BusOptions)}  # fmt: skip


def split_options(url: str, overrides: Mapping[str, object]) -> tuple[str, BusOptions]:
    """Take goalkeeper's options out of ``url``'s query; return the rest of the URL and them.

    Query parameters that are not bus options stay in the URL for the driver (for example Redis's
    ``?ssl_cert_reqs=``). Keyword ``overrides`` (from ``open_bus(url, **options)``) win.

    Raises:
        ConfigurationError: an option has a bad value or an unknown keyword override was given.
    """
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    values: dict[str, object] = {}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTION_TYPES:
            try:
                values[key] = _OPTION_TYPES[key](raw)
            except ValueError:
                raise ConfigurationError(
                    f"bus option {key}={raw!r} is not a valid {_OPTION_TYPES[key].__name__}"
                ) from None
        else:
            kept.append((key, raw))
    for key, value in overrides.items():
        if key not in _OPTION_TYPES:
            close = difflib.get_close_matches(key, _OPTION_TYPES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigurationError(f"unknown bus option {key!r}{hint}")
        values[key] = value
    options = replace(BusOptions(), **values)  # type: ignore[arg-type]
    return urlunsplit(parts._replace(query=urlencode(kept))), options


def where(url: str, default_port: int) -> str:
    """``host:port`` of a broker URL, for error messages (never the credentials)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or default_port}"


def check_name(value: object, what: str) -> str:
    """Validate a group or consumer name (it becomes part of broker object names)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigurationError(f"{what} must match {_NAME.pattern}, got {value!r}")
    return value


class Outgoing(NamedTuple):
    """An event ready to publish: where it goes and its JSON text."""

    partition: int
    goal_id: str
    event_id: str
    data: str


def encode_event(event: EventLike, partitions: int) -> Outgoing:
    """Read ``goal_id`` and ``event_id`` from an event and serialise it (compact JSON).

    Raises:
        InvalidInputError: not a JSON object, not JSON-able, or ``goal_id``/``event_id`` missing.
    """
    if isinstance(event, bytes | str):
        try:
            obj = json.loads(event)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"not valid JSON: {exc}", field="event") from None
        if not isinstance(obj, dict):
            raise InvalidInputError("must be a JSON object", field="event")
        data = event.decode() if isinstance(event, bytes) else event
    elif isinstance(event, Mapping):
        obj = event
        try:
            data = json.dumps(dict(event), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"not JSON-serialisable: {exc}", field="event") from None
    else:
        raise InvalidInputError(f"expected a dict or JSON bytes, got {type(event).__name__}", field="event")
    goal_id, event_id = obj.get("goal_id"), obj.get("event_id")
    if not isinstance(goal_id, str) or not goal_id:
        raise InvalidInputError("must be a non-empty string", field="goal_id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidInputError("must be a non-empty string (parse_event assigns one)", field="event_id")
    return Outgoing(partition_for(goal_id, partitions), goal_id, event_id, data)


def decode_payload(data: str | bytes) -> dict[str, Any]:
    """The wire dict of a stored event."""
    value = json.loads(data)
    if not isinstance(value, dict):  # only our own encoder writes these, so this is corruption
        raise BusError("stored event is not a JSON object")
    return value


@contextlib.contextmanager
def translate_errors(what: str, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn a driver error into :class:`BusError` (the driver's exception kept as ``__cause__``)."""
    try:
        yield
    except errors as exc:
        raise BusError(f"{what}: {type(exc).__name__}: {exc}") from exc


def check_fetch_args(max_events: object, timeout: object) -> None:
    """Validate ``fetch``'s arguments."""
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
        raise InvalidInputError(f"must be a positive integer, got {max_events!r}", field="max_events")
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout < 0:
        raise InvalidInputError(f"must be a non-negative number, got {timeout!r}", field="timeout")


def check_delay(delay: object) -> float:
    """Validate ``nack``'s delay (seconds, finite, >= 0)."""
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
        raise InvalidInputError(f"must be a non-negative number of seconds, got {delay!r}", field="delay")
    return float(delay)


class ConsumerBase(ABC):
    """What every backend's consumer shares: the in-flight bound, bookkeeping and draining.

    Attributes:
        group: The consumer group.
        name: This member's name.
        partitions: The partitions it owns, ascending.
    """

    def __init__(self, group: str, name: str, partitions: tuple[int, ...], options: BusOptions) -> None:
        """Set up the bookkeeping; the backend subclass connects."""
        self.group = check_name(group, "group")
        self.name = check_name(name, "consumer name")
        self.partitions = partitions
        self.options = options
        self._held: dict[tuple[int, str], Delivery] = {}
        self._freed = asyncio.Event()
        self._closing = False

    @property
    def in_flight(self) -> int:
        """Deliveries handed out and not yet acked or nacked (at most ``max_in_flight``)."""
        return len(self._held)

    async def fetch(self, max_events: int = 100, *, timeout: float = 1.0) -> Batch:
        """Wait up to ``timeout`` seconds for events; return at most ``max_events`` of them.

        Never holds more than ``max_in_flight`` unacked deliveries: when the bound is reached it
        waits for an ack (up to ``timeout``) and returns an empty batch if none comes.

        Raises:
            InvalidInputError: bad ``max_events`` or ``timeout``.
            BusError: the consumer is closed, or the broker stayed unreachable.
        """
        check_fetch_args(max_events, timeout)
        if self._closing:
            raise BusError(f"consumer {self.name!r} of group {self.group!r} is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._held) >= self.options.max_in_flight:
            self._freed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Batch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), remaining)
        room = min(max_events, self.options.max_in_flight - len(self._held))
        got = await self._fetch(room, deadline)
        for delivery in got:
            self._held[(delivery.partition, delivery.id)] = delivery
        # A stable sort groups the batch by partition without reordering within one.
        return Batch(tuple(sorted(got, key=lambda d: d.partition)))

    async def ack(self, deliveries: Delivery | Iterable[Delivery]) -> None:
        """Mark deliveries done; call it after the work is committed. Acking twice is harmless."""
        items = as_deliveries(deliveries)
        if items:
            await self._ack(items)
            self._forget(items)

    async def nack(self, deliveries: Delivery | Iterable[Delivery], *, delay: float = 0.0) -> None:
        """Give deliveries back: any consumer owning the partition gets them after ``delay`` s.

        ``delay`` is capped at the visibility timeout (an entry idle that long is redelivered
        anyway on the brokers that cannot schedule further ahead).
        """
        seconds = min(check_delay(delay), self.options.visibility_timeout)
        items = as_deliveries(deliveries)
        if items:
            await self._nack(items, seconds)
            self._forget(items)

    async def in_progress(self, deliveries: Delivery | Iterable[Delivery]) -> None:
        """Restart the visibility timeout of deliveries that are still being worked on."""
        items = as_deliveries(deliveries)
        if items:
            await self._touch(items)

    async def close(self, *, drain_timeout: float = 5.0) -> None:
        """Stop fetching, wait up to ``drain_timeout`` s for outstanding acks, release the rest.

        Released deliveries become available to other consumers at once (not after the
        visibility timeout). Idempotent.
        """
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, drain_timeout)
        while self._held and loop.time() < deadline:
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), deadline - loop.time())
        leftover = list(self._held.values())
        self._held.clear()
        await self._shutdown(leftover)

    def _forget(self, items: list[Delivery]) -> None:
        for delivery in items:
            self._held.pop((delivery.partition, delivery.id), None)
        self._freed.set()

    @abstractmethod
    async def _fetch(self, room: int, deadline: float) -> list[Delivery]:
        """Return up to ``room`` deliveries, waiting until ``deadline`` (loop time) for the first."""

    @abstractmethod
    async def _ack(self, items: list[Delivery]) -> None:
        """Acknowledge deliveries at the broker."""

    @abstractmethod
    async def _nack(self, items: list[Delivery], delay: float) -> None:
        """Make deliveries redeliverable after ``delay`` seconds."""

    @abstractmethod
    async def _touch(self, items: list[Delivery]) -> None:
        """Restart the deliveries' visibility timeout."""

    @abstractmethod
    async def _shutdown(self, leftover: list[Delivery]) -> None:
        """Release ``leftover`` for immediate redelivery and free the consumer's resources."""


class TransportBase(ABC):
    """What every backend's transport shares: argument checks, consumers, context management.

    Attributes:
        url: The URL the transport was opened with.
        partitions: The number of partitions.
        options: All options, parsed from the URL.
    """

    def __init__(self, url: str, options: BusOptions) -> None:
        """Record the options; nothing connects until :meth:`start`."""
        self.url = url
        self.options = options
        self.partitions = options.partitions
        self._consumers: list[ConsumerBase] = []
        self._started = False
        self._closed = False

    async def __aenter__(self) -> Self:
        """Start the transport."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the transport (draining)."""
        await self.close()

    async def start(self) -> None:
        """Connect and create missing streams/tables. Idempotent.

        Raises:
            BusError: the broker is unreachable.
        """
        if self._closed:
            raise BusError("transport is closed")
        if not self._started:
            await self._start()
            self._started = True

    async def publish(self, event: EventLike) -> bool:
        """Publish one event (see :meth:`goalkeeper.ports.bus.Transport.publish`)."""
        return await self.publish_many([event]) == 1

    async def publish_many(self, events: Iterable[EventLike]) -> int:
        """Publish events in order, batched; wait while a partition is full.

        Every event is validated before any is sent, so a bad event publishes nothing.

        Returns:
            How many events were new (not recognised as duplicates).

        Raises:
            InvalidInputError: an event is not a JSON object with ``goal_id`` and ``event_id``.
            BusError: the broker stayed unreachable for ``reconnect_timeout`` seconds.
        """
        batch = [encode_event(event, self.partitions) for event in events]
        await self.start()
        return await self._publish(batch) if batch else 0

    async def consumer(
        self, group: str, name: str, *, partitions: Iterable[int] | None = None
    ) -> ConsumerBase:
        """A member ``name`` of ``group`` that owns ``partitions`` (default: all).

        Give each worker process a disjoint set of partitions to keep per-goal order (one owner
        per partition); two members owning one partition share it, as in a plain queue.
        """
        check_name(group, "group")
        check_name(name, "consumer name")
        owned = tuple(range(self.partitions)) if partitions is None else tuple(sorted(set(partitions)))
        if not owned or any(isinstance(p, bool) or not isinstance(p, int) for p in owned):
            raise ConfigurationError(f"partitions must be a non-empty set of integers, got {partitions!r}")
        if owned[0] < 0 or owned[-1] >= self.partitions:
            raise ConfigurationError(f"partitions must lie in [0, {self.partitions}), got {owned!r}")
        await self.start()
        made = await self._consumer(group, name, owned)
        self._consumers.append(made)
        return made

    async def close(self) -> None:
        """Close consumers (each drains), finish publishing and disconnect. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for consumer in self._consumers:
            await consumer.close()
        if self._started:
            await self._close()

    @abstractmethod
    async def _start(self) -> None:
        """Connect."""

    @abstractmethod
    async def _publish(self, batch: list[Outgoing]) -> int:
        """Store the events in order; return how many were new."""

    @abstractmethod
    async def _consumer(self, group: str, name: str, partitions: tuple[int, ...]) -> ConsumerBase:
        """Make a consumer."""

    @abstractmethod
    async def _close(self) -> None:
        """Disconnect."""
