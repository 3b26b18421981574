"""``memory://``: the embedded transport, with no server.

Two modes, one implementation (a queue kept in SQLite tables, so there is no second copy of the
logic to drift):

* ``memory://`` — volatile: the tables live in an in-process ``:memory:`` database. Nothing
  survives the process; this is what :class:`~goalkeeper.bus.eventbus.FeedbackEventBus` uses.
* ``memory:///abs/path/goalkeeper.db`` or ``memory://?db=relative.db`` — durable: the queue tables
  live in that SQLite file (WAL). Published events survive a crash; a consumer killed with SIGKILL
  has its unacked rows redelivered after ``visibility_timeout``; several processes may share the
  file. Point it at the same file as the SQLite state store (``goalkeeper serve`` does) so that
  one file holds the whole embedded deployment. The tables are prefixed ``gk_bus_`` and never
  collide with the store's.

Publishing is group-committed: concurrent ``publish`` calls are written in one transaction. An
asyncio event wakes consumers of the same process at once; consumers in other processes notice new
rows within ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from goalkeeper.bus._common import (
    BusOptions,
    ConsumerBase,
    Outgoing,
    TransportBase,
    decode_payload,
    split_options,
    translate_errors,
)
from goalkeeper.errors import BusError, ConfigurationError
from goalkeeper.ports.bus import Delivery

__all__ = ["MemoryBus"]

_T = TypeVar("_T")
_MAX_ROWS_PER_COMMIT = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gk_bus_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, part INTEGER NOT NULL,
    goal_id TEXT NOT NULL, event_id TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gk_bus_events_part ON gk_bus_events (topic, part, seq);
CREATE TABLE IF NOT EXISTS gk_bus_seen (
    topic TEXT NOT NULL, event_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (topic, event_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gk_bus_seen_at ON gk_bus_seen (topic, at);
CREATE TABLE IF NOT EXISTS gk_bus_parts (
    topic TEXT NOT NULL, part INTEGER NOT NULL, backlog INTEGER NOT NULL,
    PRIMARY KEY (topic, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gk_bus_cursor (
    topic TEXT NOT NULL, grp TEXT NOT NULL, part INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, part)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gk_bus_pending (
    topic TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL,
    consumer TEXT NOT NULL, visible_at REAL NOT NULL, deliveries INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gk_bus_pending_due ON gk_bus_pending (topic, grp, visible_at);
CREATE INDEX IF NOT EXISTS gk_bus_pending_part ON gk_bus_pending (topic, part, seq);
"""


def _db_path(url: str) -> str | None:
    """The SQLite file named by a ``memory://`` URL, or ``None`` for the volatile mode."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.netloc:
        raise ConfigurationError(
            f"memory:// URL {url!r} has a host; write memory:///abs/path.db or memory://?db=rel.db"
        )
    path = query.get("db") or parts.path or None
    return None if path in (None, ":memory:") else path


@dataclass
class _Entry:
    """One ``publish_many`` call waiting in the group-commit queue."""

    remaining: list[Outgoing]
    future: asyncio.Future[int]
    new: int = 0


@dataclass
class _Queue:
    """The SQLite connection and the thread it is used from (none for the volatile mode)."""

    conn: sqlite3.Connection
    executor: ThreadPoolExecutor | None
    topic: str
    options: BusOptions
    last_prune: float = field(default=0.0)

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a transaction: inline for ``:memory:``, on the single DB thread for a file."""
        with translate_errors("memory bus SQLite operation failed", (sqlite3.Error,)):
            if self.executor is None:
                return fn(*args)
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def transaction(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` inside ``BEGIN IMMEDIATE`` (one writer across processes)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(self.conn)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return result

    def store(self, rows: list[Outgoing]) -> list[bool | None]:
        """Append rows; per row: True stored, False duplicate, None partition full (retry later)."""
        topic, now = self.topic, time.time()

        def body(c: sqlite3.Connection) -> list[bool | None]:
            if now - self.last_prune >= 1.0:
                c.execute(
                    "DELETE FROM gk_bus_seen WHERE topic=? AND at<?", (topic, now - self.options.dedup_window)
                )
                self.last_prune = now
            backlog = dict(
                c.execute("SELECT part, backlog FROM gk_bus_parts WHERE topic=?", (topic,)).fetchall()
            )
            changed: set[int] = set()
            blocked: set[int] = set()
            out: list[bool | None] = []
            for row in rows:
                # Once a partition is full, every later row of it waits too: order is per partition.
                if row.partition in blocked or backlog.get(row.partition, 0) >= self.options.max_backlog:
                    blocked.add(row.partition)
                    out.append(None)
                    continue
                seen = c.execute(
                    "INSERT OR IGNORE INTO gk_bus_seen VALUES (?,?,?)", (topic, row.event_id, now)
                )
                if seen.rowcount == 0:
                    out.append(False)
                    continue
                c.execute(
                    "INSERT INTO gk_bus_events (topic, part, goal_id, event_id, payload) VALUES (?,?,?,?,?)",
                    (topic, row.partition, row.goal_id, row.event_id, row.data),
                )
                backlog[row.partition] = backlog.get(row.partition, 0) + 1
                changed.add(row.partition)
                out.append(True)
            c.executemany(
                "INSERT INTO gk_bus_parts VALUES (?,?,?) ON CONFLICT DO UPDATE SET backlog=excluded.backlog",
                [(topic, p, backlog[p]) for p in changed],
            )
            return out

        return self.transaction(body)


class MemoryConsumer(ConsumerBase):
    """A consumer of the embedded queue (see :class:`ConsumerBase` for the contract)."""

    def __init__(self, bus: MemoryBus, group: str, name: str, partitions: tuple[int, ...]) -> None:
        """Bind to ``bus``; the cursor rows are created on the first fetch."""
        super().__init__(group, name, partitions, bus.options)
        self._bus = bus
        self._queue = bus.queue
        self._rotation = 0

    def _take(self, room: int) -> list[Delivery]:
        """One transaction: reclaim due pending rows of the group, then read new rows."""
        q, topic, group = self._queue, self._queue.topic, self.group
        now = time.time()
        visible_at = now + self.options.visibility_timeout
        marks = ",".join("?" * len(self.partitions))

        def body(c: sqlite3.Connection) -> list[Delivery]:
            c.executemany(
                "INSERT OR IGNORE INTO gk_bus_cursor VALUES (?,?,?,0)",
                [(topic, group, p) for p in self.partitions],
            )
            due = c.execute(
                "SELECT p.seq, p.part, p.deliveries, e.goal_id, e.event_id, e.payload FROM gk_bus_pending p "
                f"JOIN gk_bus_events e ON e.seq=p.seq WHERE p.topic=? AND p.grp=? AND p.part IN ({marks}) "
                "AND p.visible_at<=? ORDER BY p.seq LIMIT ?",
                (topic, group, *self.partitions, now, room),
            ).fetchall()
            c.executemany(
                "UPDATE gk_bus_pending SET consumer=?, visible_at=?, deliveries=deliveries+1 "
                "WHERE topic=? AND grp=? AND seq=?",
                [(self.name, visible_at, topic, group, row[0]) for row in due],
            )
            out = [Delivery(part, str(seq), g, e, decode_payload(d), n) for seq, part, n, g, e, d in due]
            # Rotate the starting partition so a busy partition cannot starve the others.
            start = self._rotation = (self._rotation + 1) % len(self.partitions)
            for part in self.partitions[start:] + self.partitions[:start]:
                left = room - len(out)
                if left <= 0:
                    break
                (last,) = c.execute(
                    "SELECT last_seq FROM gk_bus_cursor WHERE topic=? AND grp=? AND part=?",
                    (topic, group, part),
                ).fetchone()
                rows = c.execute(
                    "SELECT seq, goal_id, event_id, payload FROM gk_bus_events "
                    "WHERE topic=? AND part=? AND seq>? ORDER BY seq LIMIT ?",
                    (topic, part, last, left),
                ).fetchall()
                if not rows:
                    continue
                c.executemany(
                    "INSERT INTO gk_bus_pending VALUES (?,?,?,?,?,?,1)",
                    [(topic, group, row[0], part, self.name, visible_at) for row in rows],
                )
                c.execute(
                    "UPDATE gk_bus_cursor SET last_seq=? WHERE topic=? AND grp=? AND part=?",
                    (rows[-1][0], topic, group, part),
                )
                out.extend(Delivery(part, str(seq), g, e, decode_payload(d)) for seq, g, e, d in rows)
            return out

        return q.transaction(body)

    async def _fetch(self, room: int, deadline: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        while True:
            self._bus.published.clear()
            got = await self._queue.run(self._take, room)
            remaining = deadline - loop.time()
            if got or remaining <= 0:
                return got
            # Same-process publishes wake us at once; other processes' rows and nack delays that
            # expire are noticed by polling.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._bus.published.wait(), min(remaining, self.options.poll_interval))

    def _settle(self, items: list[Delivery]) -> None:
        """Delete acked pending rows and trim events no group needs any more."""
        topic, group = self._queue.topic, self.group

        def body(c: sqlite3.Connection) -> None:
            c.executemany(
                "DELETE FROM gk_bus_pending WHERE topic=? AND grp=? AND seq=?",
                [(topic, group, int(d.id)) for d in items],
            )
            for part in {d.partition for d in items}:
                # Everything below every group's cursor and below every pending row is done.
                (floor,) = c.execute(
                    "SELECT MIN(x) FROM (SELECT MIN(last_seq)+1 AS x FROM gk_bus_cursor "
                    "WHERE topic=? AND part=? "
                    "UNION ALL SELECT MIN(seq) FROM gk_bus_pending WHERE topic=? AND part=?)",
                    (topic, part, topic, part),
                ).fetchone()
                if floor is None:
                    continue
                gone = c.execute(
                    "DELETE FROM gk_bus_events WHERE topic=? AND part=? AND seq<?", (topic, part, floor)
                ).rowcount
                if gone:
                    c.execute(
                        "UPDATE gk_bus_parts SET backlog=backlog-? WHERE topic=? AND part=?",
                        (gone, topic, part),
                    )

        self._queue.transaction(body)

    def _schedule(self, items: list[Delivery], visible_at: float, only_mine: bool) -> None:
        topic, group = self._queue.topic, self.group
        sql = "UPDATE gk_bus_pending SET visible_at=? WHERE topic=? AND grp=? AND seq=?"
        rows: list[tuple[object, ...]] = [(visible_at, topic, group, int(d.id)) for d in items]
        if only_mine:
            sql += " AND consumer=?"
            rows = [(*row, self.name) for row in rows]
        self._queue.transaction(lambda c: c.executemany(sql, rows))

    async def _ack(self, items: list[Delivery]) -> None:
        await self._queue.run(self._settle, items)
        self._bus.acked.set()

    async def _nack(self, items: list[Delivery], delay: float) -> None:
        await self._queue.run(self._schedule, items, time.time() + delay, False)
        self._bus.published.set()

    async def _touch(self, items: list[Delivery]) -> None:
        await self._queue.run(self._schedule, items, time.time() + self.options.visibility_timeout, True)

    async def _shutdown(self, leftover: list[Delivery]) -> None:
        if leftover:
            await self._nack(leftover, 0.0)


class MemoryBus(TransportBase):
    """The embedded transport: a SQLite-backed queue, volatile (``memory://``) or durable (a file).

    Example:
        >>> import asyncio
        >>> async def demo() -> list[str]:
        ...     async with MemoryBus.from_url("memory://") as bus:
        ...         await bus.publish({"goal_id": "g1", "event_id": "e1", "type": "message"})
        ...         consumer = await bus.consumer("workers", "w1")
        ...         batch = await consumer.fetch(timeout=0.1)
        ...         await consumer.ack(batch)
        ...         return batch.event_ids
        >>> asyncio.run(demo())
        ['e1']
    """

    def __init__(self, url: str, options: BusOptions, path: str | None) -> None:
        """Prefer :meth:`from_url`. ``path`` is the SQLite file, or ``None`` for volatile."""
        super().__init__(url, options)
        self.path = path
        self.published = asyncio.Event()
        self.acked = asyncio.Event()
        self._entries: deque[_Entry] = deque()
        self._flusher: asyncio.Task[None] | None = None
        self._queue: _Queue | None = None

    @classmethod
    def from_url(cls, url: str, **options: object) -> MemoryBus:
        """Open ``memory://`` (volatile) or ``memory:///path.db`` / ``memory://?db=path`` (durable)."""
        rest, parsed = split_options(url, options)
        return cls(url, parsed, _db_path(rest))

    @property
    def queue(self) -> _Queue:
        """The SQLite queue (after :meth:`start`)."""
        if self._queue is None:
            raise BusError("memory bus is not started")
        return self._queue

    async def _start(self) -> None:
        try:
            if self.path is None:
                conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
                executor = None
            else:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode survives a process crash (SIGKILL); only an OS crash or power
                # loss can lose the last commits.
                conn.execute("PRAGMA synchronous=NORMAL")
                executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="goalkeeper-bus-sqlite")
            conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise BusError(f"cannot open the memory bus database {self.path!r}: {exc}") from exc
        self._queue = _Queue(conn, executor, self.options.prefix, self.options)

    async def _publish(self, batch: list[Outgoing]) -> int:
        entry = _Entry(batch, asyncio.get_running_loop().create_future())
        self._entries.append(entry)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="goalkeeper-bus-flush")
        return await entry.future

    async def _flush(self) -> None:
        """Group commit: write everything queued in one transaction; retry full partitions."""
        queue = self.queue
        while self._entries:
            taken: list[_Entry] = []
            rows: list[Outgoing] = []
            for entry in self._entries:
                taken.append(entry)
                rows.extend(entry.remaining)
                if len(rows) >= _MAX_ROWS_PER_COMMIT:
                    break
            self.acked.clear()
            try:
                results = await queue.run(queue.store, rows)
            except BusError as exc:
                for entry in taken:
                    self._entries.remove(entry)
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                continue
            progressed = self._apply(taken, results)
            self.published.set()
            if not progressed:
                # Backpressure: every queued row waits for a full partition; wait for an ack here,
                # or poll for acks made by other processes.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.acked.wait(), self.options.poll_interval)

    def _apply(self, taken: list[_Entry], results: list[bool | None]) -> bool:
        progressed, i = False, 0
        for entry in taken:
            outcome = results[i : i + len(entry.remaining)]
            i += len(entry.remaining)
            entry.new += sum(1 for r in outcome if r is True)
            keep = [row for row, r in zip(entry.remaining, outcome, strict=True) if r is None]
            progressed = progressed or len(keep) < len(entry.remaining)
            entry.remaining = keep
            if not keep:
                self._entries.remove(entry)
                if not entry.future.done():
                    entry.future.set_result(entry.new)
        return progressed

    async def _consumer(self, group: str, name: str, partitions: tuple[int, ...]) -> MemoryConsumer:
        return MemoryConsumer(self, group, name, partitions)

    async def _close(self) -> None:
        if self._flusher is not None:
            # Publishes still waiting for a full partition get reconnect_timeout to go through.
            done, _ = await asyncio.wait([self._flusher], timeout=self.options.reconnect_timeout)
            if not done:
                self._flusher.cancel()
                for entry in self._entries:
                    if not entry.future.done():
                        entry.future.set_exception(BusError("memory bus closed before the event was stored"))
                self._entries.clear()
        queue, self._queue = self._queue, None
        if queue is not None:
            if queue.executor is not None:
                queue.executor.shutdown(wait=True)
            queue.conn.close()
