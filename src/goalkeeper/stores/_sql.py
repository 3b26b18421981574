"""SQL shared by the SQLite and PostgreSQL stores (``%s`` placeholders; SQLite swaps them for ``?``).

Both backends use the same tables (PostgreSQL puts them in their own schema):

* ``gk_schema(version, description, applied_at)``: one row per applied migration;
* ``gk_goals(goal_id, version, snapshot, updated_at, inbox_n, metrics_n, status)``: the state, one
  row per goal; ``inbox_n`` counts the ids ever added to the goal's inbox and numbers them for the
  retention, ``metrics_n`` does the same for the metrics history (schema 2);
* ``gk_inbox(goal_id, event_id, seq)``: applied event ids, the newest ``inbox_keep`` per goal;
* ``gk_outbox(pos, suggestion_id, goal_id, version, payload, created_at, delivered_at)``;
* ``gk_log_heads(goal_id, last_seq)`` and ``gk_events(goal_id, seq, event_id, payload, appended_at)``:
  the event log; the head row is locked while appending, so sequence numbers have no gaps;
* ``gk_dead_letters(id, goal_id, event_id, reason, payload, created_at)``;
* ``gk_metrics(goal_id, seq, point, created_at)``: the metrics history, the newest
  ``metrics_retention`` points per goal (schema 2).

Goal ids are compared by code point everywhere (SQLite ``BINARY``, PostgreSQL ``COLLATE "C"``), so
``list_goals`` pages identically on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..ports.store import (
    DeadLetter,
    GoalRecord,
    GoalStatus,
    GoalSummary,
    MetricPoint,
    StoredEvent,
    StoredSuggestion,
)
from ._base import BaseStore, loads

__all__ = [
    "ADD_DEAD_LETTER",
    "GET_SUGGESTION",
    "GOAL_SUGGESTIONS",
    "LOAD_GOAL",
    "METRICS_HISTORY",
    "READ_EVENTS",
    "SET_STATUS",
    "TRIM_EVENTS",
    "SQLStore",
    "dead_letters_query",
    "list_goals_query",
    "pending_query",
    "prefix_end",
]

LOAD_GOAL = "SELECT version, snapshot, updated_at, status FROM gk_goals WHERE goal_id = %s"
SET_STATUS = "UPDATE gk_goals SET status = %s WHERE goal_id = %s"
METRICS_HISTORY = (
    "SELECT seq, point, created_at FROM gk_metrics WHERE goal_id = %s AND seq > %s ORDER BY seq LIMIT %s"
)
READ_EVENTS = (
    "SELECT seq, event_id, payload, appended_at FROM gk_events "
    "WHERE goal_id = %s AND seq >= %s ORDER BY seq LIMIT %s"
)
TRIM_EVENTS = "DELETE FROM gk_events WHERE goal_id = %s AND seq < %s"
ADD_DEAD_LETTER = (
    "INSERT INTO gk_dead_letters (goal_id, event_id, reason, payload, created_at) "
    "VALUES (%s, %s, %s, %s, %s) RETURNING id"
)
# One dead letter per (goal, event): insert only when the pair has none yet (the goal's rows are
# found through the (goal_id, id) index), else read the one recorded first.
ADD_DEAD_LETTER_ONCE = (
    "INSERT INTO gk_dead_letters (goal_id, event_id, reason, payload, created_at) "
    "SELECT %s, %s, %s, %s, %s WHERE NOT EXISTS "
    "(SELECT 1 FROM gk_dead_letters WHERE goal_id = %s AND event_id = %s) RETURNING id"
)
DEAD_LETTER_OF_EVENT = (
    "SELECT id, reason, payload, created_at FROM gk_dead_letters "
    "WHERE goal_id = %s AND event_id = %s ORDER BY id LIMIT 1"
)
_SUGGESTION_COLUMNS = "suggestion_id, goal_id, version, payload, created_at"
_FULL_SUGGESTION_COLUMNS = f"{_SUGGESTION_COLUMNS}, delivered_at IS NOT NULL"
# The (goal_id, version, pos) index of schema 2 serves this directly.
GOAL_SUGGESTIONS = (
    f"SELECT {_FULL_SUGGESTION_COLUMNS} FROM gk_outbox WHERE goal_id = %s AND version > %s "
    "ORDER BY version, pos LIMIT %s"
)
GET_SUGGESTION = f"SELECT {_FULL_SUGGESTION_COLUMNS} FROM gk_outbox WHERE suggestion_id = %s"


def pending_query(goal_id: str | None, limit: int) -> tuple[str, tuple[object, ...]]:
    """Undelivered suggestions, oldest first (uses the partial index on pending rows)."""
    where = "delivered_at IS NULL" + (" AND goal_id = %s" if goal_id is not None else "")
    params = (goal_id, limit) if goal_id is not None else (limit,)
    return f"SELECT {_SUGGESTION_COLUMNS} FROM gk_outbox WHERE {where} ORDER BY pos LIMIT %s", params


def dead_letters_query(goal_id: str | None, limit: int) -> tuple[str, tuple[object, ...]]:
    """Dead-letter records, oldest first."""
    where = " WHERE goal_id = %s" if goal_id is not None else ""
    params = (goal_id, limit) if goal_id is not None else (limit,)
    columns = "id, reason, payload, goal_id, event_id, created_at"
    return f"SELECT {columns} FROM gk_dead_letters{where} ORDER BY id LIMIT %s", params


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound).

    Strings starting with ``prefix`` are exactly those in ``[prefix, prefix_end(prefix))`` in code
    point order, which lets the goal listing use the primary-key index instead of a scan.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # surrogates cannot be stored as UTF-8; skip over them
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def list_goals_query(
    prefix: str, after: str | None, limit: int, status: GoalStatus | None = None
) -> tuple[str, tuple[object, ...]]:
    """Goals with ids in the prefix range, after the cursor, with the status, ordered by id.

    With a status the (status, goal_id) index of schema 2 serves the range, so listing the few
    active goals among many closed ones reads only the active ones.
    """
    clauses = ["goal_id >= %s"]
    params: list[object] = [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append("goal_id < %s")
        params.append(end)
    if after is not None:
        clauses.append("goal_id > %s")
        params.append(after)
    if status is not None:
        clauses.append("status = %s")
        params.append(status.value)
    params.append(limit)
    where = " AND ".join(clauses)
    sql = f"SELECT goal_id, version, updated_at, status FROM gk_goals WHERE {where} ORDER BY goal_id LIMIT %s"
    return sql, tuple(params)


class SQLStore(BaseStore):
    """The reads and simple writes the SQLite and PostgreSQL stores share, over ``_fetch``/``_execute``.

    Subclasses run one statement (``%s`` placeholders) with :meth:`_fetch` (returning rows) or
    :meth:`_execute` (returning the affected row count), each atomic on its own.
    """

    async def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        raise NotImplementedError

    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        raise NotImplementedError

    async def _load(self, goal_id: str) -> GoalRecord | None:
        rows = await self._fetch(LOAD_GOAL, (goal_id,))
        if not rows:
            return None
        version, snapshot, updated_at, status = rows[0]
        return GoalRecord(goal_id, version, loads(snapshot), updated_at, GoalStatus(status))

    async def _read_events(self, goal_id: str, from_seq: int, limit: int) -> list[StoredEvent]:
        rows = await self._fetch(READ_EVENTS, (goal_id, from_seq, limit))
        return [
            StoredEvent(goal_id, seq, event_id, loads(payload), at) for seq, event_id, payload, at in rows
        ]

    async def _trim_events(self, goal_id: str, before_seq: int) -> int:
        return await self._execute(TRIM_EVENTS, (goal_id, before_seq))

    async def _pending(self, goal_id: str | None, limit: int) -> list[StoredSuggestion]:
        rows = await self._fetch(*pending_query(goal_id, limit))
        return [StoredSuggestion(sid, gid, version, loads(p), at, False) for sid, gid, version, p, at in rows]

    async def _list_goals(
        self, prefix: str, after: str | None, limit: int, status: GoalStatus | None
    ) -> list[GoalSummary]:
        rows = await self._fetch(*list_goals_query(prefix, after, limit, status))
        return [GoalSummary(goal_id, version, at, GoalStatus(st)) for goal_id, version, at, st in rows]

    async def _suggestions(self, goal_id: str, after_version: int, limit: int) -> list[StoredSuggestion]:
        rows = await self._fetch(GOAL_SUGGESTIONS, (goal_id, after_version, limit))
        return [_suggestion(row) for row in rows]

    async def _get_suggestion(self, suggestion_id: str) -> StoredSuggestion | None:
        rows = await self._fetch(GET_SUGGESTION, (suggestion_id,))
        return _suggestion(rows[0]) if rows else None

    async def _metrics_history(self, goal_id: str, after_seq: int, limit: int) -> list[MetricPoint]:
        rows = await self._fetch(METRICS_HISTORY, (goal_id, after_seq, limit))
        return [MetricPoint(goal_id, seq, loads(point), at) for seq, point, at in rows]

    async def _set_status(self, goal_id: str, status: GoalStatus) -> bool:
        return await self._execute(SET_STATUS, (status.value, goal_id)) > 0

    async def _add_dead_letter(
        self, payload: str, reason: str, goal_id: str | None, event_id: str | None, now: float
    ) -> DeadLetter:
        if goal_id is None or event_id is None:
            rows = await self._fetch(ADD_DEAD_LETTER, (goal_id, event_id, reason, payload, now))
            return DeadLetter(rows[0][0], reason, loads(payload), goal_id, event_id, now)
        params = (goal_id, event_id, reason, payload, now, goal_id, event_id)
        rows = await self._fetch(ADD_DEAD_LETTER_ONCE, params)
        if rows:
            return DeadLetter(rows[0][0], reason, loads(payload), goal_id, event_id, now)
        [(dead_id, first_reason, first_payload, at)] = await self._fetch(
            DEAD_LETTER_OF_EVENT, (goal_id, event_id)
        )
        return DeadLetter(dead_id, first_reason, loads(first_payload), goal_id, event_id, at)

    async def _dead_letters(self, goal_id: str | None, limit: int) -> list[DeadLetter]:
        rows = await self._fetch(*dead_letters_query(goal_id, limit))
        return [DeadLetter(i, reason, loads(p), gid, eid, at) for i, reason, p, gid, eid, at in rows]


def _suggestion(row: Sequence[Any]) -> StoredSuggestion:
    sid, goal_id, version, payload, created_at, delivered = row
    return StoredSuggestion(sid, goal_id, version, loads(payload), created_at, bool(delivered))
