"""GoalBook: many goals at once, by ``goal_id``, in bounded memory.

A :class:`GoalBook` holds one :class:`~goalkeeper.core.session.GoalSession` per goal. At most
``max_active`` sessions are *resident* (live objects); when another one is needed, the least recently
used resident session is *evicted*: its snapshot is kept as compact bytes and restored transparently
the next time the goal is used. An ``on_evict`` hook receives the snapshot, so a store can persist it.

The bytes are zlib-compressed JSON with a preset dictionary: the snapshot of a template session built
when the book is created. Snapshots of different goals share most of their keys and much of their
structure, and a small blob compresses poorly on its own; the dictionary gives zlib that shared part
up front (about 3x smaller blobs). The bytes never leave the book (the dictionary depends on the code
version); :meth:`GoalBook.export` and ``on_evict`` hand out the snapshot itself.

Lifecycle of a goal: ``active`` (accepts events) -> ``closed`` (the run ended; refuses events) ->
``archived`` (kept for the record, hidden unless asked for). Closed and archived goals are never
resident: :meth:`GoalBook.get` returns a restored copy of them for reading.

The book is synchronous and not thread-safe: drive it from one thread (the async runtime wraps it).
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from ..errors import ConfigurationError, GoalError, GoalNotFound, InvalidInputError
from ._checks import config_int
from .feedback_strategies import GoalFeedbackStrategy
from .model import (
    Budget,
    ContextCompressedEvent,
    Event,
    FeedbackEvent,
    FeedbackOutcome,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    SubGoalStatus,
)
from .session import GoalSession, Outcome
from .text import Embedder
from .tracker import LLMVerifyFn

__all__ = ["DEFAULT_MAX_ACTIVE", "GoalBook", "GoalInfo", "GoalStatus"]

#: Resident sessions kept by default.
DEFAULT_MAX_ACTIVE = 1024
#: zlib level of evicted snapshots: 6 is within a few percent of 9 at a third of the time.
COMPRESSION_LEVEL = 6
#: zlib uses at most the last 32 KiB of a preset dictionary.
ZDICT_LIMIT = 32 * 1024


class GoalStatus(StrEnum):
    """Where a goal is in its lifecycle."""

    ACTIVE = "active"  #: accepts events
    CLOSED = "closed"  #: the run ended; events are refused
    ARCHIVED = "archived"  #: closed and filed away


@dataclass(frozen=True, slots=True)
class GoalInfo:
    """One line of :meth:`GoalBook.list`.

    Attributes:
        goal_id: the goal.
        status: its lifecycle status.
        version: events applied to it.
        resident: whether its session is a live object (else it is held as compressed bytes).
    """

    goal_id: str
    status: GoalStatus
    version: int
    resident: bool


class _Entry:
    """What the book keeps for every goal; ``blob`` is set exactly while the goal is not resident."""

    __slots__ = ("blob", "status", "version")

    def __init__(self, status: GoalStatus, version: int = 0, blob: bytes | None = None) -> None:
        self.status = status
        self.version = version
        self.blob = blob


class GoalBook:
    """Holds many goals' sessions by ``goal_id`` with bounded memory.

    Args:
        max_active: most resident sessions (>= 1); the least recently used are evicted beyond it.
        auto_create: :meth:`apply` creates the session of an unknown goal (default). When False an
            unknown goal raises :class:`~goalkeeper.errors.GoalNotFound`: goals come from :meth:`create`.
        on_evict: ``(goal_id, snapshot)`` called whenever a session leaves memory (eviction, close,
            archive) with its snapshot (JSON-able; :meth:`load` and :meth:`GoalSession.restore`
            take it back).
        profile: tracker profile of new sessions.
        strategy: factory of each new session's feedback strategy (default: the simple strategy).
            Evicted sessions are rebuilt with the strategy stored in their snapshot, so only the
            built-in strategies survive eviction.
        embedder: passed to every session (new or restored).
        llm_verify_fn: passed to every session (new or restored).

    Raises:
        ConfigurationError: a bad argument.
    """

    def __init__(
        self,
        *,
        max_active: int = DEFAULT_MAX_ACTIVE,
        auto_create: bool = True,
        on_evict: Callable[[str, dict[str, Any]], None] | None = None,
        profile: Literal["goalkeeper", "reference"] = "goalkeeper",
        strategy: Callable[[], GoalFeedbackStrategy] | None = None,
        embedder: Embedder[Any] | None = None,
        llm_verify_fn: LLMVerifyFn | None = None,
    ) -> None:
        self._max_active = config_int("max_active", max_active, 1)
        if not isinstance(auto_create, bool):
            raise ConfigurationError("auto_create must be a bool")
        for name, fn in (("on_evict", on_evict), ("strategy", strategy)):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{name} must be callable")
        if profile not in ("goalkeeper", "reference"):
            raise ConfigurationError(f"unknown profile {profile!r}; known: goalkeeper, reference")
        self._auto_create = auto_create
        self._on_evict = on_evict
        self._profile: Literal["goalkeeper", "reference"] = profile
        self._strategy = strategy
        self._embedder = embedder
        self._llm = llm_verify_fn
        self._zdict = _template_dictionary(profile)
        self._entries: dict[str, _Entry] = {}
        self._live: OrderedDict[str, GoalSession] = OrderedDict()  # least recently used first

    # -- reading ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, goal_id: object) -> bool:
        return goal_id in self._entries

    @property
    def max_active(self) -> int:
        """Most resident sessions."""
        return self._max_active

    def status(self, goal_id: str) -> GoalStatus:
        """The goal's lifecycle status; raises :class:`GoalNotFound` for an unknown goal."""
        return self._entry(goal_id).status

    def list(self, status: GoalStatus | str | None = None) -> list[GoalInfo]:
        """Every goal (or those with ``status``), in creation order.

        Raises:
            InvalidInputError: ``status`` is not active, closed or archived.
        """
        wanted = None if status is None else _status(status)
        return [
            GoalInfo(gid, e.status, self._version(gid, e), gid in self._live)
            for gid, e in self._entries.items()
            if wanted is None or e.status is wanted
        ]

    def get(self, goal_id: str) -> GoalSession:
        """The goal's session.

        An active goal's session is made resident (evicting another if needed) and is the live
        object; a closed or archived goal's is a restored copy, for reading.

        Raises:
            GoalNotFound: no goal with that id.
        """
        entry = self._entry(goal_id)
        if entry.status is GoalStatus.ACTIVE:
            return self._resident(goal_id, entry)
        assert entry.blob is not None
        return self._restore(entry.blob)

    def stats(self) -> dict[str, int]:
        """``goals``, ``resident``, ``evicted`` counts and ``evicted_bytes`` held."""
        blobs = [len(e.blob) for e in self._entries.values() if e.blob is not None]
        return {
            "goals": len(self._entries),
            "resident": len(self._live),
            "evicted": len(blobs),
            "evicted_bytes": sum(blobs),
        }

    # -- changing ---------------------------------------------------------------------------------

    def create(self, goal_id: str) -> GoalSession:
        """Create an active goal with a new session and return the session.

        Raises:
            GoalError: a goal with that id exists.
            ConfigurationError: ``goal_id`` is empty or not a string.
        """
        if goal_id in self._entries:
            raise GoalError(f"goal {goal_id!r} already exists")
        strategy = self._strategy() if self._strategy is not None else None
        session = GoalSession(
            goal_id,
            profile=self._profile,
            strategy=strategy,
            embedder=self._embedder,
            llm_verify_fn=self._llm,
        )
        self._make_room()
        self._entries[goal_id] = _Entry(GoalStatus.ACTIVE)
        self._live[goal_id] = session
        return session

    def apply(self, event: Event) -> Outcome:
        """Apply an event to its goal's session (created first if unknown and ``auto_create``).

        Raises:
            InvalidInputError: the event has no valid ``goal_id``, or a bad field (see
                :meth:`GoalSession.apply`); nothing changes.
            GoalNotFound: unknown goal and ``auto_create`` is off.
            GoalError: the goal is closed or archived.
        """
        goal_id = getattr(event, "goal_id", None)
        if not isinstance(goal_id, str) or not goal_id.strip():
            raise InvalidInputError(f"must be a non-empty string, got {goal_id!r}", field="goal_id")
        entry = self._entries.get(goal_id)
        if entry is None:
            if not self._auto_create:
                raise GoalNotFound(goal_id)
            session = self.create(goal_id)
        elif entry.status is not GoalStatus.ACTIVE:
            raise GoalError(f"goal {goal_id!r} is {entry.status.value}: it accepts no events")
        else:
            session = self._resident(goal_id, entry)
        return session.apply(event)

    def close(self, goal_id: str) -> None:
        """Mark the goal closed (it refuses events from now on) and take it out of memory."""
        self._set_status(goal_id, GoalStatus.CLOSED)

    def archive(self, goal_id: str) -> None:
        """Mark the goal archived (closed and filed away) and take it out of memory."""
        self._set_status(goal_id, GoalStatus.ARCHIVED)

    def evict(self, goal_id: str) -> bool:
        """Take a resident session out of memory now; returns False if it was not resident.

        Raises:
            GoalNotFound: no goal with that id.
        """
        self._entry(goal_id)
        if goal_id not in self._live:
            return False
        self._evict(goal_id, self._live.pop(goal_id))
        return True

    def forget(self, goal_id: str) -> None:
        """Drop the goal entirely (for example after a store persisted it).

        Raises:
            GoalNotFound: no goal with that id.
        """
        self._entry(goal_id)
        del self._entries[goal_id]
        self._live.pop(goal_id, None)

    def export(self, goal_id: str) -> dict[str, Any]:
        """The goal's snapshot (see :meth:`GoalSession.snapshot`), whether resident or not.

        Raises:
            GoalNotFound: no goal with that id.
        """
        entry = self._entry(goal_id)
        session = self._live.get(goal_id)
        if session is not None:
            return session.snapshot()
        assert entry.blob is not None
        return self._decode(entry.blob)

    def load(self, snapshot: Mapping[str, Any], *, status: GoalStatus | str = GoalStatus.ACTIVE) -> GoalInfo:
        """Adopt a goal from a session snapshot (from :meth:`export`, ``on_evict`` or a store); it is
        kept compressed until used.

        Raises:
            SnapshotError: not a valid session snapshot.
            GoalError: a goal with that id exists.
            InvalidInputError: unknown ``status``.
        """
        wanted = _status(status)
        session = GoalSession.restore(snapshot, embedder=self._embedder, llm_verify_fn=self._llm)
        if session.goal_id in self._entries:
            raise GoalError(f"goal {session.goal_id!r} already exists")
        self._entries[session.goal_id] = _Entry(wanted, session.version, self._encode(session.snapshot()))
        return GoalInfo(session.goal_id, wanted, session.version, False)

    # -- internals --------------------------------------------------------------------------------

    def _entry(self, goal_id: str) -> _Entry:
        entry = self._entries.get(goal_id) if isinstance(goal_id, str) else None
        if entry is None:
            raise GoalNotFound(str(goal_id))
        return entry

    def _version(self, goal_id: str, entry: _Entry) -> int:
        session = self._live.get(goal_id)
        return entry.version if session is None else session.version

    def _encode(self, snapshot: Mapping[str, Any]) -> bytes:
        text = json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        packer = zlib.compressobj(COMPRESSION_LEVEL, zdict=self._zdict)
        return packer.compress(text) + packer.flush()

    def _decode(self, blob: bytes) -> dict[str, Any]:
        unpacker = zlib.decompressobj(zdict=self._zdict)
        data: dict[str, Any] = json.loads(unpacker.decompress(blob) + unpacker.flush())
        return data

    def _restore(self, blob: bytes) -> GoalSession:
        return GoalSession.restore(self._decode(blob), embedder=self._embedder, llm_verify_fn=self._llm)

    def _resident(self, goal_id: str, entry: _Entry) -> GoalSession:
        session = self._live.get(goal_id)
        if session is not None:
            self._live.move_to_end(goal_id)
            return session
        assert entry.blob is not None
        session = self._restore(entry.blob)
        # Make room before the goal becomes resident, so an on_evict failure leaves the book as it was.
        self._make_room()
        entry.blob = None  # the live session is the truth from here on
        self._live[goal_id] = session
        return session

    def _make_room(self) -> None:
        while len(self._live) >= self._max_active:
            goal_id, session = self._live.popitem(last=False)
            self._evict(goal_id, session)

    def _evict(self, goal_id: str, session: GoalSession) -> None:
        entry = self._entries[goal_id]
        snapshot = session.snapshot()
        entry.blob = self._encode(snapshot)
        entry.version = session.version
        if self._on_evict is not None:
            self._on_evict(goal_id, snapshot)

    def _set_status(self, goal_id: str, status: GoalStatus) -> None:
        entry = self._entry(goal_id)
        session = self._live.pop(goal_id, None)
        entry.status = status
        if session is not None:
            self._evict(goal_id, session)


def _status(value: object) -> GoalStatus:
    if isinstance(value, str) and value in GoalStatus.__members__.values():
        return GoalStatus(value)
    known = ", ".join(s.value for s in GoalStatus)
    raise InvalidInputError(f"must be one of {known}, got {value!r}", field="status")


def _template_dictionary(profile: Literal["goalkeeper", "reference"]) -> bytes:
    """The preset zlib dictionary: the snapshot of a session fed one event of each type.

    The texts are neutral on purpose (no real goal's words), so the dictionary carries the shared
    structure of snapshots, not the content of any goal.
    """
    gid = "goal"
    session = GoalSession(gid, profile=profile)
    events: list[Event] = [
        GoalEvent(goal_id=gid, event_id="e0", description="goal text", goal_state={"metric": 1},
                  plan=("first step", "second step"), budget=Budget(steps=50, tokens=100_000), ts=1.0),
        StepEvent(goal_id=gid, event_id="e1", tool="tool", args={"id": "A1"}, output="result", tokens=100,
                  ts=2.0),
        MessageEvent(goal_id=gid, event_id="e2", role="user", content="user message", ts=3.0),
        MetricsEvent(goal_id=gid, event_id="e3", values={"metric": 0.5}, ts=4.0),
        SubgoalEvent(goal_id=gid, event_id="e4", id="s1", description="sub-goal", status=SubGoalStatus.DONE,
                     ts=5.0),
        StepEvent(goal_id=gid, event_id="e5", tool="tool", args={"id": "A2"}, error="failed", ts=6.0),
        FeedbackEvent(goal_id=gid, event_id="e6", suggestion_id="s", outcome=FeedbackOutcome.HELPED, ts=7.0),
        ContextCompressedEvent(goal_id=gid, event_id="e7", ts=8.0),
    ]  # fmt: skip
    for event in events:
        session.apply(event)
    text = json.dumps(session.snapshot(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return text[-ZDICT_LIMIT:]
