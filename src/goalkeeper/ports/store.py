"""The ``StateStore`` port: where each goal's durable state lives, and the records it deals in.

A store keeps, per goal:

* the **state**: the latest snapshot (a JSON-able dict, ``GoalSession.snapshot()`` output; the store
  never looks inside it) and its ``version``, a counter that starts at 0 (no state yet) and grows
  by exactly 1 per successful commit;
* the **inbox**: ids of the events already applied to that state, so a redelivered event is
  recognised and skipped (retention: the newest ``inbox_keep`` ids per goal, see ``docs/stores.md``);
* the **outbox**: suggestions produced by commits, unique by ``suggestion_id``, pending until they are
  marked delivered;
* the **event log**: an append-only, per-goal sequence (1, 2, 3, ...) of the events received;
* the **metrics history**: one :class:`MetricPoint` per applied event (progress, drift, loop risk,
  action...), numbered 1, 2, 3, ... per goal and written by the same atomic commit (retention: the
  newest ``metrics_retention`` points per goal);
* the goal's **status** (:class:`~goalkeeper.core.goals.GoalStatus`, the same enum as
  ``goalkeeper.GoalStatus``: active, closed, archived), ``active`` from the first commit on, changed
  only by :meth:`StateStore.set_goal_status` (a commit never changes it; the store attaches no
  behaviour to it: the worker, API and CLI decide what a status means for them).

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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from ..core.goals import GoalStatus
from ..errors import InvalidInputError

__all__ = [
    "AppendResult",
    "Commit",
    "CommitResult",
    "DeadLetter",
    "GoalRecord",
    "GoalStatus",
    "GoalSummary",
    "MetricPoint",
    "StateStore",
    "StoredEvent",
    "StoredSuggestion",
]


def _check_id(value: object, name: str) -> str:
    # Ids become keys in every backend; an empty or non-string id would collide or fail late.
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"must be a non-empty string, got {value!r}", field=name)
    return value


def check_status(status: object, name: str = "status") -> GoalStatus:
    """Validate a goal status given as :class:`GoalStatus` or its string value.

    Raises:
        InvalidInputError: not one of ``active``, ``closed``, ``archived``.
    """
    if isinstance(status, str):
        try:
            return GoalStatus(status)
        except ValueError:
            pass
    known = ", ".join(s.value for s in GoalStatus)
    raise InvalidInputError(f"must be one of {known}, got {status!r}", field=name)


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
    status: GoalStatus = GoalStatus.ACTIVE
    """The goal's lifecycle status (``active`` after the first commit)."""


@dataclass(frozen=True, slots=True)
class GoalSummary:
    """One row of :meth:`StateStore.list_goals`: a goal without its (possibly large) snapshot."""

    goal_id: str
    """The goal's id."""
    version: int
    """Its current version."""
    updated_at: float
    """When it was last committed (seconds since the epoch)."""
    status: GoalStatus = GoalStatus.ACTIVE
    """Its lifecycle status."""


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
class MetricPoint:
    """One point of a goal's metrics history (:meth:`StateStore.metrics_history`)."""

    goal_id: str
    """The goal it belongs to."""
    seq: int
    """Position in the goal's history: 1, 2, 3, ... assigned by the store, never reused."""
    point: dict[str, Any]
    """The point as committed (``event_id``, ``event_type``, ``ts``, ``progress``, ``drift_score``,
    ``loop_risk``, ``action``, maybe ``flags`` and more; a fresh copy)."""
    created_at: float
    """When the commit that wrote it happened (seconds since the epoch, store clock)."""


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
    metrics: Sequence[Mapping[str, Any]] = ()
    """Metric points for the history, one per applied event, in order (see :func:`check_metric_point`
    for the required keys); the store numbers them and writes them with the snapshot."""

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
        if isinstance(self.metrics, str | bytes | Mapping) or not isinstance(self.metrics, Iterable):
            raise InvalidInputError("must be a sequence of metric point dicts", field="metrics")
        object.__setattr__(self, "metrics", tuple(self.metrics))
        for i, point in enumerate(self.metrics):
            check_metric_point(point, f"metrics[{i}]")


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
    metric_seqs: tuple[int, ...] = ()
    """The history sequence numbers given to ``Commit.metrics``, in order (empty on a conflict)."""

    @property
    def conflict(self) -> bool:
        """True if the commit lost a compare-and-set (the opposite of ``committed``)."""
        return not self.committed


_METRIC_TEXT_KEYS = ("event_id", "event_type", "action")
_METRIC_UNIT_KEYS = ("progress", "drift_score", "loop_risk")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _unit(value: object) -> bool:
    return (type(value) is float and 0.0 <= value <= 1.0) or (type(value) is int and 0 <= value <= 1)


def _point_is_valid(point: object) -> bool:
    """The common case in one pass (one point per applied event makes this a hot path)."""
    if type(point) is not dict:
        return False
    try:
        ok = (
            # isinstance, not type(): the worker passes enum members (StrEnum) for some of these.
            isinstance(point["event_id"], str)
            and isinstance(point["event_type"], str)
            and isinstance(point["action"], str)
            and point["event_id"] != ""
            and point["event_type"] != ""
            and point["action"] != ""
            and (
                (type(point["ts"]) is float and math.isfinite(point["ts"]))
                or type(point["ts"]) is int
                or point["ts"] is None
            )
            and _unit(point["progress"])
            and _unit(point["drift_score"])
            and _unit(point["loop_risk"])
        )
    except KeyError:
        return False
    if not ok:
        return False
    flags = point.get("flags", ())
    if type(flags) is not list and type(flags) is not tuple:
        return False
    try:
        # str.join raises TypeError on any item that is not a str: the key and flag checks in C.
        "".join(point)
        "".join(flags)
    except TypeError:
        return False
    return True


def check_metric_point(point: object, name: str) -> None:
    """Validate one metric point of :attr:`Commit.metrics`.

    A point is a dict with string keys and at least ``event_id``, ``event_type`` and ``action``
    (non-empty strings), ``ts`` (finite number, epoch seconds; None for an event that carried no
    time, which the wire schema allows) and ``progress``, ``drift_score``,
    ``loop_risk`` (numbers in [0, 1]); ``flags``, when present, is a list of strings. Other keys
    are kept as given (they must be JSON-able, which the store checks when it encodes the commit).
    The required keys are what the dashboard charts and the API read, so a point without them is
    refused here rather than breaking a reader later.

    Raises:
        InvalidInputError: ``.field`` is ``name`` (``metrics[3]``) or names the key
            (``metrics[3].progress``).
    """
    if not _point_is_valid(point):
        # The slow path only runs to say precisely what is wrong (or to accept a non-dict Mapping).
        _explain_point(point, name)


def _explain_point(point: object, name: str) -> None:
    if not isinstance(point, Mapping):
        raise InvalidInputError(f"must be a dict, got {type(point).__name__}", field=name)
    for key in point:
        if not isinstance(key, str):
            raise InvalidInputError(f"keys must be strings, got {key!r}", field=name)
    for key in _METRIC_TEXT_KEYS:
        value = point.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidInputError(f"must be a non-empty string, got {value!r}", field=f"{name}.{key}")
    if "ts" not in point or (point["ts"] is not None and not _is_number(point["ts"])):
        raise InvalidInputError(
            f"must be a finite number (epoch seconds) or None, got {point.get('ts')!r}", field=f"{name}.ts"
        )
    for key in _METRIC_UNIT_KEYS:
        value = point.get(key)
        if not _is_number(value) or not 0.0 <= value <= 1.0:  # type: ignore[operator]
            raise InvalidInputError(f"must be a number in [0, 1], got {value!r}", field=f"{name}.{key}")
    if "flags" in point:
        flags = point["flags"]
        if not isinstance(flags, list | tuple):
            raise InvalidInputError(f"must be a list of strings, got {flags!r}", field=f"{name}.flags")
        for j, flag in enumerate(flags):
            if not isinstance(flag, str):
                raise InvalidInputError(f"must be a string, got {flag!r}", field=f"{name}.flags[{j}]")


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


def check_after(value: object, name: str) -> int:
    """Validate a cursor that must be an int >= 0 (``after_seq``, ``after_version``).

    Raises:
        InvalidInputError: not an int >= 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"must be an int >= 0, got {value!r}", field=name)
    return value


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
    """Durable per-goal state: snapshot + version (CAS), inbox, outbox, event log, metrics history,
    goal status, dead letters.

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

    async def suggestions(
        self, goal_id: str, *, limit: int = 100, after_version: int = 0
    ) -> list[StoredSuggestion]:
        """The goal's suggestions, delivered or not, with ``version > after_version``.

        Ordered by (version, creation order), at most ``limit``; page by passing the last
        returned version as ``after_version`` (a version's suggestions are returned together as
        long as ``limit`` is at least the number one commit produces).
        """
        ...

    async def get_suggestion(self, suggestion_id: str) -> StoredSuggestion | None:
        """The suggestion with that id (of any goal; ``goal_id`` tells which), or None."""
        ...

    async def metrics_history(
        self, goal_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[MetricPoint]:
        """Up to ``limit`` of the goal's metric points with ``seq > after_seq``, ascending by seq.

        Only the newest ``metrics_retention`` points per goal are kept; older ones are gone.
        """
        ...

    async def set_goal_status(self, goal_id: str, status: GoalStatus | str) -> bool:
        """Set the goal's status; return False if the goal has no record (nothing is created).

        Changes neither the version nor ``updated_at``.

        Raises:
            InvalidInputError: ``status`` is not a :class:`GoalStatus` value (``.field`` is ``status``).
        """
        ...

    async def list_goals(
        self,
        *,
        prefix: str = "",
        after: str | None = None,
        limit: int = 100,
        status: GoalStatus | str | None = None,
    ) -> list[GoalSummary]:
        """Goals with state whose id starts with ``prefix``, ordered by id, after the cursor ``after``.

        ``status`` keeps only goals with that status (None: every goal).
        """
        ...

    async def add_dead_letter(
        self,
        payload: Mapping[str, Any],
        reason: str,
        *,
        goal_id: str | None = None,
        event_id: str | None = None,
    ) -> DeadLetter:
        """Record an input that could not be processed, with the reason.

        Idempotent per event: when both ``goal_id`` and ``event_id`` are given and a dead letter
        for that pair is already recorded, nothing is written and the existing record is returned
        (a worker killed between recording a poison event and acking it sees the event again).
        """
        ...

    async def dead_letters(self, *, goal_id: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Dead-letter records (of one goal, or all), oldest first."""
        ...
