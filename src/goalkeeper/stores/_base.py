"""What every store backend shares: argument validation, JSON encoding, error translation, URL options.

:class:`BaseStore` implements the public :class:`~goalkeeper.ports.store.StateStore` methods once:
it validates and encodes the arguments, then calls the backend's ``_``-prefixed hook inside
:func:`translate_errors`, so the four backends differ only in how they talk to their database and
cannot drift apart in what they accept or how they fail.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from ..errors import ConfigurationError, ConflictError, GoalkeeperError, InvalidInputError, StoreError
from ..ports.store import (
    AppendResult,
    Commit,
    CommitResult,
    DeadLetter,
    GoalRecord,
    GoalStatus,
    GoalSummary,
    MetricPoint,
    StoredEvent,
    StoredSuggestion,
    check_after,
    check_event,
    check_limit,
    check_status,
)
from ._codec import (
    EncodedCommit,
    EncodedEvent,
    append_result,
    dedup,
    dumps,
    loads,
    split_events,
    stored_event,
)
from ._urls import mask_url, positive_float, positive_int, split_options

__all__ = [
    "DEFAULT_INBOX_KEEP",
    "DEFAULT_METRICS_RETENTION",
    "SCHEMA_VERSION",
    "BaseStore",
    "EncodedCommit",
    "EncodedEvent",
    "append_result",
    "dumps",
    "loads",
    "mask_url",
    "positive_float",
    "positive_int",
    "split_options",
    "stored_event",
    "translate_errors",
]

SCHEMA_VERSION = 2
"""The schema version this goalkeeper writes; a store at a higher version is refused.

1: goals, inbox, outbox, event log, dead letters. 2: metrics history, goal status, per-goal
suggestion index.
"""

DEFAULT_INBOX_KEEP = 10_000
"""Applied event ids kept per goal (the inbox retention; see docs/stores.md)."""

DEFAULT_METRICS_RETENTION = 10_000
"""Metric points kept per goal (the history retention; see docs/stores.md)."""


def check_schema(found: int, backend: str) -> None:
    """Refuse a store whose schema is newer than this code understands.

    Raises:
        StoreError: ``found`` > :data:`SCHEMA_VERSION`.
    """
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"{backend} store has schema version {found}, newer than the {SCHEMA_VERSION} this goalkeeper "
            "supports; upgrade goalkeeper (downgrades are not supported)"
        )


@contextlib.contextmanager
def translate_errors(
    backend: str, what: str, driver_errors: tuple[type[BaseException], ...]
) -> Iterator[None]:
    """Turn driver exceptions raised inside the block into :class:`StoreError`.

    goalkeeper's own errors pass through unchanged; the driver's error is kept as ``__cause__``.
    """
    try:
        yield
    except GoalkeeperError:
        raise
    except driver_errors as exc:
        raise StoreError(f"{backend} store: {what} failed: {exc}") from exc


def _check_goal_id(goal_id: object) -> str:
    if not isinstance(goal_id, str) or not goal_id:
        raise InvalidInputError(f"must be a non-empty string, got {goal_id!r}", field="goal_id")
    return goal_id


def _check_ids(ids: Iterable[str], name: str) -> list[str]:
    if isinstance(ids, str | bytes):
        raise InvalidInputError("must be an iterable of ids, not a string", field=name)
    result = list(ids)
    for i, item in enumerate(result):
        if not isinstance(item, str) or not item:
            raise InvalidInputError(f"must be a non-empty string, got {item!r}", field=f"{name}[{i}]")
    return result


def _check_seq(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"must be an int >= 0, got {value!r}", field=name)
    return value


class BaseStore:
    """Shared implementation of the :class:`~goalkeeper.ports.store.StateStore` methods.

    Subclasses set :attr:`backend` and :attr:`driver_errors` and implement the ``_`` hooks; they
    receive validated, encoded arguments and run inside :func:`translate_errors`.
    """

    backend: ClassVar[str] = "base"
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(
        self,
        url: str,
        *,
        inbox_keep: int | None = None,
        metrics_retention: int | None = None,
    ) -> None:
        """Remember the configuration; no I/O happens before :meth:`open`.

        Args:
            url: the store's URL (kept with the password masked).
            inbox_keep: applied event ids kept per goal (None: :data:`DEFAULT_INBOX_KEEP`).
            metrics_retention: metric points kept per goal (None: :data:`DEFAULT_METRICS_RETENTION`).

        Raises:
            ConfigurationError: ``inbox_keep`` or ``metrics_retention`` is not an int >= 1.
        """
        inbox_keep = DEFAULT_INBOX_KEEP if inbox_keep is None else inbox_keep
        metrics_retention = DEFAULT_METRICS_RETENTION if metrics_retention is None else metrics_retention
        for name, value in (("inbox_keep", inbox_keep), ("metrics_retention", metrics_retention)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        self.url = mask_url(url)
        self.inbox_keep = inbox_keep
        self.metrics_retention = metrics_retention
        self._opened = False
        self._connected = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        # Every operation but connect needs an open connection; say so instead of failing obscurely.
        if not self._connected and what != "connect":
            raise StoreError(
                f"{self.backend} store is not open: call `await store.open()` or use `async with`"
            )
        with translate_errors(self.backend, what, self.driver_errors):
            yield

    @staticmethod
    def now() -> float:
        """The store clock (seconds since the epoch) used for ``updated_at`` and friends."""
        return time.time()

    async def __aenter__(self) -> Self:
        """Open the store."""
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        await self.close()

    async def open(self) -> None:
        """Connect and create or migrate the schema (idempotent).

        Raises:
            StoreError: the server is unreachable or the schema is newer than ours.
        """
        if self._opened:
            return
        with self._errors("connect"):
            await self._connect()
        self._connected = True
        try:
            await self.migrate()
        except BaseException:
            self._connected = False
            await self._close()
            raise
        self._opened = True

    async def close(self) -> None:
        """Release connections (idempotent)."""
        if not self._connected:
            return
        self._opened = self._connected = False
        with translate_errors(self.backend, "close", self.driver_errors):
            await self._close()

    async def schema_version(self) -> int:
        """The schema version recorded in the store (0 if never migrated)."""
        with self._errors("read schema version"):
            return await self._schema_version()

    async def migrate(self) -> int:
        """Apply pending migrations in order; return the schema version now recorded.

        Raises:
            StoreError: the store's schema is newer than this goalkeeper's.
        """
        with self._errors("migrate"):
            return await self._migrate()

    async def load(self, goal_id: str) -> GoalRecord | None:
        """The goal's latest committed state, or None."""
        goal_id = _check_goal_id(goal_id)
        with self._errors("load"):
            return await self._load(goal_id)

    async def commit(self, commit: Commit) -> CommitResult:
        """Atomically store one goal's new state.

        Raises:
            ConflictError: the stored version is not ``commit.expected_version``; nothing written.
        """
        (result,) = await self.commit_many([commit])
        if not result.committed:
            raise ConflictError(
                f"goal {commit.goal_id!r}: expected version {commit.expected_version} but the stored "
                f"version is {result.version}; nothing was written (reload and retry)"
            )
        return result

    async def commit_many(self, commits: Sequence[Commit]) -> list[CommitResult]:
        """Store several commits in one transaction (see the Protocol for the per-goal rules)."""
        encoded = [EncodedCommit.of(commit, i) for i, commit in enumerate(commits)]
        if not encoded:
            return []
        with self._errors("commit"):
            return await self._commit_many(encoded)

    async def applied_event_ids(self, goal_id: str, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are in the goal's inbox (already applied)."""
        goal_id = _check_goal_id(goal_id)
        ids = _check_ids(event_ids, "event_ids")
        if not ids:
            return set()
        with self._errors("read inbox"):
            return await self._applied(goal_id, ids)

    async def applied_event_ids_many(self, wanted: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
        """:meth:`applied_event_ids` for several goals in one call (one round trip on the server
        backends): for each goal id of ``wanted``, which of its event ids are in its inbox.

        The worker checks every goal of a batch with it. It is not part of the
        :class:`~goalkeeper.ports.store.StateStore` protocol: a store without it is asked goal by goal.
        """
        if not isinstance(wanted, Mapping):
            raise InvalidInputError(f"must be a mapping of goal id to event ids, got {type(wanted).__name__}",
                                    field="wanted")  # fmt: skip
        checked: dict[str, list[str]] = {}
        for goal_id, event_ids in wanted.items():
            checked[_check_goal_id(goal_id)] = _check_ids(event_ids, "event_ids")
        asked = {goal_id: ids for goal_id, ids in checked.items() if ids}
        found: dict[str, set[str]] = {}
        if asked:
            with self._errors("read inbox"):
                found = await self._applied_many(asked)
        return {goal_id: found.get(goal_id, set()) for goal_id in checked}

    async def append_events(self, events: Sequence[Mapping[str, Any]]) -> AppendResult:
        """Append events to their goals' logs (atomic; duplicates by event id skipped and reported)."""
        encoded: list[EncodedEvent] = []
        for i, event in enumerate(events):
            goal_id, event_id = check_event(event, i)
            encoded.append(EncodedEvent(goal_id, event_id, dumps(dict(event), f"events[{i}]")))
        unique, repeated = split_events(encoded)
        if not unique:
            return AppendResult((), tuple(repeated))
        with self._errors("append events"):
            result = await self._append(unique, self.now())
        return AppendResult(result.appended, result.duplicate_event_ids + tuple(repeated))

    async def read_events(self, goal_id: str, *, from_seq: int = 1, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events of the goal's log with ``seq >= from_seq``, in order."""
        goal_id = _check_goal_id(goal_id)
        from_seq = _check_seq(from_seq, "from_seq")
        limit = check_limit(limit)
        with self._errors("read events"):
            return await self._read_events(goal_id, from_seq, limit)

    async def trim_events(self, goal_id: str, *, before_seq: int) -> int:
        """Delete the goal's log entries with ``seq < before_seq``; return how many went."""
        goal_id = _check_goal_id(goal_id)
        before_seq = _check_seq(before_seq, "before_seq")
        with self._errors("trim events"):
            return await self._trim_events(goal_id, before_seq)

    async def pending_suggestions(
        self, *, goal_id: str | None = None, limit: int = 100
    ) -> list[StoredSuggestion]:
        """Undelivered suggestions (of one goal, or all), oldest first."""
        if goal_id is not None:
            goal_id = _check_goal_id(goal_id)
        limit = check_limit(limit)
        with self._errors("read suggestions"):
            return await self._pending(goal_id, limit)

    async def mark_delivered(self, suggestion_ids: Iterable[str]) -> int:
        """Mark suggestions delivered; return how many were pending (unknown ids are ignored)."""
        ids, _ = dedup(_check_ids(suggestion_ids, "suggestion_ids"))
        if not ids:
            return 0
        with self._errors("mark delivered"):
            return await self._mark_delivered(list(ids))

    async def suggestions(
        self, goal_id: str, *, limit: int = 100, after_version: int = 0
    ) -> list[StoredSuggestion]:
        """The goal's suggestions (delivered or not) with ``version > after_version``, oldest first."""
        goal_id = _check_goal_id(goal_id)
        limit = check_limit(limit)
        after_version = check_after(after_version, "after_version")
        with self._errors("read suggestions"):
            return await self._suggestions(goal_id, after_version, limit)

    async def get_suggestion(self, suggestion_id: str) -> StoredSuggestion | None:
        """The suggestion with that id (of any goal), or None."""
        if not isinstance(suggestion_id, str) or not suggestion_id:
            raise InvalidInputError(
                f"must be a non-empty string, got {suggestion_id!r}", field="suggestion_id"
            )
        with self._errors("read suggestion"):
            return await self._get_suggestion(suggestion_id)

    async def metrics_history(
        self, goal_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[MetricPoint]:
        """Up to ``limit`` of the goal's metric points with ``seq > after_seq``, ascending."""
        goal_id = _check_goal_id(goal_id)
        after_seq = check_after(after_seq, "after_seq")
        limit = check_limit(limit)
        with self._errors("read metrics history"):
            return await self._metrics_history(goal_id, after_seq, limit)

    async def set_goal_status(self, goal_id: str, status: GoalStatus | str) -> bool:
        """Set the goal's status; False if the goal has no record (see the Protocol)."""
        goal_id = _check_goal_id(goal_id)
        checked = check_status(status)
        with self._errors("set goal status"):
            return await self._set_status(goal_id, checked)

    async def list_goals(
        self,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int = 100,
        status: GoalStatus | str | None = None,
    ) -> list[GoalSummary]:
        """Goals whose id starts with ``prefix``, ordered by id, strictly after the cursor ``after``.

        ``status`` keeps only the goals with that status (None: all).
        """
        if not isinstance(prefix, str):
            raise InvalidInputError(f"must be a string, got {prefix!r}", field="prefix")
        if after is not None and not isinstance(after, str):
            raise InvalidInputError(f"must be a string or None, got {after!r}", field="after")
        limit = check_limit(limit)
        checked = None if status is None else check_status(status)
        with self._errors("list goals"):
            return await self._list_goals(prefix, after, limit, checked)

    async def add_dead_letter(
        self,
        payload: Mapping[str, Any],
        reason: str,
        *,
        goal_id: str | None = None,
        event_id: str | None = None,
    ) -> DeadLetter:
        """Record an input that could not be processed, with the reason."""
        if not isinstance(payload, Mapping):
            raise InvalidInputError("must be a dict", field="payload")
        if not isinstance(reason, str) or not reason:
            raise InvalidInputError(f"must be a non-empty string, got {reason!r}", field="reason")
        for name, value in (("goal_id", goal_id), ("event_id", event_id)):
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"must be a string or None, got {value!r}", field=name)
        text = dumps(dict(payload), "payload")
        with self._errors("add dead letter"):
            return await self._add_dead_letter(text, reason, goal_id, event_id, self.now())

    async def dead_letters(self, *, goal_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead-letter records (of one goal, or all), oldest first."""
        if goal_id is not None:
            goal_id = _check_goal_id(goal_id)
        limit = check_limit(limit)
        with self._errors("read dead letters"):
            return await self._dead_letters(goal_id, limit)

    # Backend hooks. They receive validated arguments and run inside translate_errors.

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _schema_version(self) -> int:
        raise NotImplementedError

    async def _migrate(self, target: int = SCHEMA_VERSION) -> int:
        # ``target`` < SCHEMA_VERSION exists for the upgrade tests, which build an old database.
        raise NotImplementedError

    async def _load(self, goal_id: str) -> GoalRecord | None:
        raise NotImplementedError

    async def _commit_many(self, commits: list[EncodedCommit]) -> list[CommitResult]:
        raise NotImplementedError

    async def _applied(self, goal_id: str, event_ids: list[str]) -> set[str]:
        raise NotImplementedError

    async def _applied_many(self, wanted: dict[str, list[str]]) -> dict[str, set[str]]:
        """Backends with a cheaper way override this; the default asks goal by goal."""
        return {goal_id: await self._applied(goal_id, ids) for goal_id, ids in wanted.items()}

    async def _append(self, events: list[EncodedEvent], now: float) -> AppendResult:
        raise NotImplementedError

    async def _read_events(self, goal_id: str, from_seq: int, limit: int) -> list[StoredEvent]:
        raise NotImplementedError

    async def _trim_events(self, goal_id: str, before_seq: int) -> int:
        raise NotImplementedError

    async def _pending(self, goal_id: str | None, limit: int) -> list[StoredSuggestion]:
        raise NotImplementedError

    async def _mark_delivered(self, suggestion_ids: list[str]) -> int:
        raise NotImplementedError

    async def _list_goals(
        self, prefix: str, after: str | None, limit: int, status: GoalStatus | None
    ) -> list[GoalSummary]:
        raise NotImplementedError

    async def _suggestions(self, goal_id: str, after_version: int, limit: int) -> list[StoredSuggestion]:
        raise NotImplementedError

    async def _get_suggestion(self, suggestion_id: str) -> StoredSuggestion | None:
        raise NotImplementedError

    async def _metrics_history(self, goal_id: str, after_seq: int, limit: int) -> list[MetricPoint]:
        raise NotImplementedError

    async def _set_status(self, goal_id: str, status: GoalStatus) -> bool:
        raise NotImplementedError

    async def _add_dead_letter(
        self, payload: str, reason: str, goal_id: str | None, event_id: str | None, now: float
    ) -> DeadLetter:
        raise NotImplementedError

    async def _dead_letters(self, goal_id: str | None, limit: int) -> list[DeadLetter]:
        raise NotImplementedError
