"""``redis://``: Redis Streams with consumer groups (Redis >= 6.2; the project targets Redis 7).

Layout under ``prefix`` (default ``goalkeeper``)::

    {prefix}:bus:{partition}       one stream per partition (fields g=goal_id, e=event_id, d=JSON)
    {prefix}:bus:seen:{event_id}   dedup marker, expires after dedup_window seconds

* Publishing runs one Lua script per event (pipelined): it sets the dedup marker with ``SET NX EX``
  and appends with ``XADD`` only if the marker was new, atomically, and returns the stream length
  for backpressure.
* Consumers read with ``XREADGROUP`` (one call for all owned partitions) and reclaim deliveries of
  dead consumers with ``XAUTOCLAIM`` once they are idle for ``visibility_timeout``.
* A fetch whose reply is lost in transit (the connection cut after Redis executed ``XREADGROUP >``
  or ``XAUTOCLAIM``) leaves entries in this consumer's own pending list that it never saw. The
  consumer's reads therefore go through a client of their own that the driver never retries: after
  any connection error (or a cancelled read) the consumer first re-reads its own pending list
  (``XREADGROUP ... STREAMS key 0``) and hands out, oldest first and marked redelivered, the entries
  it neither holds nor gave back, and only then reads ``>`` again: newer entries never overtake
  the lost ones.
* ``ack`` runs ``XACK`` and then trims the stream below the oldest entry any group still needs
  (``XINFO GROUPS`` + ``XPENDING`` + ``XTRIM MINID`` in one script), so several groups can share
  the streams safely and the stream length stays the real backlog.
* ``nack(delay)`` sets the entry's idle time to ``visibility_timeout - delay`` (``XCLAIM IDLE``),
  so ``XAUTOCLAIM`` hands it out again after ``delay``; ``in_progress`` resets it to 0.

Durability is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` (or ``everysec``
and accept losing up to a second of acked publishes on a crash of the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from goalkeeper.bus._common import (
    BusOptions,
    ConsumerBase,
    Outgoing,
    TransportBase,
    decode_payload,
    split_options,
    translate_errors,
    where,
)
from goalkeeper.errors import BusError
from goalkeeper.ports.bus import Delivery

__all__ = ["RedisStreamsBus"]

_ERRORS = (RedisError, OSError)
# The connection broke: the command may have run at the server with its reply lost.
_CUT = (RedisConnectionError, RedisTimeoutError, OSError)
_LOST = object()  # a read whose reply was lost (see RedisStreamsConsumer._once)
_PEL_PAGE = 200  # pending entries per XREADGROUP history read
_CHUNK = 500  # rows per pipeline: also the most a partition can overshoot max_backlog by

_PUBLISH = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  redis.call('XADD', KEYS[1], '*', 'g', ARGV[1], 'e', ARGV[2], 'd', ARGV[3])
  return redis.call('XLEN', KEYS[1])
end
return -1
"""

# XACK, then trim everything below the oldest entry some group still needs: its oldest pending
# entry, or the entry after the last one it read. Stream ids compare as (ms, seq) pairs.
_ACK_AND_TRIM = """
redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local floor_ms, floor_seq = nil, nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local ms, seq
  if info['pending'] > 0 then
    ms, seq = split(redis.call('XPENDING', KEYS[1], info['name'])[2])
  else
    ms, seq = split(info['last-delivered-id'])
    seq = seq + 1
  end
  if floor_ms == nil or ms < floor_ms or (ms == floor_ms and seq < floor_seq) then
    floor_ms, floor_seq = ms, seq
  end
end
if floor_ms ~= nil then
  return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', floor_ms, floor_seq))
end
return 0
"""


def _streams(reply: Any) -> list[tuple[bytes, list[tuple[bytes, Mapping[bytes, bytes] | None]]]]:
    """Normalise an ``XREADGROUP`` reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, Mapping):
        return [
            (key, value[0] if value and isinstance(value[0], list) else value) for key, value in reply.items()
        ]
    return [(key, entries) for key, entries in reply]


class RedisStreamsConsumer(ConsumerBase):
    """A consumer-group member reading partition streams (see :class:`ConsumerBase`)."""

    def __init__(self, bus: RedisStreamsBus, group: str, name: str, partitions: tuple[int, ...]) -> None:
        """Bind to ``bus``; :meth:`setup` creates the groups."""
        super().__init__(group, name, partitions, bus.options)
        self._bus = bus
        self._keys = {p: bus.stream(p) for p in partitions}
        self._parts = {key.encode(): p for p, key in self._keys.items()}
        self._claim_from = dict.fromkeys(partitions, "0-0")
        self._next_claim = 0.0
        self._rotation = 0
        self._vt_ms = int(self.options.visibility_timeout * 1000)
        # Reclaim often enough that a dead consumer's entries come back soon after they time out.
        self._claim_every = min(1.0, self.options.visibility_timeout / 4)
        # A read's reply may have been lost: re-read our own pending list before reading ">" again.
        self._recover = False
        self._failing_since: float | None = None
        self._failures = 0
        # (partition, id) -> loop time it is due back: nacked entries still in our pending list,
        # which the pending-list re-read must leave to XAUTOCLAIM until their delay is over.
        self._given_back: dict[tuple[int, str], float] = {}

    async def setup(self) -> None:
        """Create the consumer group on every owned stream (reading from the beginning)."""
        client = self._bus.client
        with translate_errors("redis: creating consumer groups failed", _ERRORS):
            async with client.pipeline(transaction=False) as pipe:
                for key in self._keys.values():
                    pipe.xgroup_create(key, self.group, id="0", mkstream=True)
                results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise BusError(f"redis: creating consumer group {self.group!r} failed: {result}") from result

    def _delivery(
        self, part: int, entry_id: bytes, fields: Mapping[bytes, bytes], redelivered: int
    ) -> Delivery:
        return Delivery(
            part, entry_id.decode(), fields[b"g"].decode(), fields[b"e"].decode(),
            decode_payload(fields[b"d"]), redelivered,
        )  # fmt: skip

    async def _once(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one read-side command (never retried by the driver); ``_LOST`` if its reply was lost.

        On a connection error the command may have run at the server (entries moved into our
        pending list) with its reply lost: mark the pending list for a re-read and back off. Past
        ``reconnect_timeout`` seconds of failures, raise ``BusError``.
        """
        loop = asyncio.get_running_loop()
        try:
            reply = await call()
        except _CUT as exc:
            self._recover = True
            now = loop.time()
            if self._failing_since is None:
                self._failing_since, self._failures = now, 0
            elif now - self._failing_since > self.options.reconnect_timeout:
                self._failing_since = None
                raise BusError(f"redis: {what} failed: {type(exc).__name__}: {exc}") from exc
            self._failures += 1
            await asyncio.sleep(min(0.5, 0.02 * 2**self._failures))
            return _LOST
        except RedisError as exc:
            raise BusError(f"redis: {what} failed: {type(exc).__name__}: {exc}") from exc
        except asyncio.CancelledError:
            self._recover = True  # cancelled while waiting for the reply: it may be lost
            raise
        self._failing_since = None
        return reply

    async def _retrying(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run an idempotent read-side command until it gets through (see :meth:`_once`)."""
        while (reply := await self._once(what, call)) is _LOST:
            pass
        return reply

    async def _reclaim(self, room: int) -> list[Delivery]:
        """XAUTOCLAIM entries idle for the visibility timeout (dead consumers, nacks)."""
        client, out = self._bus.reads, list[Delivery]()
        for part, key in self._keys.items():
            left = room - len(out)
            if left <= 0:
                break
            start = self._claim_from[part]
            reply = await self._retrying(
                "XAUTOCLAIM", partial(client.xautoclaim, key, self.group, self.name, self._vt_ms, start, left)
            )
            cursor, entries = reply[0], [(i, f) for i, f in reply[1] if f]
            self._claim_from[part] = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            if not entries:
                continue
            first, last, limit = entries[0][0], entries[-1][0], len(entries) + self.in_flight + 1
            pending = await self._retrying(
                "XPENDING", partial(client.xpending_range, key, self.group, first, last, limit, self.name)
            )
            counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
            for i, f in entries:
                self._given_back.pop((part, i.decode()), None)
                out.append(self._delivery(part, i, f, max(1, counts.get(i, 2) - 1)))
        return out

    async def _lost(self, room: int) -> list[Delivery]:
        """Up to ``room`` entries of our own pending list that we neither hold nor gave back.

        They are there because a read's reply was lost in transit. Re-reading them (``XREADGROUP``
        with id ``0``) counts a delivery and restarts their idle time, as a reclaim would.
        """
        client, out = self._bus.reads, list[Delivery]()
        now = asyncio.get_running_loop().time()
        self._given_back = {k: due for k, due in self._given_back.items() if due > now}
        for part, key in self._keys.items():
            start: bytes | str = "0-0"
            while len(out) < room:
                reply = await self._retrying(
                    "XREADGROUP",
                    partial(client.xreadgroup, self.group, self.name, {key: start}, count=_PEL_PAGE),
                )
                entries = [entry for _, got in _streams(reply) for entry in got]
                for i, f in entries:
                    at = (part, i.decode())
                    if f and at not in self._held and at not in self._given_back:
                        out.append(self._delivery(part, i, f, 1))
                if len(entries) < _PEL_PAGE:
                    break
                start = entries[-1][0]
        # A full room may have left some behind: look again on the next fetch.
        self._recover = len(out) >= room
        return out[:room]

    async def _fetch(self, room: int, deadline: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        out: list[Delivery] = []
        if loop.time() >= self._next_claim:
            self._next_claim = loop.time() + self._claim_every
            out = await self._reclaim(room)
        while len(out) < room:
            if self._recover:
                # Entries of a lost reply first: whatever ">" returns now is newer than them.
                out.extend(await self._lost(room - len(out)))
                if self._recover or (out and loop.time() >= deadline):
                    break
                continue
            left = room - len(out)
            self._rotation = (self._rotation + 1) % len(self.partitions)
            order = self.partitions[self._rotation :] + self.partitions[: self._rotation]
            # COUNT applies per stream: split the room so one call never exceeds it.
            chosen = order[:left]
            count = max(1, left // len(chosen))
            remaining = deadline - loop.time()
            # BLOCK 0 would block forever; cap each wait so reclaiming keeps its rhythm.
            block = None if out or remaining < 0.001 else int(min(remaining, self._claim_every) * 1000) or 1
            streams: dict[Any, Any] = {self._keys[p]: ">" for p in chosen}
            read = partial(
                self._bus.reads.xreadgroup, self.group, self.name, streams, count=count, block=block
            )
            reply = await self._once("XREADGROUP", read)
            if reply is _LOST:
                if loop.time() >= deadline:
                    break
                continue
            got = [
                self._delivery(self._parts[key], i, f, 0)
                for key, entries in _streams(reply)
                for i, f in entries
                if f
            ]
            out.extend(got)
            if not got and (out or loop.time() >= deadline):
                break
            if not got and loop.time() >= self._next_claim:
                self._next_claim = loop.time() + self._claim_every
                out.extend(await self._reclaim(left))
        return out

    def _by_stream(self, items: Sequence[Delivery]) -> dict[str, list[int | bytes | str | memoryview]]:
        grouped: dict[str, list[int | bytes | str | memoryview]] = {}
        for d in items:
            grouped.setdefault(self._bus.stream(d.partition), []).append(d.id)
        return grouped

    async def _ack(self, items: list[Delivery]) -> None:
        script, client = self._bus.ack_script, self._bus.client
        with translate_errors("redis: XACK failed", _ERRORS):
            async with client.pipeline(transaction=False) as pipe:
                for key, ids in self._by_stream(items).items():
                    for i in range(0, len(ids), 1000):
                        await script(keys=[key], args=[self.group, *ids[i : i + 1000]], client=pipe)
                await pipe.execute()

    async def _claim(self, items: list[Delivery], idle_ms: int) -> None:
        """XCLAIM to ourselves with a chosen idle time and without counting a delivery."""
        client = self._bus.client
        with translate_errors("redis: XCLAIM failed", _ERRORS):
            async with client.pipeline(transaction=False) as pipe:
                for key, ids in self._by_stream(items).items():
                    pipe.xclaim(key, self.group, self.name, 0, ids, idle=idle_ms, justid=True)
                await pipe.execute()

    async def _nack(self, items: list[Delivery], delay: float) -> None:
        # Idle = visibility - delay: XAUTOCLAIM (min idle = visibility) takes it after `delay`.
        await self._claim(items, max(0, self._vt_ms - math.ceil(delay * 1000)))
        now = asyncio.get_running_loop().time()
        self._next_claim = min(self._next_claim, now + delay)
        if len(self._given_back) > self.options.max_in_flight:  # others may have claimed them
            self._given_back = {k: due for k, due in self._given_back.items() if due > now}
        for d in items:
            self._given_back[(d.partition, d.id)] = now + delay

    async def _touch(self, items: list[Delivery]) -> None:
        await self._claim(items, 0)

    async def _shutdown(self, leftover: list[Delivery]) -> None:
        if leftover:
            await self._nack(leftover, 0.0)


class RedisStreamsBus(TransportBase):
    """Redis Streams transport: partition streams, consumer groups, XAUTOCLAIM, dedup markers.

    Args:
        url: The ``redis://`` URL (bus options already removed from its query).
        options: Bus options.
        client: An existing ``redis.asyncio.Redis`` to use instead of connecting (it must not
            use ``decode_responses=True``). The bus does not close a client it was given.
    """

    def __init__(self, url: str, options: BusOptions, client: aioredis.Redis | None = None) -> None:
        """Prefer :meth:`from_url`."""
        super().__init__(url, options)
        self._own_client = client is None
        retries = max(1, math.ceil(options.reconnect_timeout / 0.5))
        self._client: aioredis.Redis = client or aioredis.Redis.from_url(
            url,
            socket_connect_timeout=options.connect_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionError],
        )
        # The consumers' reads (XREADGROUP, XAUTOCLAIM) go through a pool the driver never retries
        # on: a retried read could hide a lost reply (see RedisStreamsConsumer._once).
        pool = self._client.connection_pool
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._reads = aioredis.Redis.from_pool(
            aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )
        self.publish_script = self._client.register_script(_PUBLISH)
        self.ack_script = self._client.register_script(_ACK_AND_TRIM)
        self._full: set[int] = set()

    @classmethod
    def from_url(cls, url: str, **options: object) -> RedisStreamsBus:
        """Open ``redis://[:password@]host[:port][/db][?bus options]`` (or ``rediss://``)."""
        rest, parsed = split_options(url, options)
        return cls(rest, parsed)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client."""
        return self._client

    @property
    def reads(self) -> aioredis.Redis:
        """The client of the consumers' reads: same server and settings, never retried by the driver."""
        return self._reads

    def stream(self, partition: int) -> str:
        """The stream key of ``partition``."""
        return f"{self.options.prefix}:bus:{partition}"

    async def _start(self) -> None:
        try:
            await asyncio.wait_for(self._client.ping(), self.options.connect_timeout)
        except (TimeoutError, *_ERRORS) as exc:
            raise BusError(
                f"cannot reach Redis at {where(self.url, 6379)}: {type(exc).__name__}: {exc}"
            ) from exc

    async def _wait_for_room(self, partition: int) -> None:
        """Backpressure: wait until the partition's stream is below max_backlog again."""
        delay = 0.005
        while True:
            with translate_errors("redis: XLEN failed", _ERRORS):
                length = await self._client.xlen(self.stream(partition))
            if length < self.options.max_backlog:
                self._full.discard(partition)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _publish(self, batch: list[Outgoing]) -> int:
        new, ttl = 0, str(max(1, math.ceil(self.options.dedup_window)))
        prefix = self.options.prefix
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start : start + _CHUNK]
            for partition in sorted(self._full & {row.partition for row in chunk}):
                await self._wait_for_room(partition)
            with translate_errors("redis: publish failed", _ERRORS):
                async with self._client.pipeline(transaction=False) as pipe:
                    for row in chunk:
                        await self.publish_script(
                            keys=[self.stream(row.partition), f"{prefix}:bus:seen:{row.event_id}"],
                            args=[row.goal_id, row.event_id, row.data, ttl],
                            client=pipe,
                        )
                    lengths = await pipe.execute()
            for row, length in zip(chunk, lengths, strict=True):
                if length >= 0:
                    new += 1
                if length >= self.options.max_backlog:
                    self._full.add(row.partition)
        return new

    async def _consumer(self, group: str, name: str, partitions: tuple[int, ...]) -> RedisStreamsConsumer:
        consumer = RedisStreamsConsumer(self, group, name, partitions)
        await consumer.setup()
        return consumer

    async def _close(self) -> None:
        with contextlib.suppress(*_ERRORS):
            await self._reads.aclose()
        if self._own_client:
            with contextlib.suppress(*_ERRORS):
                await self._client.aclose()
