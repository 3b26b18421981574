"""``sqlite:///path.db``: the default store. One file, no server, safe for several local processes.

How it is fast and safe:

* **One dedicated thread per store** owns the ``sqlite3`` connection; every operation is a single
  hop to it (a hop costs ~0.1-0.2 ms, so per-statement awaits would cap throughput at ~1k events/s).
* **WAL** journal: readers never block the writer; ``synchronous=NORMAL`` by default (a commit
  survives any process crash; an OS crash or power cut may lose the last commits, never corrupt
  the file), ``?synchronous=full`` for durability against power loss too.
* **``BEGIN IMMEDIATE``** takes the write lock up front, so a read-check-write commit never
  deadlocks on a lock upgrade, and ``busy_timeout`` makes other processes wait their turn instead
  of failing.
* **Batched commits**: :meth:`~goalkeeper.ports.store.StateStore.commit_many` puts many goals'
  commits in one transaction (one fsync), which is what makes tens of thousands of events/s.

WAL does not work on network file systems; keep the file on a local disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..ports.store import (
    AppendResult,
    CommitResult,
)
from ._base import (
    SCHEMA_VERSION,
    EncodedCommit,
    EncodedEvent,
    append_result,
    check_schema,
    positive_float,
    positive_int,
    split_options,
)
from ._sql import SQLStore

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "goals, inbox, outbox, event log, dead letters",
        (
            "CREATE TABLE gk_goals (goal_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "snapshot TEXT NOT NULL, updated_at REAL NOT NULL, inbox_n INTEGER NOT NULL DEFAULT 0)",
            "CREATE TABLE gk_inbox (goal_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            "PRIMARY KEY (goal_id, event_id)) WITHOUT ROWID",
            "CREATE INDEX gk_inbox_seq ON gk_inbox (goal_id, seq)",
            "CREATE TABLE gk_outbox (pos INTEGER PRIMARY KEY AUTOINCREMENT, suggestion_id TEXT NOT NULL "
            "UNIQUE, goal_id TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL, "
            "created_at REAL NOT NULL, delivered_at REAL)",
            "CREATE INDEX gk_outbox_pending ON gk_outbox (pos) WHERE delivered_at IS NULL",
            "CREATE INDEX gk_outbox_pending_goal ON gk_outbox (goal_id, pos) WHERE delivered_at IS NULL",
            "CREATE TABLE gk_log_heads (goal_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID",
            "CREATE TABLE gk_events (goal_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL, "
            "payload TEXT NOT NULL, appended_at REAL NOT NULL, PRIMARY KEY (goal_id, seq))",
            "CREATE UNIQUE INDEX gk_events_id ON gk_events (goal_id, event_id)",
            "CREATE TABLE gk_dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, goal_id TEXT, "
            "event_id TEXT, reason TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL)",
            "CREATE INDEX gk_dead_letters_goal ON gk_dead_letters (goal_id, id)",
        ),
    ),
    (
        2,
        "metrics history, goal status, per-goal suggestion index",
        (
            "ALTER TABLE gk_goals ADD COLUMN metrics_n INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE gk_goals ADD COLUMN status TEXT NOT NULL DEFAULT 'active' "
            "CHECK (status IN ('active', 'closed', 'archived'))",
            "CREATE INDEX gk_goals_status ON gk_goals (status, goal_id)",
            # WITHOUT ROWID: the (goal_id, seq) key is the table, one B-tree write per point.
            "CREATE TABLE gk_metrics (goal_id TEXT NOT NULL, seq INTEGER NOT NULL, point TEXT NOT NULL, "
            "created_at REAL NOT NULL, PRIMARY KEY (goal_id, seq)) WITHOUT ROWID",
            "CREATE INDEX gk_outbox_goal ON gk_outbox (goal_id, version, pos)",
        ),
    ),
)
"""(version, description, statements) in order; a new schema version appends an entry."""

# SQLite's default limit on bound parameters is 32,766 (999 before 3.32); stay well below it.
_CHUNK = 500


def _q(sql: str) -> str:
    return sql.replace("%s", "?")


def _existing(con: sqlite3.Connection, sql: str, params: tuple[object, ...], ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` the query ``sql`` (``... IN ({})``, after the parameters ``params``) finds."""
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(row[0] for row in con.execute(sql.format(marks), (*params, *chunk)))
    return found


class SQLiteStore(SQLStore):
    """The SQLite :class:`~goalkeeper.ports.store.StateStore` (``sqlite:///path.db``).

    Args:
        path: database file (created with its parent directories), or ``":memory:"``.
        synchronous: ``"normal"`` (default) or ``"full"`` (see the module docstring).
        busy_timeout: seconds to wait for another process's write lock before failing.
        inbox_keep: applied event ids kept per goal.
        metrics_retention: metric points kept per goal.

    Raises:
        ConfigurationError: a bad argument.
    """

    backend = "sqlite"
    driver_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | Path = "goalkeeper.db",
        *,
        synchronous: str = "normal",
        busy_timeout: float = 10.0,
        inbox_keep: int | None = None,
        metrics_retention: int | None = None,
        url: str | None = None,
    ) -> None:
        """Remember the configuration; the file is opened by :meth:`open`."""
        super().__init__(
            url or f"sqlite:///{path}", inbox_keep=inbox_keep, metrics_retention=metrics_retention
        )
        if synchronous.lower() not in ("normal", "full"):
            raise ConfigurationError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = str(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout = busy_timeout
        self._con: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """Build from ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite:///:memory:``.

        Options: ``synchronous`` (normal|full), ``busy_timeout`` (seconds), ``inbox_keep``,
        ``metrics_retention``.
        """
        _, options = split_options(
            url,
            {
                "synchronous": str,
                "busy_timeout": positive_float,
                "inbox_keep": positive_int,
                "metrics_retention": positive_int,
            },
            pass_through=False,
        )
        parts = urlsplit(url)
        if parts.netloc:
            raise ConfigurationError(
                f"store URL {url!r}: a SQLite URL has no host; use sqlite:///relative.db or "
                "sqlite:////absolute/path.db"
            )
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(path or "goalkeeper.db", url=url, **options)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._con is not None
        return self._con

    async def _connect(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="goalkeeper-sqlite")
        try:
            await self._call(self._connect_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the module never opens a
        # transaction behind our back.
        con = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        if self.path != ":memory:":
            con.execute("PRAGMA journal_mode = WAL")
        con.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._con = con

    async def _close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_sync(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction; roll back on any error."""
        con = self._db
        con.execute("BEGIN IMMEDIATE")
        try:
            result = fn(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return result

    async def _schema_version(self) -> int:
        return await self._call(self._schema_version_sync, self._db)

    @staticmethod
    def _schema_version_sync(con: sqlite3.Connection) -> int:
        exists = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gk_schema'"
        ).fetchone()
        if not exists:
            return 0
        row = con.execute("SELECT COALESCE(MAX(version), 0) FROM gk_schema").fetchone()
        return int(row[0])

    async def _migrate(self, target: int = SCHEMA_VERSION) -> int:
        return await self._call(self._write, partial(self._migrate_sync, target))

    def _migrate_sync(self, target: int, con: sqlite3.Connection) -> int:
        con.execute(
            "CREATE TABLE IF NOT EXISTS gk_schema (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
            "applied_at REAL NOT NULL)"
        )
        current = self._schema_version_sync(con)
        check_schema(current, self.backend)
        for version, description, statements in _MIGRATIONS:
            if current < version <= target:
                for statement in statements:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO gk_schema (version, description, applied_at) VALUES (?, ?, ?)",
                    (version, description, self.now()),
                )
                current = version
        return current

    async def _commit_many(self, commits: list[EncodedCommit]) -> list[CommitResult]:
        return await self._call(self._write, partial(self._commit_sync, commits, self.now()))

    def _commit_sync(
        self, commits: list[EncodedCommit], now: float, con: sqlite3.Connection
    ) -> list[CommitResult]:
        results: list[CommitResult] = []
        for c in commits:
            row = con.execute(
                "SELECT version, inbox_n, metrics_n FROM gk_goals WHERE goal_id = ?", (c.goal_id,)
            ).fetchone()
            version, inbox_n, metrics_n = (row[0], row[1], row[2]) if row else (0, 0, 0)
            if version != c.expected_version:
                results.append(c.conflict(version))
                continue
            dup_events = _existing(
                con,
                "SELECT event_id FROM gk_inbox WHERE goal_id = ? AND event_id IN ({})",
                (c.goal_id,),
                c.event_ids,
            )
            new_events = [e for e in c.event_ids if e not in dup_events]
            con.executemany(
                "INSERT INTO gk_inbox (goal_id, event_id, seq) VALUES (?, ?, ?)",
                [(c.goal_id, e, inbox_n + i) for i, e in enumerate(new_events, start=1)],
            )
            inbox_n += len(new_events)
            if new_events and inbox_n > self.inbox_keep:
                con.execute(
                    "DELETE FROM gk_inbox WHERE goal_id = ? AND seq <= ?",
                    (c.goal_id, inbox_n - self.inbox_keep),
                )
            sids = [sid for sid, _ in c.suggestions]
            dup_suggestions = _existing(
                con, "SELECT suggestion_id FROM gk_outbox WHERE suggestion_id IN ({})", (), sids
            )
            con.executemany(
                "INSERT INTO gk_outbox (suggestion_id, goal_id, version, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (sid, c.goal_id, version + 1, text, now)
                    for sid, text in c.suggestions
                    if sid not in dup_suggestions
                ],
            )
            if c.metrics:
                con.executemany(
                    "INSERT INTO gk_metrics (goal_id, seq, point, created_at) VALUES (?, ?, ?, ?)",
                    [(c.goal_id, metrics_n + i, point, now) for i, point in enumerate(c.metrics, start=1)],
                )
                metrics_n += len(c.metrics)
                if metrics_n > self.metrics_retention:
                    # A range delete on the primary key: touches only the expired points.
                    con.execute(
                        "DELETE FROM gk_metrics WHERE goal_id = ? AND seq <= ?",
                        (c.goal_id, metrics_n - self.metrics_retention),
                    )
            if row:
                con.execute(
                    "UPDATE gk_goals SET version = ?, snapshot = ?, updated_at = ?, inbox_n = ?, "
                    "metrics_n = ? WHERE goal_id = ?",
                    (version + 1, c.snapshot, now, inbox_n, metrics_n, c.goal_id),
                )
            else:
                con.execute(
                    "INSERT INTO gk_goals (goal_id, version, snapshot, updated_at, inbox_n, metrics_n) "
                    "VALUES (?, 1, ?, ?, ?, ?)",
                    (c.goal_id, c.snapshot, now, inbox_n, metrics_n),
                )
            results.append(c.committed(version + 1, dup_events, dup_suggestions, metrics_n))
        return results

    async def _applied(self, goal_id: str, event_ids: list[str]) -> set[str]:
        return (await self._applied_many({goal_id: event_ids}))[goal_id]

    async def _applied_many(self, wanted: dict[str, list[str]]) -> dict[str, set[str]]:
        sql = "SELECT event_id FROM gk_inbox WHERE goal_id = ? AND event_id IN ({})"

        def read() -> dict[str, set[str]]:  # one trip to the store's thread for every goal
            return {goal_id: _existing(self._db, sql, (goal_id,), ids) for goal_id, ids in wanted.items()}

        return await self._call(read)

    async def _append(self, events: list[EncodedEvent], now: float) -> AppendResult:
        return await self._call(self._write, partial(self._append_sync, events, now))

    @staticmethod
    def _append_sync(events: list[EncodedEvent], now: float, con: sqlite3.Connection) -> AppendResult:
        by_goal: dict[str, list[EncodedEvent]] = {}
        for event in events:
            by_goal.setdefault(event.goal_id, []).append(event)
        seqs: dict[tuple[str, str], int] = {}
        for goal_id, group in by_goal.items():
            dups = _existing(
                con,
                "SELECT event_id FROM gk_events WHERE goal_id = ? AND event_id IN ({})",
                (goal_id,),
                [e.event_id for e in group],
            )
            new = [e for e in group if e.event_id not in dups]
            if not new:
                continue
            (last,) = con.execute(
                "INSERT INTO gk_log_heads (goal_id, last_seq) VALUES (?, ?) ON CONFLICT (goal_id) "
                "DO UPDATE SET last_seq = last_seq + excluded.last_seq RETURNING last_seq",
                (goal_id, len(new)),
            ).fetchone()
            first = last - len(new) + 1
            rows = [(goal_id, first + i, e.event_id, e.payload, now) for i, e in enumerate(new)]
            con.executemany(
                "INSERT INTO gk_events (goal_id, seq, event_id, payload, appended_at) VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            seqs.update({(goal_id, e.event_id): first + i for i, e in enumerate(new)})
        return append_result(events, seqs, now)

    async def _mark_delivered(self, suggestion_ids: list[str]) -> int:
        now = self.now()

        def mark(con: sqlite3.Connection) -> int:
            count = 0
            for start in range(0, len(suggestion_ids), _CHUNK):
                chunk = suggestion_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = (
                    "UPDATE gk_outbox SET delivered_at = ? "
                    f"WHERE delivered_at IS NULL AND suggestion_id IN ({marks})"
                )
                count += con.execute(sql, (now, *chunk)).rowcount
            return count

        return await self._call(self._write, mark)

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        args = tuple(params)
        # Autocommit mode: a single statement (even INSERT ... RETURNING) is its own transaction.
        return await self._call(lambda: self._db.execute(_q(sql), args).fetchall())

    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        args = tuple(params)
        return await self._call(lambda: self._db.execute(_q(sql), args).rowcount)
