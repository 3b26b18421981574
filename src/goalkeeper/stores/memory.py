"""``memory://``: a real in-process store, for tests and for embedding.

It has exactly the semantics of the durable backends (it passes the same contract suite): values
are stored as JSON text, so a caller mutating a dict it passed in or got back changes nothing
stored, and a commit is validated and encoded completely before anything is changed, so it is
atomic. What it cannot do is outlive its process: a crash loses everything. Each
``open_store("memory://")`` is a fresh, independent store; share one by passing the object around.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from dataclasses import dataclass, field

from ..ports.store import (
    AppendResult,
    CommitResult,
    DeadLetter,
    GoalRecord,
    GoalStatus,
    GoalSummary,
    MetricPoint,
    StoredEvent,
)
from ..ports.store import StoredSuggestion as Suggestion
from ._base import (
    SCHEMA_VERSION,
    BaseStore,
    EncodedCommit,
    EncodedEvent,
    loads,
    positive_int,
    split_options,
    stored_event,
)

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Goal:
    version: int = 0
    snapshot: str = ""
    updated_at: float = 0.0
    status: GoalStatus = GoalStatus.ACTIVE
    # Applied event ids, oldest first, so the retention drops from the front in O(1).
    inbox: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # The metrics history: seq -> (JSON, created_at), dense from metrics_first to metrics_n.
    metrics: dict[int, tuple[str, float]] = field(default_factory=dict)
    metrics_first: int = 1
    metrics_n: int = 0
    # The goal's suggestion ids in (version, creation) order, with their versions for bisecting.
    suggestion_ids: list[str] = field(default_factory=list)
    suggestion_versions: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Log:
    first_seq: int = 1  # entries hold first_seq..last_seq, densely
    last_seq: int = 0
    entries: dict[int, tuple[str, str, float]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Outgoing:
    goal_id: str
    version: int
    payload: str
    created_at: float
    delivered: bool = False


class MemoryStore(BaseStore):
    """The in-process :class:`~goalkeeper.ports.store.StateStore` (``memory://``).

    Thread-safe (one lock around every operation), so the sync facade and an event loop may share
    it. Durability: none; see the module docstring.
    """

    backend = "memory"

    def __init__(
        self,
        url: str = "memory://",
        *,
        inbox_keep: int | None = None,
        metrics_retention: int | None = None,
    ) -> None:
        """Create an empty store.

        Args:
            url: ``memory://`` (query options ``inbox_keep`` and ``metrics_retention`` are
                honoured by :func:`open_store`).
            inbox_keep: applied event ids kept per goal (default 10,000).
            metrics_retention: metric points kept per goal (default 10,000).
        """
        super().__init__(url, inbox_keep=inbox_keep, metrics_retention=metrics_retention)
        self._lock = threading.Lock()
        self._schema = 0
        self._goals: dict[str, _Goal] = {}
        self._goal_ids: list[str] = []  # sorted, for list_goals
        self._logs: dict[str, _Log] = {}
        self._outbox: dict[str, _Outgoing] = {}
        self._undelivered: OrderedDict[str, None] = OrderedDict()
        self._dead: list[tuple[str, str, str | None, str | None, float]] = []

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        """Build from a ``memory://`` URL (options ``inbox_keep``, ``metrics_retention``)."""
        _, options = split_options(
            url, {"inbox_keep": positive_int, "metrics_retention": positive_int}, pass_through=False
        )
        return cls(url, **options)

    async def _connect(self) -> None:
        return None

    async def _close(self) -> None:
        # The data stays: closing and reopening the same object keeps its content.
        return None

    async def _schema_version(self) -> int:
        return self._schema

    async def _migrate(self, target: int = SCHEMA_VERSION) -> int:
        # Nothing outlives the object, so there is no old data to convert: recording is enough.
        with self._lock:
            self._schema = max(self._schema, target)
            return self._schema

    async def _load(self, goal_id: str) -> GoalRecord | None:
        with self._lock:
            goal = self._goals.get(goal_id)
            if goal is None:
                return None
            return GoalRecord(goal_id, goal.version, loads(goal.snapshot), goal.updated_at, goal.status)

    async def _commit_many(self, commits: list[EncodedCommit]) -> list[CommitResult]:
        now = self.now()
        results: list[CommitResult] = []
        with self._lock:
            for commit in commits:
                goal = self._goals.get(commit.goal_id)
                stored = goal.version if goal else 0
                if stored != commit.expected_version:
                    results.append(commit.conflict(stored))
                    continue
                if goal is None:
                    goal = self._goals[commit.goal_id] = _Goal()
                    insort(self._goal_ids, commit.goal_id)
                dup_events = [e for e in commit.event_ids if e in goal.inbox]
                for event_id in commit.event_ids:
                    goal.inbox.setdefault(event_id)
                while len(goal.inbox) > self.inbox_keep:
                    goal.inbox.popitem(last=False)
                dup_suggestions = []
                for sid, payload in commit.suggestions:
                    if sid in self._outbox:
                        dup_suggestions.append(sid)
                        continue
                    self._outbox[sid] = _Outgoing(commit.goal_id, stored + 1, payload, now)
                    self._undelivered[sid] = None
                    goal.suggestion_ids.append(sid)
                    goal.suggestion_versions.append(stored + 1)
                for point in commit.metrics:
                    goal.metrics_n += 1
                    goal.metrics[goal.metrics_n] = (point, now)
                while goal.metrics_n - goal.metrics_first + 1 > self.metrics_retention:
                    del goal.metrics[goal.metrics_first]
                    goal.metrics_first += 1
                goal.version, goal.snapshot, goal.updated_at = stored + 1, commit.snapshot, now
                results.append(commit.committed(stored + 1, dup_events, dup_suggestions, goal.metrics_n))
        return results

    async def _applied(self, goal_id: str, event_ids: list[str]) -> set[str]:
        with self._lock:
            goal = self._goals.get(goal_id)
            return {e for e in event_ids if goal and e in goal.inbox}

    async def _append(self, events: list[EncodedEvent], now: float) -> AppendResult:
        appended: list[StoredEvent] = []
        duplicates: list[str] = []
        with self._lock:
            for event in events:
                log = self._logs.setdefault(event.goal_id, _Log())
                if event.event_id in log.ids:
                    duplicates.append(event.event_id)
                    continue
                log.last_seq += 1
                log.ids[event.event_id] = log.last_seq
                log.entries[log.last_seq] = (event.event_id, event.payload, now)
                appended.append(stored_event(event, log.last_seq, now))
        return AppendResult(tuple(appended), tuple(duplicates))

    async def _read_events(self, goal_id: str, from_seq: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            log = self._logs.get(goal_id)
            if log is None:
                return []
            out: list[StoredEvent] = []
            seq = max(from_seq, log.first_seq)
            while seq <= log.last_seq and len(out) < limit:
                event_id, payload, at = log.entries[seq]
                out.append(StoredEvent(goal_id, seq, event_id, loads(payload), at))
                seq += 1
            return out

    async def _trim_events(self, goal_id: str, before_seq: int) -> int:
        with self._lock:
            log = self._logs.get(goal_id)
            if log is None:
                return 0
            end = min(before_seq, log.last_seq + 1)
            count = 0
            while log.first_seq < end:
                event_id, _, _ = log.entries.pop(log.first_seq)
                del log.ids[event_id]
                log.first_seq += 1
                count += 1
            return count

    async def _pending(self, goal_id: str | None, limit: int) -> list[Suggestion]:
        out: list[Suggestion] = []
        with self._lock:
            for sid in self._undelivered:
                item = self._outbox[sid]
                if goal_id is None or item.goal_id == goal_id:
                    out.append(
                        Suggestion(
                            sid, item.goal_id, item.version, loads(item.payload), item.created_at, False
                        )
                    )
                    if len(out) == limit:
                        break
        return out

    async def _mark_delivered(self, suggestion_ids: list[str]) -> int:
        count = 0
        with self._lock:
            for sid in suggestion_ids:
                if self._undelivered.pop(sid, 0) is None:
                    self._outbox[sid].delivered = True
                    count += 1
        return count

    async def _list_goals(
        self, prefix: str, after: str | None, limit: int, status: GoalStatus | None
    ) -> list[GoalSummary]:
        out: list[GoalSummary] = []
        with self._lock:
            start = bisect_left(self._goal_ids, prefix)
            if after is not None:
                start = max(start, bisect_right(self._goal_ids, after))
            for i in range(start, len(self._goal_ids)):
                goal_id = self._goal_ids[i]
                if not goal_id.startswith(prefix) or len(out) == limit:
                    break
                goal = self._goals[goal_id]
                if status is None or goal.status == status:
                    out.append(GoalSummary(goal_id, goal.version, goal.updated_at, goal.status))
        return out

    def _suggestion(self, sid: str) -> Suggestion:
        item = self._outbox[sid]
        return Suggestion(
            sid, item.goal_id, item.version, loads(item.payload), item.created_at, item.delivered
        )

    async def _suggestions(self, goal_id: str, after_version: int, limit: int) -> list[Suggestion]:
        with self._lock:
            goal = self._goals.get(goal_id)
            if goal is None:
                return []
            start = bisect_right(goal.suggestion_versions, after_version)
            return [self._suggestion(sid) for sid in goal.suggestion_ids[start : start + limit]]

    async def _get_suggestion(self, suggestion_id: str) -> Suggestion | None:
        with self._lock:
            return self._suggestion(suggestion_id) if suggestion_id in self._outbox else None

    async def _metrics_history(self, goal_id: str, after_seq: int, limit: int) -> list[MetricPoint]:
        with self._lock:
            goal = self._goals.get(goal_id)
            if goal is None:
                return []
            first = max(after_seq + 1, goal.metrics_first)
            last = min(goal.metrics_n, first + limit - 1)
            return [
                MetricPoint(goal_id, seq, loads(goal.metrics[seq][0]), goal.metrics[seq][1])
                for seq in range(first, last + 1)
            ]

    async def _set_status(self, goal_id: str, status: GoalStatus) -> bool:
        with self._lock:
            goal = self._goals.get(goal_id)
            if goal is None:
                return False
            goal.status = status
            return True

    async def _add_dead_letter(
        self, payload: str, reason: str, goal_id: str | None, event_id: str | None, now: float
    ) -> DeadLetter:
        with self._lock:
            if goal_id is not None and event_id is not None:
                for i, (first_reason, first_payload, owner, eid, at) in enumerate(self._dead, start=1):
                    if owner == goal_id and eid == event_id:  # one dead letter per (goal, event)
                        return DeadLetter(i, first_reason, loads(first_payload), goal_id, event_id, at)
            self._dead.append((reason, payload, goal_id, event_id, now))
            return DeadLetter(len(self._dead), reason, loads(payload), goal_id, event_id, now)

    async def _dead_letters(self, goal_id: str | None, limit: int) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        with self._lock:
            for i, (reason, payload, owner, event_id, at) in enumerate(self._dead, start=1):
                if goal_id is None or owner == goal_id:
                    out.append(DeadLetter(i, reason, loads(payload), owner, event_id, at))
                    if len(out) == limit:
                        break
        return out
