"""The ``StateStore`` port: where each goal's durable state lives, and the records it deals in.

A store keeps, per goal:

* the **state**: the latest snapshot (a JSON-able dict, ``GoalSession.snapshot()`` output; the store
  never looks inside it) and its ``version``, a counter that starts at 0 (no state yet) and grows
  by exactly 1 per successful commit;
* the **inbox**: ids of the events already applied to that state, so a redelivered event is
  recognised and skipped (retention: the newest ``inbox_keep`` ids per goal, see ``docs/stores.md``);
* the **outbox**: suggestions produced by commits, unique by ``suggestion_id``, pending until they are
  marked delivered;
* the **event log**: an append-only, per-goal sequence (1, 2, 3, ...) of the events received.

Besides that it keeps dead-letter records (inputs that could not be processed, with the reason) and
the schema version of its own tables.

The one write that matters is :meth:`StateStore.commit`: in a single atomic step it checks that the
stored version is still the one the writer read (compare-and-set), stores the new snapshot as
``version = expected + 1``, records the applied event ids and inserts the suggestions. A stale
writer gets :class:`~goalkeeper.errors.ConflictError` and nothing is written. Together with an
at-least-once bus this gives "every event applied exactly once" (DESIGN.md, delivery guarantees).

Backends are opened by URL with :func:`goalkeeper.stores.open_store`. Third parties implement the
Protocol without inheriting anything; the contract suite in ``tests/contract/stores`` states the
semantics every implementation must have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from ..errors import InvalidInputError

__all__ = [
    "AppendResult",
    "Commit",
    "CommitResult",
    "DeadLetter",
    "GoalRecord",
    "GoalSummary",
    "StateStore",
    "StoredEvent",
    "StoredSuggestion",
]


def _check_id(value: object, name: str) -> str:
    # Ids become keys in every backend; an empty or non-string id would collide or fail late.
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"must be a non-empty string, got {value!r}", field=name)
    return value


@dataclass(frozen=True, slots=True)
class GoalRecord:
    """A goal's stored state as returned by :meth:`StateStore.load`."""

    goal_id: str
    """The goal's id."""
    version: int
    """How many commits produced this state (>= 1; a goal with no commit has no record)."""
    snapshot: dict[str, Any]
    """The snapshot of the last commit (a fresh copy: mutating it changes nothing stored)."""
    updated_at: float
    """When the last commit happened (seconds since the epoch, store clock)."""


@dataclass(frozen=True, slots=True)
class GoalSummary:
    """One row of :meth:`StateStore.list_goals`: a goal without its (possibly large) snapshot."""

    goal_id: str
    """The goal's id."""
    version: int
    """Its current version."""
    updated_at: float
    """When it was last committed (seconds since the epoch)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event in a goal's append-only log."""

    goal_id: str
    """The goal the event belongs to."""
    seq: int
    """Position in the goal's log: 1, 2, 3, ... without gaps (until trimmed)."""
    event_id: str
    """The event's idempotency key; unique within the goal's log."""
    event: dict[str, Any]
    """The wire dict as appended (a fresh copy)."""
    appended_at: float
    """When it was appended (seconds since the epoch, store clock)."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What :meth:`StateStore.append_events` did."""

    appended: tuple[StoredEvent, ...]
    """The events that were new, with their sequence numbers, in input order."""
    duplicate_event_ids: tuple[str, ...] = ()
    """Event ids already in their goal's log (or repeated in the input): skipped."""


@dataclass(frozen=True, slots=True)
class StoredSuggestion:
    """A suggestion in the outbox."""

    suggestion_id: str
    """The suggestion's stable id (the outbox key; sinks dedup by it)."""
    goal_id: str
    """The goal whose commit produced it."""
    version: int
    """The goal version that commit created."""
    suggestion: dict[str, Any]
    """The wire dict (a fresh copy)."""
    created_at: float
    """When it was committed (seconds since the epoch)."""
    delivered: bool
    """Whether :meth:`StateStore.mark_delivered` has been called for it."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not be processed, kept with the reason for a human to look at."""

    id: int
    """Store-assigned id, increasing in insertion order."""
    reason: str
    """Why it was rejected (for example the validation error's message)."""
    payload: dict[str, Any]
    """The rejected input (a JSON-able dict)."""
    goal_id: str | None
    """The goal it was meant for, when known."""
    event_id: str | None
    """The event id, when known."""
    created_at: float
    """When it was recorded (seconds since the epoch)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """One goal's atomic update: the arguments of :meth:`StateStore.commit`.

    Construction validates everything that would otherwise corrupt a store or fail half-way, so a
    batch is either rejected before anything is written or written by the backend.

    Raises:
        InvalidInputError: a field has the wrong type or value (``.field`` names it).
    """

    goal_id: str
    """The goal being updated."""
    expected_version: int
    """The version the writer loaded (0 for a goal that has no state yet)."""
    snapshot: Mapping[str, Any]
    """The new state; JSON-able (finite numbers only)."""
    event_ids: Sequence[str] = ()
    """Ids of the events applied to reach ``snapshot`` (recorded in the inbox)."""
    suggestions: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    """Suggestion wire dicts produced by this update; each has a string ``suggestion_id``."""

    def __post_init__(self) -> None:
        """Validate the fields (see the class docstring)."""
        _check_id(self.goal_id, "goal_id")
        version = self.expected_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInputError(f"must be an int >= 0, got {version!r}", field="expected_version")
        if not isinstance(self.snapshot, Mapping):
            raise InvalidInputError(f"must be a dict, got {type(self.snapshot).__name__}", field="snapshot")
        if isinstance(self.event_ids, str | bytes):
            raise InvalidInputError("must be a sequence of ids, not a string", field="event_ids")
        object.__setattr__(self, "event_ids", tuple(self.event_ids))
        for i, event_id in enumerate(self.event_ids):
            _check_id(event_id, f"event_ids[{i}]")
        object.__setattr__(self, "suggestions", tuple(self.suggestions))
        for i, suggestion in enumerate(self.suggestions):
            if not isinstance(suggestion, Mapping):
                raise InvalidInputError("must be a dict", field=f"suggestions[{i}]")
            _check_id(suggestion.get("suggestion_id"), f"suggestions[{i}].suggestion_id")
            owner = suggestion.get("goal_id", self.goal_id)
            if owner != self.goal_id:
                raise InvalidInputError(
                    f"belongs to goal {owner!r}, not {self.goal_id!r}", field=f"suggestions[{i}].goal_id"
                )


@dataclass(frozen=True, slots=True)
class CommitResult:
    """The outcome of one :class:`Commit`.

    ``committed`` is False only for a compare-and-set conflict (from
    :meth:`StateStore.commit_many`; :meth:`StateStore.commit` raises instead), in which case nothing
    of that commit was written and ``version`` is the version actually stored.
    """

    goal_id: str
    """The goal of the commit."""
    committed: bool
    """True if the snapshot was stored."""
    version: int
    """The new version (committed) or the stored version that caused the conflict."""
    duplicate_event_ids: tuple[str, ...] = ()
    """Event ids that were already applied (or repeated in the commit): reported and skipped."""
    duplicate_suggestion_ids: tuple[str, ...] = ()
    """Suggestion ids already in the outbox (or repeated): the stored suggestion is kept."""

    @property
    def conflict(self) -> bool:
        """True if the commit lost a compare-and-set (the opposite of ``committed``)."""
        return not self.committed


def check_event(event: object, index: int) -> tuple[str, str]:
    """Validate one event handed to :meth:`StateStore.append_events`; return (goal_id, event_id).

    Raises:
        InvalidInputError: not a dict, or no string ``goal_id`` / ``event_id``.
    """
    if not isinstance(event, Mapping):
        raise InvalidInputError("must be a dict", field=f"events[{index}]")
    goal_id = _check_id(event.get("goal_id"), f"events[{index}].goal_id")
    event_id = _check_id(event.get("event_id"), f"events[{index}].event_id")
    return goal_id, event_id


def check_limit(limit: object, name: str = "limit") -> int:
    """Validate a positive page size.

    Raises:
        InvalidInputError: not an int >= 1.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"must be an int >= 1, got {limit!r}", field=name)
    return limit


@runtime_checkable
class StateStore(Protocol):
    """Durable per-goal state: snapshot + version (CAS), inbox, outbox, event log, dead letters.

    Every method is a coroutine. A store is opened with ``await store.open()`` (or ``async with``),
    which connects and creates or migrates its schema, and released with ``await store.close()``.
    Driver failures surface as :class:`~goalkeeper.errors.StoreError` (the driver error is
    ``__cause__``); malformed arguments as :class:`~goalkeeper.errors.InvalidInputError`.
    """

    url: str
    """The store's URL with any password masked (safe to log)."""

    async def open(self) -> None:
        """Connect and create or migrate the schema (idempotent)."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...

    async def __aenter__(self) -> Self:
        """Open the store."""
        ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        ...

    async def schema_version(self) -> int:
        """The schema version recorded in the store (0 if it has never been migrated)."""
        ...

    async def migrate(self) -> int:
        """Apply pending schema migrations in order; return the resulting schema version.

        Raises:
            StoreError: the store was written by a newer goalkeeper (its schema is ahead of ours).
        """
        ...

    async def load(self, goal_id: str) -> GoalRecord | None:
        """The goal's latest committed state, or None if it has never been committed."""
        ...

    async def commit(self, commit: Commit) -> CommitResult:
        """Atomically store one goal's new state (see :class:`Commit`).

        Raises:
            ConflictError: the stored version is not ``commit.expected_version``; nothing written.
        """
        ...

    async def commit_many(self, commits: Sequence[Commit]) -> list[CommitResult]:
        """Store several commits in one transaction; results come back in input order.

        Each commit is checked on its own: one that loses its compare-and-set is reported with
        ``committed=False`` and writes nothing, while the others still commit. Commits for the same
        goal apply in input order. Any other failure writes nothing of the whole batch.
        """
        ...

    async def applied_event_ids(self, goal_id: str, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are in the goal's inbox (already applied)."""
        ...

    async def append_events(self, events: Sequence[Mapping[str, Any]]) -> AppendResult:
        """Append events (wire dicts with ``goal_id`` and ``event_id``) to their goals' logs.

        Atomic as a whole. An event whose id is already in its goal's log is skipped and reported.
        """
        ...

    async def read_events(self, goal_id: str, *, from_seq: int = 1, limit: int = 1000) -> list[StoredEvent]:
        """Up to ``limit`` events of the goal's log with ``seq >= from_seq``, in order."""
        ...

    async def trim_events(self, goal_id: str, *, before_seq: int) -> int:
        """Delete the goal's log entries with ``seq < before_seq``; return how many were deleted."""
        ...

    async def pending_suggestions(
        self, *, goal_id: str | None = None, limit: int = 100
    ) -> list[StoredSuggestion]:
        """Undelivered suggestions (of one goal, or all), oldest first."""
        ...

    async def mark_delivered(self, suggestion_ids: Iterable[str]) -> int:
        """Mark suggestions delivered; return how many were pending before (unknown ids ignored)."""
        ...

    async def list_goals(
        self, *, prefix: str = "", after: str | None = None, limit: int = 100
    ) -> list[GoalSummary]:
        """Goals with state whose id starts with ``prefix``, ordered by id, after the cursor ``after``."""
        ...

    async def add_dead_letter(
        self,
        payload: Mapping[str, Any],
        reason: str,
        *,
        goal_id: str | None = None,
        event_id: str | None = None,
    ) -> DeadLetter:
        """Record an input that could not be processed, with the reason."""
        ...

    async def dead_letters(self, *, goal_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead-letter records (of one goal, or all), oldest first."""
        ...
