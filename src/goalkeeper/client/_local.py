"""The in-process backend: the same operations as the HTTP client, run on a :class:`GoalBook`.

Nothing is sent anywhere: every event is applied synchronously by the goal's
:class:`~goalkeeper.core.session.GoalSession`, so :meth:`LocalOps.record` answers with the session's
own :class:`~goalkeeper.core.session.Outcome`. The operations never yield (they need no I/O); the
client drivers run them exactly like the HTTP ones.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .._views import metric_point, task_view
from ..core.goals import GoalBook, GoalStatus
from ..core.model import Event, FeedbackEvent, FeedbackOutcome, GoalEvent, Suggestion
from ..core.session import GoalSession, Outcome
from ..errors import ConfigurationError, GoalError, InvalidInputError
from ._facade import AsyncClientBase, SyncClientBase
from ._model import Decision, GoalView, Receipt
from ._protocol import Call, GoalFields

__all__ = ["AsyncLocalClient", "LocalClient", "LocalOps"]

#: Suggestions and metric points kept per goal (the oldest are dropped).
DEFAULT_RETENTION = 1000


class _History:
    """What the book does not keep for a goal: its suggestions and metric points, bounded."""

    __slots__ = ("points", "seq", "suggestions")

    def __init__(self, retention: int) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=retention)
        self.suggestions: deque[Suggestion] = deque(maxlen=retention)
        self.seq = 0


class LocalOps:
    """Operations on an in-process :class:`~goalkeeper.core.goals.GoalBook`.

    Thread-safe: one lock serializes every call, because a session is a plain state machine and
    framework callbacks (LangChain's, for example) may arrive from worker threads.

    Args:
        book: the goals (default: a new book that creates a goal on its first event).
        retention: suggestions and metric points kept per goal (>= 1).
        clock: the time of an event that carries none (seconds; default ``time.time``). Injected so
            tests are deterministic.
    """

    def __init__(
        self,
        book: GoalBook | None = None,
        *,
        retention: int = DEFAULT_RETENTION,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 1:
            raise ConfigurationError(f"retention must be an int >= 1, got {retention!r}")
        if book is not None and not isinstance(book, GoalBook):
            raise ConfigurationError(f"book must be a GoalBook, got {type(book).__name__}")
        self.book = book if book is not None else GoalBook()
        self._retention = retention
        self._clock = clock if clock is not None else time.time
        self._history: dict[str, _History] = {}
        self._owner: dict[str, str] = {}  # suggestion id -> goal id
        self._lock = threading.RLock()

    # -- goals ------------------------------------------------------------------------------------

    def create_goal(self, goal_id: str, fields: GoalFields) -> Call[GoalView]:
        """Create the goal and apply its goal event."""
        with self._lock:
            gid = goal_id
            if gid in self.book:
                raise GoalError(f"goal {gid!r} already exists")
            self.book.create(gid)
            self._apply(_with_goal(fields.event, gid))
            return self._view(gid)
        yield  # pragma: no cover - makes this a generator; never reached

    def get_goal(self, goal_id: str) -> Call[GoalView]:
        """The goal's view."""
        with self._lock:
            return self._view(goal_id)
        yield  # pragma: no cover

    def list_goals(self, status: str | None) -> Call[list[GoalView]]:
        """Every goal (or those with ``status``), in creation order."""
        with self._lock:
            return [self._view(info.goal_id) for info in self.book.list(status)]
        yield  # pragma: no cover

    def update_goal(self, goal_id: str, fields: GoalFields) -> Call[Receipt]:
        """Apply a goal event to an existing goal."""
        with self._lock:
            self.book.status(goal_id)  # GoalNotFound for an unknown goal, like the server's 404
            return (yield from self.send([_with_goal(fields.event, goal_id)]))

    def close_goal(self, goal_id: str) -> Call[GoalView]:
        """Close the goal (closing a closed goal changes nothing)."""
        with self._lock:
            if self.book.status(goal_id) is GoalStatus.ACTIVE:
                self.book.close(goal_id)
            return self._view(goal_id)
        yield  # pragma: no cover

    # -- events -----------------------------------------------------------------------------------

    def send(self, events: list[Event]) -> Call[Receipt]:
        """Apply the events in order.

        A batch is checked first (no event for a closed goal), so a refused batch applies nothing;
        an event with a bad field still stops the batch at that event, like a session does.
        """
        with self._lock:
            for event in events:
                if event.goal_id in self.book and self.book.status(event.goal_id) is not GoalStatus.ACTIVE:
                    raise GoalError(
                        f"goal {event.goal_id!r} is {self.book.status(event.goal_id).value}: "
                        "it accepts no events"
                    )
            outcomes = [self._apply(e) for e in events]
            dupes = sum(o.duplicate for o in outcomes)
            return Receipt(len(outcomes) - dupes, dupes, tuple(e.event_id for e in events))
        yield  # pragma: no cover

    def record(self, event: Event) -> Call[Decision]:
        """Apply one event and return the session's decision."""
        with self._lock:
            o = self._apply(event)
            return Decision(
                o.goal_id,
                o.event_id,
                o.version,
                o.recommended_action,
                o.metrics.alignment(),
                o.suggestions,
                o.duplicate,
            )
        yield  # pragma: no cover

    def _apply(self, event: Event) -> Outcome:
        if event.ts is None:
            # The server stamps an event on receipt; so does the in-process mode (same behaviour).
            event = replace(event, ts=self._clock())
        outcome = self.book.apply(event)
        if outcome.applied:
            history = self._history.get(outcome.goal_id)
            if history is None:
                history = self._history[outcome.goal_id] = _History(self._retention)
            for s in outcome.suggestions:
                if len(history.suggestions) == history.suggestions.maxlen:
                    self._owner.pop(history.suggestions[0].suggestion_id, None)
                history.suggestions.append(s)
                self._owner[s.suggestion_id] = s.goal_id
            history.seq += 1
            point = {"seq": history.seq, "goal_id": outcome.goal_id, **metric_point(outcome, event.ts)}
            history.points.append({**point, "created_at": self._clock()})
        return outcome

    # -- reading ----------------------------------------------------------------------------------

    def suggestions(self, goal_id: str, after_version: int, limit: int) -> Call[list[Suggestion]]:
        """The goal's retained suggestions with ``version > after_version``."""
        with self._lock:
            self.book.status(goal_id)  # GoalNotFound for an unknown goal, like the server's 404
            history = self._history.get(goal_id)
            found = [s for s in (history.suggestions if history else ()) if s.version > after_version]
            return found[:limit]
        yield  # pragma: no cover

    def feedback(self, suggestion_id: str, outcome: FeedbackOutcome, event_id: str) -> Call[Receipt]:
        """Apply a feedback event to the suggestion's goal."""
        with self._lock:
            goal_id = self._owner.get(suggestion_id)
            if goal_id is None:
                raise InvalidInputError(f"no suggestion with id {suggestion_id!r}", field="suggestion_id")
            event = FeedbackEvent(
                goal_id=goal_id, event_id=event_id, suggestion_id=suggestion_id, outcome=outcome
            )
            o = self._apply(event)
            return Receipt(int(o.applied), int(o.duplicate), (event_id,))
        yield  # pragma: no cover

    def task(self, goal_id: str) -> Call[dict[str, Any]]:
        """The goal's task record, in the server's shape (``GET /v1/goals/{id}/task``)."""
        with self._lock:
            session = self.book.get(goal_id)
            return {"goal_id": goal_id, **task_view(session)}
        yield  # pragma: no cover

    def metrics_history(self, goal_id: str, after_seq: int, limit: int) -> Call[list[dict[str, Any]]]:
        """The goal's retained metric points with ``seq > after_seq``."""
        with self._lock:
            self.book.status(goal_id)
            history = self._history.get(goal_id)
            return [dict(p) for p in (history.points if history else ()) if p["seq"] > after_seq][:limit]
        yield  # pragma: no cover

    def health(self) -> Call[dict[str, Any]]:
        """Always ok: there is nothing to reach."""
        with self._lock:
            return {"status": "ok", "mode": "local", **self.book.stats()}
        yield  # pragma: no cover

    def _view(self, goal_id: str) -> GoalView:
        session: GoalSession = self.book.get(goal_id)
        return GoalView(
            goal_id=goal_id,
            status=self.book.status(goal_id).value,
            version=session.version,
            description=session.goal or "",
            plan=tuple(session.tracker.plan),
            goal_state=session.feedback_loop.goal_state,
            metrics=session.metrics.to_dict(),
            recommended_action=session.recommended_action,
            routing=session.routing.value,
        )


def _with_goal(event: GoalEvent, goal_id: str) -> GoalEvent:
    return event if event.goal_id == goal_id else replace(event, goal_id=goal_id)


class LocalClient(SyncClientBase):
    """The in-process client: goals live in this process, no server is needed.

    It has the interface of :class:`~goalkeeper.client.GoalkeeperClient`; every call runs the goal's
    :class:`~goalkeeper.core.session.GoalSession` synchronously and returns at once.

    Args:
        book: the goals (default: a new :class:`~goalkeeper.core.goals.GoalBook`; pass your own to
            set ``max_active``, a profile or an ``on_evict`` hook).
        retention: suggestions and metric points kept per goal (>= 1).
        clock: the time given to events that carry none (default ``time.time``).

    Raises:
        ConfigurationError: a bad argument.
    """

    def __init__(
        self,
        book: GoalBook | None = None,
        *,
        retention: int = DEFAULT_RETENTION,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._local = LocalOps(book, retention=retention, clock=clock)
        super().__init__(self._local)

    @property
    def book(self) -> GoalBook:
        """The goals (for inspection; change them through the client's methods)."""
        return self._local.book


class AsyncLocalClient(AsyncClientBase):
    """The in-process client with coroutine methods (see :class:`LocalClient`).

    The work is synchronous and takes microseconds, so it runs on the event loop's thread.
    """

    def __init__(
        self,
        book: GoalBook | None = None,
        *,
        retention: int = DEFAULT_RETENTION,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._local = LocalOps(book, retention=retention, clock=clock)
        super().__init__(self._local)

    @property
    def book(self) -> GoalBook:
        """The goals (for inspection; change them through the client's methods)."""
        return self._local.book
