"""``postgresql://...``: the store for scaled-out deployments (many workers, many machines).

* **psycopg 3, async**, one connection per store object (operations on one object are serialised
  by a lock; open one store per worker task that needs its own connection).
* **One schema per namespace** (``?schema=goalkeeper`` by default), created by the migrations, so
  several deployments or test runs can share a database.
* **Commit = one server-side call**: the ``gk_commit`` function locks the goal row
  (``SELECT ... FOR UPDATE``), checks the version, inserts inbox and outbox rows with
  ``ON CONFLICT DO NOTHING`` and updates the snapshot. ``commit_many`` pipelines one call per goal
  inside a single transaction (one round trip and one WAL flush for the batch), with the goals
  locked in id order so two batches never deadlock.
* Under ``READ COMMITTED`` a writer blocked on the row lock re-reads the committed row and sees the
  new version, so a stale writer always gets a conflict, never a lost update.
* **Survives a lost connection**: a connection whose command was interrupted (the calling task
  cancelled mid-query, the server restarted, the backend terminated) is dropped, and the next call
  connects again. The interrupted call raises (a :class:`StoreError`, or the cancellation); its
  transaction is rolled back by the server, so nothing half-written remains.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import ConfigurationError, StoreError
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
from ._pg_functions import APPEND_FUNCTION, COMMIT_FUNCTION_V1, COMMIT_FUNCTION_V2
from ._sql import SQLStore

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "goals, inbox, outbox, event log, dead letters, commit and append functions",
        (
            'CREATE TABLE gk_goals (goal_id TEXT COLLATE "C" PRIMARY KEY, version BIGINT NOT NULL, '
            "snapshot TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
            "inbox_n BIGINT NOT NULL DEFAULT 0)",
            "CREATE TABLE gk_inbox (goal_id TEXT NOT NULL, event_id TEXT NOT NULL, seq BIGINT NOT NULL, "
            "PRIMARY KEY (goal_id, event_id))",
            "CREATE INDEX gk_inbox_seq ON gk_inbox (goal_id, seq)",
            "CREATE TABLE gk_outbox (pos BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "suggestion_id TEXT NOT NULL UNIQUE, goal_id TEXT NOT NULL, version BIGINT NOT NULL, "
            "payload TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, delivered_at DOUBLE PRECISION)",
            "CREATE INDEX gk_outbox_pending ON gk_outbox (pos) WHERE delivered_at IS NULL",
            "CREATE INDEX gk_outbox_pending_goal ON gk_outbox (goal_id, pos) WHERE delivered_at IS NULL",
            "CREATE TABLE gk_log_heads (goal_id TEXT PRIMARY KEY, last_seq BIGINT NOT NULL)",
            "CREATE TABLE gk_events (goal_id TEXT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL, "
            "payload TEXT NOT NULL, appended_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (goal_id, seq), "
            "UNIQUE (goal_id, event_id))",
            "CREATE TABLE gk_dead_letters (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, goal_id TEXT, "
            "event_id TEXT, reason TEXT NOT NULL, payload TEXT NOT NULL, "
            "created_at DOUBLE PRECISION NOT NULL)",
            "CREATE INDEX gk_dead_letters_goal ON gk_dead_letters (goal_id, id)",
            COMMIT_FUNCTION_V1,
            APPEND_FUNCTION,
        ),
    ),
    (
        2,
        "metrics history, goal status, per-goal suggestion index, commit function with metrics",
        (
            "ALTER TABLE gk_goals ADD COLUMN metrics_n BIGINT NOT NULL DEFAULT 0, "
            "ADD COLUMN status TEXT NOT NULL DEFAULT 'active' "
            "CHECK (status IN ('active', 'closed', 'archived'))",
            "CREATE INDEX gk_goals_status ON gk_goals (status, goal_id)",
            "CREATE TABLE gk_metrics (goal_id TEXT NOT NULL, seq BIGINT NOT NULL, point TEXT NOT NULL, "
            "created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (goal_id, seq))",
            "CREATE INDEX gk_outbox_goal ON gk_outbox (goal_id, version, pos)",
            # The 8-argument gk_commit of schema 1 stays: a worker of the previous release that is
            # still running during a rolling upgrade keeps committing (without metrics points).
            COMMIT_FUNCTION_V2,
        ),
    ),
)
"""(version, description, statements) in order; a new schema version appends an entry."""

# Arrays go in binary (%b): psycopg dumps a text array in text format with a Python regex escape per
# element, which costs ~20 us per JSON suggestion or metric point (100 us for 5 suggestions, against
# 2 us in binary) and was a tenth of a worker's time per batch.
_COMMIT = "SELECT * FROM gk_commit(%s, %s, %s, %s, %b::text[], %b::text[], %b::text[], %s, %b::text[], %s)"
_APPEND = "SELECT * FROM gk_append(%s, %b::text[], %b::text[], %s)"


class PostgresStore(SQLStore):
    """The PostgreSQL :class:`~goalkeeper.ports.store.StateStore` (``postgresql://...``).

    Args:
        conninfo: a libpq URL or connection string (without goalkeeper's own options).
        schema: the schema holding the tables (created if missing).
        connect_timeout: seconds to wait for the server before failing.
        inbox_keep: applied event ids kept per goal.
        metrics_retention: metric points kept per goal.
        url: the URL to report (defaults to ``conninfo``).

    Raises:
        ConfigurationError: a bad argument.
    """

    backend = "postgresql"
    driver_errors = (psycopg.Error,)

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "goalkeeper",
        connect_timeout: float = 5.0,
        inbox_keep: int | None = None,
        metrics_retention: int | None = None,
        url: str | None = None,
    ) -> None:
        """Remember the configuration; :meth:`open` connects."""
        super().__init__(url or conninfo, inbox_keep=inbox_keep, metrics_retention=metrics_retention)
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ConfigurationError(
                f"schema must be a plain SQL identifier (letters, digits, _), got {schema!r}"
            )
        self.conninfo = conninfo
        self.schema = schema
        self.connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        """Build from ``postgresql://user:password@host:port/db?schema=...``.

        Options: ``schema``, ``connect_timeout`` (seconds), ``inbox_keep``, ``metrics_retention``;
        any other query option (``sslmode``, ...) goes to libpq.
        """
        conninfo, options = split_options(
            url,
            {
                "schema": str,
                "connect_timeout": positive_float,
                "inbox_keep": positive_int,
                "metrics_retention": positive_int,
            },
            pass_through=True,
        )
        return cls(conninfo, url=url, **options)

    @property
    def _db(self) -> psycopg.AsyncConnection[Any]:
        assert self._conn is not None
        return self._conn

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection, held under the lock for one operation.

        Connects again first when the previous connection was lost. When the operation is
        interrupted (cancelled, or failing at the connection level) the connection is closed and
        forgotten, whatever state the protocol was left in: a half-read pipeline or an open
        transaction must never leak into the next caller's operation. Errors the server reports
        for a statement leave a usable connection and keep it.
        """
        async with self._lock:
            conn = self._conn
            if conn is None or conn.closed or conn.broken:
                self._conn = None
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
                await self._connect()
                conn = self._db
            try:
                yield conn
            except BaseException as exc:
                interrupted = not isinstance(exc, psycopg.Error) or isinstance(exc, psycopg.OperationalError)
                idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                if interrupted or conn.broken or not idle:
                    self._conn = None
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(conn.close())
                raise

    def _address(self) -> str:
        try:
            params = conninfo_to_dict(self.conninfo)
        except psycopg.ProgrammingError:
            return "?"
        return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"

    async def _connect(self) -> None:
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
            )
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"bad PostgreSQL URL {self.url!r}: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self._address()} ({self.url}): {exc}"
            ) from exc
        await self._conn.execute(f'SET search_path TO "{self.schema}"')

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def _schema_version(self) -> int:
        async with self._connection() as db:
            cur = await db.execute(
                "SELECT to_regclass(format('%%I.gk_schema', %s::text)) IS NOT NULL", (self.schema,)
            )
            row = await cur.fetchone()
            if not row or not row[0]:
                return 0
            cur = await db.execute("SELECT COALESCE(MAX(version), 0) FROM gk_schema")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def _migrate(self, target: int = SCHEMA_VERSION) -> int:
        current = await self._schema_version()
        check_schema(current, self.backend)
        if current >= target:
            return current
        async with self._connection() as db, db.transaction():
            # Several workers may start at once: the advisory lock makes one of them migrate
            # while the others wait, then find the work done.
            await db.execute("SELECT pg_advisory_xact_lock(hashtext('goalkeeper:' || %s))", (self.schema,))
            await db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await db.execute(
                "CREATE TABLE IF NOT EXISTS gk_schema (version BIGINT PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            cur = await db.execute("SELECT COALESCE(MAX(version), 0) FROM gk_schema")
            row = await cur.fetchone()
            current = int(row[0]) if row else 0
            check_schema(current, self.backend)
            for version, description, statements in _MIGRATIONS:
                if current < version <= target:
                    for statement in statements:
                        await db.execute(statement)
                    await db.execute(
                        "INSERT INTO gk_schema (version, description, applied_at) VALUES (%s, %s, %s)",
                        (version, description, self.now()),
                    )
                    current = version
        return current

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        async with self._connection() as db:
            cur = await db.execute(sql, params)
            return await cur.fetchall()

    async def _commit_many(self, commits: list[EncodedCommit]) -> list[CommitResult]:
        now = self.now()
        # Lock goals in id order (a stable sort keeps one goal's commits in input order), so two
        # batches touching the same goals can never deadlock.
        order = sorted(range(len(commits)), key=lambda i: commits[i].goal_id)
        rows: dict[int, tuple[Any, ...] | None] = {}
        async with self._connection() as db, db.transaction():
            async with db.pipeline():
                cursors = []
                for i in order:
                    c = commits[i]
                    params = (
                        c.goal_id,
                        c.expected_version,
                        c.snapshot,
                        now,
                        list(c.event_ids),
                        [sid for sid, _ in c.suggestions],
                        [text for _, text in c.suggestions],
                        self.inbox_keep,
                        list(c.metrics),
                        self.metrics_retention,
                    )
                    cursors.append((i, await db.execute(_COMMIT, params)))
            for i, cur in cursors:
                rows[i] = await cur.fetchone()
        results: list[CommitResult] = []
        for i, c in enumerate(commits):
            row = rows[i]
            assert row is not None
            committed, version, dup_events, dup_sids, metrics_n = row
            results.append(
                c.committed(version, dup_events, dup_sids, metrics_n) if committed else c.conflict(version)
            )
        return results

    async def _applied(self, goal_id: str, event_ids: list[str]) -> set[str]:
        return (await self._applied_many({goal_id: event_ids})).get(goal_id, set())

    async def _applied_many(self, wanted: dict[str, list[str]]) -> dict[str, set[str]]:
        goals = [goal_id for goal_id, ids in wanted.items() for _ in ids]
        ids = [event_id for event_ids in wanted.values() for event_id in event_ids]
        sql = (
            "SELECT i.goal_id, i.event_id FROM gk_inbox i "
            "JOIN unnest(%b::text[], %b::text[]) AS w(goal_id, event_id) USING (goal_id, event_id)"
        )
        found: dict[str, set[str]] = {}
        for goal_id, event_id in await self._fetch(sql, (goals, ids)):
            found.setdefault(goal_id, set()).add(event_id)
        return found

    async def _append(self, events: list[EncodedEvent], now: float) -> AppendResult:
        by_goal: dict[str, list[EncodedEvent]] = {}
        for event in events:
            by_goal.setdefault(event.goal_id, []).append(event)
        seqs: dict[tuple[str, str], int] = {}
        async with self._connection() as db, db.transaction():
            async with db.pipeline():
                cursors = []
                for goal_id in sorted(by_goal):  # id order: no deadlocks between appenders
                    group = by_goal[goal_id]
                    params = (goal_id, [e.event_id for e in group], [e.payload for e in group], now)
                    cursors.append((goal_id, await db.execute(_APPEND, params)))
            for goal_id, cur in cursors:
                seqs.update({(goal_id, event_id): seq for event_id, seq in await cur.fetchall()})
        return append_result(events, seqs, now)

    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        async with self._connection() as db:
            cur = await db.execute(sql, params)
            return cur.rowcount

    async def _mark_delivered(self, suggestion_ids: list[str]) -> int:
        sql = (
            "UPDATE gk_outbox SET delivered_at = %s WHERE delivered_at IS NULL "
            "AND suggestion_id = ANY(%b::text[])"
        )
        return await self._execute(sql, (self.now(), suggestion_ids))
