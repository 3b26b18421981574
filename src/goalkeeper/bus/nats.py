"""``nats://``: NATS JetStream with a subject per partition and durable pull consumers.

Layout under ``prefix`` (default ``goalkeeper``):

* one stream ``{prefix}_bus_{partition}`` per partition, on subject ``{prefix}.bus.{partition}``
  (file storage, work-queue retention: an acked message is removed, so the stored messages are the
  backlog). One stream per partition rather than one filtered stream: a filtered consumer on a
  shared stream scans past the other partitions' messages, which made draining a backlog ~7x
  slower on nats-server 2.9;
* durable pull consumer ``{group}_{partition}`` per group and partition, ``ack_wait`` =
  ``visibility_timeout``, ``max_ack_pending`` = ``max_in_flight``.

Publishing sets ``Nats-Msg-Id`` to the ``event_id``, so the server drops a duplicate within the
stream's ``duplicate_window`` (= ``dedup_window``). Backpressure: a partition's stream keeps at
most ``max_backlog`` messages and rejects new ones beyond that (``discard new``); the publisher
then waits and retries, in order. Publishes to one partition go in windows only while the stream
has room for the whole window, one by one otherwise, so a retry can never reorder a goal's events;
different partitions go in parallel.

Work-queue retention allows one consumer group per stream; use another ``prefix`` for a second
group. The server redelivers a message nobody acked within ``ack_wait`` (its consumer died);
``in_progress`` sends a "+WPI" to extend it, ``nack(delay)`` a delayed "-NAK".

Redelivery order: JetStream hands out a message that is due again (nacked, or not acked within
``ack_wait``) before new ones, but in the order the messages *came due*, not in publish order: a
message nacked with a longer delay, or delivered a little later to a consumer that died, comes back
after newer ones. :meth:`NatsJetStreamBus.rewind` is the way back to publish order for the sole
owner of a partition (the worker calls it for every consumer it builds): it deletes the group's
durable consumer, and since a work-queue stream stores exactly the messages not acked yet, the
next consumer delivers all of them from the oldest, in publish order, before anything newer.

Deliveries lost in transit: when the connection is cut while the server sends the messages of a pull
request, they stay pending at the server and come back only after ``ack_wait``. A consumer delivers
new messages in stream order, so the loss shows as a gap: after a reconnect, a first delivery whose
stream sequence is beyond the next one expected. The consumer then holds back that partition's new
deliveries (keeping them alive with "+WPI") until every message of the gap has come back (as a
redelivery, handed out at once) and releases them after it, in order; a message of the gap that
never comes back (another member of the group took it) stops the hold after twice ``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NotFoundError

from goalkeeper.bus._common import (
    BusOptions,
    ConsumerBase,
    Outgoing,
    TransportBase,
    check_name,
    decode_payload,
    split_options,
    translate_errors,
    where,
)
from goalkeeper.errors import BusError
from goalkeeper.ports.bus import Delivery

__all__ = ["NatsJetStreamBus"]

_ERRORS = (NatsError, OSError, TimeoutError)
_PULL = 256  # most messages one pull request asks for
_WINDOW = 64  # publishes of one partition in flight at once
_PULL_EXPIRES = 0.5  # seconds a pull request waits at the server for messages


class NatsConsumer(ConsumerBase):
    """A member of a group: one puller task per owned partition fills a local buffer.

    Each puller sends its own pull requests (``$JS.API.CONSUMER.MSG.NEXT``) and receives the
    messages on an inbox subscription as they arrive, so a lightly loaded partition is delivered at
    once instead of when a batch fills. Pullers ask only while a ``fetch`` is waiting (a consumer
    that stopped fetching does not attract redeliveries), for at most
    ``max_in_flight / partitions`` messages each: the consumer hands out at most ``max_in_flight``
    and receives at most twice that.
    """

    def __init__(self, bus: NatsJetStreamBus, group: str, name: str, partitions: tuple[int, ...]) -> None:
        """Bind to ``bus``; :meth:`setup` creates the durable consumers and starts pulling."""
        super().__init__(group, name, partitions, bus.options)
        self._bus = bus
        self._buffer: deque[tuple[int, Msg]] = deque()
        self._msgs: dict[tuple[int, str], Msg] = {}
        self._arrived = asyncio.Event()
        self._demand = asyncio.Event()
        self._draining = False
        self._open: dict[int, int] = dict.fromkeys(partitions, 0)
        self._ended: dict[int, asyncio.Event] = {p: asyncio.Event() for p in partitions}
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        # Share the in-flight bound evenly so one busy partition cannot starve the others.
        self._per_pull = max(1, min(_PULL, self.options.max_in_flight // len(partitions)))
        # Lost in transit (see the module docstring), per partition: the stream sequence of the
        # newest first delivery seen, the client's reconnect count then, the sequences of a gap
        # not back yet, the new deliveries held back behind them, and when to stop waiting.
        self._newest: dict[int, int] = dict.fromkeys(partitions, 0)
        self._reconnects: dict[int, int] = dict.fromkeys(partitions, 0)
        self._missing: dict[int, set[int]] = {}
        self._waiting: dict[int, list[Msg]] = {}
        self._give_up: dict[int, float] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._touching: set[asyncio.Task[None]] = set()

    async def setup(self) -> None:
        """Create (or bind to) a durable pull consumer per partition and start its puller."""
        bus = self._bus
        for part in self.partitions:
            durable = f"{self.group}_{part}"
            config = ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.options.visibility_timeout,
                max_ack_pending=self.options.max_in_flight,
                max_deliver=-1,
                filter_subject=bus.subject(part),
            )
            with translate_errors(f"nats: creating consumer {durable} failed", _ERRORS):
                try:
                    info = await bus.js.add_consumer(bus.stream(part), config)
                except BadRequestError:
                    # Exists with other settings: use it.
                    info = await bus.js.consumer_info(bus.stream(part), durable)
                self._newest[part] = info.delivered.stream_seq if info.delivered else 0
                self._reconnects[part] = bus.nc.stats["reconnects"]
                inbox = bus.nc.new_inbox()
                sub = await bus.nc.subscribe(inbox, cb=self._receiver(part))
            self._subs.append(sub)
            self._tasks.append(
                asyncio.create_task(self._pull(part, durable, inbox), name=f"goalkeeper-nats-pull-{part}")
            )

    def _receiver(self, part: int) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            if msg.headers and msg.headers.get("Status"):
                # 404/408/409: this pull request is over (no messages, expired, or interrupted).
                self._ended[part].set()
                return
            if self._draining:
                # Closing: a request still open at the server delivered this; hand it back at once.
                with contextlib.suppress(*_ERRORS):
                    await msg.nak()
                return
            self._admit(part, msg)
            self._open[part] = max(0, self._open[part] - 1)
            if self._open[part] == 0:
                self._ended[part].set()
            self._arrived.set()

        return receive

    def _admit(self, part: int, msg: Msg) -> None:
        """Buffer a received message, or hold it back behind deliveries lost in transit."""
        meta = msg.metadata
        seq, missing = meta.sequence.stream, self._missing.get(part)
        if missing is not None:
            missing.discard(seq)
        if meta.num_delivered == 1:
            reconnects = self._bus.nc.stats["reconnects"]
            if seq > self._newest[part] + 1 and reconnects != self._reconnects[part]:
                # New deliveries come in stream order: those between the newest one we got before
                # the reconnect and this one were lost in transit (at most max_in_flight of them,
                # the server's max_ack_pending) and are redelivered after ack_wait. Hold back.
                first = max(self._newest[part] + 1, seq - self.options.max_in_flight)
                self._missing.setdefault(part, set()).update(range(first, seq))
                self._give_up[part] = (
                    asyncio.get_running_loop().time() + 2 * self.options.visibility_timeout + 1.0
                )
                if self._keeper is None or self._keeper.done():
                    self._keeper = asyncio.create_task(self._keep_waiting(), name="goalkeeper-nats-held")
            self._reconnects[part] = reconnects
            self._newest[part] = max(self._newest[part], seq)
            if self._missing.get(part):
                self._waiting.setdefault(part, []).append(msg)
                return
        self._buffer.append((part, msg))
        if part in self._missing and not self._missing[part]:
            self._release(part)

    def _release(self, part: int) -> None:
        """The lost deliveries of ``part`` are back (or given up on): hand out what waited."""
        self._missing.pop(part, None)
        self._give_up.pop(part, None)
        waiting = self._waiting.pop(part, [])
        self._buffer.extend((part, msg) for msg in waiting)
        for msg in waiting:  # a full ack_wait from now, as if just delivered
            self._touch_later(msg)

    def _touch_later(self, msg: Msg) -> None:
        task = asyncio.create_task(self._quietly(msg.in_progress()))
        self._touching.add(task)
        task.add_done_callback(self._touching.discard)

    @staticmethod
    async def _quietly(call: Awaitable[None]) -> None:
        with contextlib.suppress(*_ERRORS):
            await call

    async def _keep_waiting(self) -> None:
        """While deliveries are held back: keep them from timing out, and stop waiting when due."""
        loop = asyncio.get_running_loop()
        every = self.options.visibility_timeout / 3
        while self._missing and not self._draining:
            until = min(self._give_up.values(), default=loop.time())
            await asyncio.sleep(max(0.01, min(every, until - loop.time())))
            now = loop.time()
            for part in [p for p, t in self._give_up.items() if t <= now]:
                self._release(part)
                self._arrived.set()
            for msgs in self._waiting.values():
                for msg in msgs:
                    await self._quietly(msg.in_progress())

    async def _pull(self, part: int, durable: str, inbox: str) -> None:
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self._bus.stream(part)}.{durable}"
        # A flag, not only cancel(): Python 3.11's wait_for can swallow a cancellation that races
        # with the awaited event, which would leave the puller running after close.
        while not self._draining:
            await self._demand.wait()
            if self._draining:
                return
            room = self.options.max_in_flight - self.in_flight - len(self._buffer)
            if room <= 0:
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), _PULL_EXPIRES)
                continue
            want = min(room, self._per_pull)
            self._open[part] = want
            self._ended[part].clear()
            request = {"batch": want, "expires": int(_PULL_EXPIRES * 1e9)}
            try:
                await self._bus.nc.publish(subject, json.dumps(request).encode(), reply=inbox)
                # A request lost in a reconnect never ends by itself: give up on it a bit later.
                await asyncio.wait_for(self._ended[part].wait(), _PULL_EXPIRES + 0.5)
            except (TimeoutError, *_ERRORS):
                await asyncio.sleep(0.05)

    def _delivery(self, part: int, msg: Msg) -> Delivery:
        payload = decode_payload(msg.data)
        meta = msg.metadata
        delivery = Delivery(
            part, str(meta.sequence.stream), str(payload.get("goal_id", "")),
            str(payload.get("event_id", "")), payload, max(0, meta.num_delivered - 1),
        )  # fmt: skip
        self._msgs[(part, delivery.id)] = msg
        return delivery

    async def _fetch(self, room: int, deadline: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        self._demand.set()
        try:
            while not self._buffer:
                self._arrived.clear()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
        finally:
            self._demand.clear()
        out: list[Delivery] = []
        while self._buffer and len(out) < room:
            part, msg = self._buffer.popleft()
            out.append(self._delivery(part, msg))
        return out

    async def _each(self, items: list[Delivery], action: str, forget: bool, **kwargs: Any) -> None:
        with translate_errors(f"nats: {action} failed", _ERRORS):
            for d in items:
                key = (d.partition, d.id)
                msg = self._msgs.pop(key, None) if forget else self._msgs.get(key)
                if msg is not None:
                    await getattr(msg, action)(**kwargs)

    async def _ack(self, items: list[Delivery]) -> None:
        await self._each(items, "ack", True)

    async def _nack(self, items: list[Delivery], delay: float) -> None:
        await self._each(items, "nak", True, delay=delay or None)

    async def _touch(self, items: list[Delivery]) -> None:
        await self._each(items, "in_progress", False)

    async def _shutdown(self, leftover: list[Delivery]) -> None:
        self._draining = True
        open_requests = [part for part in self.partitions if not self._ended[part].is_set()]
        self._demand.set()
        self._freed.set()
        tasks = [*self._tasks, *([self._keeper] if self._keeper else []), *self._touching]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Buffered or held back but never handed out: give them back at once, not after ack_wait.
        held = [(part, msg) for part, msgs in self._waiting.items() for msg in msgs]
        unsent = [self._delivery(part, msg) for part, msg in [*self._buffer, *held]]
        self._buffer.clear()
        self._waiting.clear()
        self._missing.clear()
        with contextlib.suppress(BusError):
            await self._nack(leftover + unsent, 0.0)
        # Keep the inbox until the open pull requests expire, so what they still deliver is
        # naked back (by the receiver) instead of sitting unacked until ack_wait.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(self._ended[p].wait() for p in open_requests)), _PULL_EXPIRES + 0.5
            )
        for sub in self._subs:
            with contextlib.suppress(*_ERRORS):
                await sub.unsubscribe()
        with contextlib.suppress(*_ERRORS):
            await self._bus.nc.flush(timeout=2)


class NatsJetStreamBus(TransportBase):
    """NATS JetStream transport: subject per partition, durable pull consumers, Nats-Msg-Id dedup.

    Args:
        url: The ``nats://`` URL (bus options already removed from its query).
        options: Bus options.
        client: An existing connected ``nats.aio.client.Client`` to use instead of connecting.
            The bus does not close a client it was given.
    """

    def __init__(self, url: str, options: BusOptions, client: Client | None = None) -> None:
        """Prefer :meth:`from_url`."""
        super().__init__(url, options)
        self._nc = client
        self._own_client = client is None
        self._js: JetStreamContext | None = None

    @classmethod
    def from_url(cls, url: str, **options: object) -> NatsJetStreamBus:
        """Open ``nats://[user:pass@]host[:port][?bus options]``."""
        rest, parsed = split_options(url, options)
        return cls(rest, parsed)

    @property
    def nc(self) -> Client:
        """The NATS connection (after :meth:`start`)."""
        if self._nc is None:
            raise BusError("nats bus is not started")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context (after :meth:`start`)."""
        if self._js is None:
            raise BusError("nats bus is not started")
        return self._js

    def subject(self, partition: int) -> str:
        """The subject of ``partition``."""
        return f"{self.options.prefix}.bus.{partition}"

    def stream(self, partition: int) -> str:
        """The stream of ``partition``."""
        return f"{self.options.prefix}_bus_{partition}"

    async def _start(self) -> None:
        async def quiet(exc: Exception) -> None:
            # Reconnection is automatic; failures that matter surface as BusError on the next call.
            return None

        if self._nc is None:
            try:
                # nats-py may keep retrying the first connection; bound it ourselves.
                self._nc = await asyncio.wait_for(
                    nats.connect(
                        urlsplit(self.url)._replace(query="").geturl(),
                        connect_timeout=self.options.connect_timeout,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.25,
                        error_cb=quiet,
                    ),
                    self.options.connect_timeout * 2,
                )
            except (*_ERRORS, ValueError) as exc:
                raise BusError(
                    f"cannot reach NATS at {where(self.url, 4222)}: {type(exc).__name__}: {exc}"
                ) from exc
        self._js = self.nc.jetstream()
        for part in range(self.partitions):
            await self._ensure_stream(part)

    async def _ensure_stream(self, part: int) -> None:
        config = StreamConfig(
            name=self.stream(part),
            subjects=[self.subject(part)],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            max_msgs=self.options.max_backlog,
            discard=DiscardPolicy.NEW,
            duplicate_window=self.options.dedup_window,
        )
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            # The stream exists with other settings (e.g. an earlier max_backlog): use it as is.
            with translate_errors(f"nats: stream {config.name} unusable", _ERRORS):
                await self.js.stream_info(self.stream(part))
        except _ERRORS as exc:
            raise BusError(
                f"nats: creating stream {config.name} failed (is JetStream enabled?): {exc}"
            ) from exc

    async def _publish_one(self, row: Outgoing) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.reconnect_timeout
        delay = 0.005
        while True:
            try:
                ack = await self.js.publish(
                    self.subject(row.partition), row.data.encode(), timeout=2.0,
                    headers={"Nats-Msg-Id": row.event_id},
                )  # fmt: skip
                return 0 if ack.duplicate else 1
            except APIError as exc:
                full = "maximum messages" in str(exc.description)
                if not full and (exc.code != 503 or loop.time() > deadline):
                    raise BusError(f"nats: publish to {self.subject(row.partition)} failed: {exc}") from exc
                # Partition full (backpressure: wait as long as it takes) or JetStream not ready yet.
            except _ERRORS as exc:
                if self.nc.is_closed or loop.time() > deadline:
                    raise BusError(
                        f"nats: publish failed, server unreachable at {where(self.url, 4222)}: {exc}"
                    ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _publish_partition(self, rows: list[Outgoing]) -> int:
        """Publish one partition's rows in order, a window at a time.

        A window is sent concurrently (one connection keeps them in order on the wire) only when
        the stream has room for all of it; otherwise rows go one by one, so a "stream full"
        rejection can never let a later row overtake an earlier one.
        """
        new, i = 0, 0
        while i < len(rows):
            size = min(_WINDOW, len(rows) - i)
            if size > 1:
                try:
                    info = await self.js.stream_info(self.stream(rows[i].partition))
                    stored = info.state.messages
                except _ERRORS:
                    stored = self.options.max_backlog  # unknown (reconnecting): go one by one, retrying
                if stored + size > self.options.max_backlog:
                    size = 1
            window = rows[i : i + size]
            new += sum(await asyncio.gather(*(self._publish_one(row) for row in window)))
            i += size
        return new

    async def _publish(self, batch: list[Outgoing]) -> int:
        by_partition: dict[int, list[Outgoing]] = {}
        for row in batch:
            by_partition.setdefault(row.partition, []).append(row)
        return sum(await asyncio.gather(*(self._publish_partition(rows) for rows in by_partition.values())))

    async def rewind(self, group: str, partitions: Iterable[int]) -> None:
        """Start ``group`` over on ``partitions`` at their oldest unacknowledged event.

        Deletes the group's durable consumer of each partition; the next :meth:`consumer` creates
        it anew, and it delivers every message still stored (the work queue keeps exactly the
        unacknowledged ones) from the oldest, in publish order, at once: deliveries a dead consumer
        held, or that were nacked with a delay, no longer come back later than newer events.
        Their ``redelivered`` count starts over at 0.

        Only for the sole owner of the partitions (a worker holding their leases), after its own
        consumer of them is closed: another live consumer of them would lose its unacknowledged
        deliveries (they are delivered again, at least once) and its acks of them.

        Raises:
            BusError: the server is unreachable or refused.
        """
        await self.start()
        for part in sorted(set(partitions)):
            durable = f"{check_name(group, 'group')}_{part}"
            # NotFoundError: never consumed yet, nothing to rewind.
            with (
                translate_errors(f"nats: rewinding consumer {durable} failed", _ERRORS),
                contextlib.suppress(NotFoundError),
            ):
                await self.js.delete_consumer(self.stream(part), durable)

    async def _consumer(self, group: str, name: str, partitions: tuple[int, ...]) -> NatsConsumer:
        consumer = NatsConsumer(self, group, name, partitions)
        await consumer.setup()
        return consumer

    async def _close(self) -> None:
        if self._own_client and self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(*_ERRORS):
                await self._nc.drain()
