"""The two client shells, sync and async, over any :class:`~goalkeeper.client._protocol.Operations`.

Each public method validates its arguments (shared helpers below), hands the backend's operation to
the shell's driver, and returns the result: one line per method and shell. The drivers are the only
code that differs between sync and async: they perform the I/O an operation asks for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any, Self, TypeVar

from ..core.model import Budget, Event, FeedbackOutcome, StepEvent, Suggestion
from ..errors import InvalidInputError
from ._model import Decision, GoalView, Receipt
from ._protocol import (
    Call,
    Failure,
    GoalFields,
    Operations,
    Reply,
    Request,
    Response,
    Sleep,
    as_event,
    as_events,
    goal_fields,
    new_id,
)

__all__ = ["AsyncClientBase", "SyncClientBase"]

T = TypeVar("T")


# -- argument checks shared by both shells ----------------------------------------------------------


def _goal_args(
    goal_id: str | None,
    description: str | None,
    goal_state: Mapping[str, Any] | None,
    plan: Iterable[str] | None,
    directions: Mapping[str, Any] | None,
    budget: Budget | Mapping[str, Any] | None,
) -> tuple[str, GoalFields]:
    gid = new_id() if goal_id is None else goal_id
    fields = goal_fields(
        gid, description=description, goal_state=goal_state, plan=plan, directions=directions, budget=budget
    )
    return gid, fields


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"must be an int >= {minimum}, got {value!r}", field=name)
    return value


def _id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"must be a non-empty string, got {value!r}", field=name)
    return value


def _status(value: object) -> str | None:
    if value is not None and value not in ("active", "closed", "archived"):
        raise InvalidInputError(f"must be active, closed or archived, got {value!r}", field="status")
    return None if value is None else str(value)


def _outcome(value: object) -> FeedbackOutcome:
    if isinstance(value, FeedbackOutcome):
        return value
    if isinstance(value, str) and value in FeedbackOutcome.__members__.values():
        return FeedbackOutcome(value)
    known = ", ".join(o.value for o in FeedbackOutcome)
    raise InvalidInputError(f"must be one of {known}, got {value!r}", field="outcome")


def _step(
    goal_id: str,
    tool: str,
    args: Mapping[str, Any] | None,
    output: str,
    error: str | None,
    description: str,
    tokens: int,
    event_id: str | None,
) -> Event:
    return as_event(
        StepEvent(
            goal_id=goal_id,
            event_id=event_id or "",
            tool=tool,
            args=dict(args or {}),
            output=output,
            error=error,
            description=description,
            tokens=tokens,
        )
    )


class SyncClientBase:
    """The synchronous client: every method blocks until its answer is there.

    Subclasses give the backend (:class:`~goalkeeper.client.LocalClient` runs goals in this process,
    :class:`~goalkeeper.client.GoalkeeperClient` talks to a server). Use it as a context manager or
    call :meth:`close` when done.
    """

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    def _exchange(self, request: Request) -> Response | Failure:
        """Send one request (backends that talk HTTP override this)."""
        raise NotImplementedError(f"{type(self).__name__} cannot send {request.method} {request.path}")

    def _run(self, call: Call[T]) -> T:
        reply: Reply = None
        while True:
            try:
                instruction = call.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if isinstance(instruction, Sleep):
                time.sleep(instruction.seconds)
                reply = None
            else:
                reply = self._exchange(instruction)

    def close(self) -> None:
        """Release the client's resources (its connection pool, for a remote client)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_goal(
        self,
        description: str | None = None,
        *,
        goal_id: str | None = None,
        goal_state: Mapping[str, Any] | None = None,
        plan: Iterable[str] | None = None,
        directions: Mapping[str, Any] | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> GoalView:
        """Create a goal (the fields of a wire ``goal`` event) and return it.

        Args:
            description: the goal text.
            goal_id: the goal's id (default: a new random id).
            goal_state: numeric targets, e.g. ``{"progress": 10}``.
            plan: the plan's steps.
            directions: per metric, ``increase``, ``decrease`` or ``range``.
            budget: ``Budget(steps=..., tokens=...)`` or ``{"steps": ..., "tokens": ...}``.

        Raises:
            ValidationError: a bad field (``.field`` names it); nothing is created.
            GoalError: a goal with that id exists.
        """
        return self._run(
            self._ops.create_goal(*_goal_args(goal_id, description, goal_state, plan, directions, budget))
        )

    def get_goal(self, goal_id: str) -> GoalView:
        """The goal's state. Raises :class:`~goalkeeper.errors.GoalNotFound` for an unknown goal."""
        return self._run(self._ops.get_goal(_id("goal_id", goal_id)))

    def list_goals(self, status: str | None = None) -> list[GoalView]:
        """Every goal, or those with ``status`` (``active``, ``closed``, ``archived``)."""
        return self._run(self._ops.list_goals(_status(status)))

    def update_goal(
        self,
        goal_id: str,
        *,
        description: str | None = None,
        goal_state: Mapping[str, Any] | None = None,
        plan: Iterable[str] | None = None,
        directions: Mapping[str, Any] | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> Receipt:
        """Change an existing goal with a new ``goal`` event (fields given replace the old ones).

        Raises:
            ValidationError: a bad field. GoalNotFound: unknown goal. GoalError: the goal is closed.
        """
        gid, fields = _goal_args(_id("goal_id", goal_id), description, goal_state, plan, directions, budget)
        return self._run(self._ops.update_goal(gid, fields))

    def close_goal(self, goal_id: str) -> GoalView:
        """Close the goal: it accepts no more events (closing twice is harmless)."""
        return self._run(self._ops.close_goal(_id("goal_id", goal_id)))

    def send(self, events: Iterable[Event | Mapping[str, Any]]) -> Receipt:
        """Send events (typed or wire dicts) without waiting for their effect.

        Each event without an ``event_id`` gets one here, so a retried post is taken once.

        Raises:
            ValidationError: an event fails the schema (``.field`` is ``events[i].<field>``);
                nothing is sent.
        """
        return self._run(self._ops.send(as_events(events)))

    def record(self, event: Event | Mapping[str, Any]) -> Decision:
        """Send one event and return goalkeeper's :class:`Decision` on it.

        Raises:
            ValidationError: the event fails the schema. GoalError: its goal is closed.
            ServiceUnavailable: (remote) the server did not apply it in time.
        """
        return self._run(self._ops.record(as_event(event)))

    def step(
        self,
        goal_id: str,
        tool: str,
        args: Mapping[str, Any] | None = None,
        *,
        output: str = "",
        error: str | None = None,
        description: str = "",
        tokens: int = 0,
        event_id: str | None = None,
    ) -> Decision:
        """Record one tool call and its result (a ``step`` event) and return the decision."""
        return self.record(_step(goal_id, tool, args, output, error, description, tokens, event_id))

    def suggestions(self, goal_id: str, *, after_version: int = 0, limit: int = 100) -> list[Suggestion]:
        """The goal's suggestions with ``version > after_version``, oldest first."""
        after, lim = _int("after_version", after_version, 0), _int("limit", limit, 1)
        return self._run(self._ops.suggestions(_id("goal_id", goal_id), after, lim))

    def feedback(self, suggestion_id: str, outcome: FeedbackOutcome | str) -> Receipt:
        """Report how a suggestion worked out: ``accepted``, ``rejected``, ``helped`` or ``hurt``."""
        return self._run(self._ops.feedback(_id("suggestion_id", suggestion_id), _outcome(outcome), new_id()))

    def task(self, goal_id: str) -> dict[str, Any]:
        """The goal's task record: progress percentage, sub-goals, errors, tools, a prompt block."""
        return self._run(self._ops.task(_id("goal_id", goal_id)))

    def metrics_history(self, goal_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """The goal's metric points (one per applied event) with ``seq > after_seq``, oldest first."""
        after, lim = _int("after_seq", after_seq, 0), _int("limit", limit, 1)
        return self._run(self._ops.metrics_history(_id("goal_id", goal_id), after, lim))

    def health(self) -> dict[str, Any]:
        """The backend's health (``{"status": "ok", ...}``)."""
        return self._run(self._ops.health())


class AsyncClientBase:
    """The asynchronous client: the same methods as :class:`SyncClientBase`, as coroutines.

    Use it with ``async with`` or ``await aclose()`` when done.
    """

    def __init__(self, ops: Operations) -> None:
        self._ops = ops

    async def _exchange(self, request: Request) -> Response | Failure:
        """Send one request (backends that talk HTTP override this)."""
        raise NotImplementedError(f"{type(self).__name__} cannot send {request.method} {request.path}")

    async def _run(self, call: Call[T]) -> T:
        reply: Reply = None
        while True:
            try:
                instruction = call.send(reply)
            except StopIteration as stop:
                result: T = stop.value
                return result
            if isinstance(instruction, Sleep):
                await asyncio.sleep(instruction.seconds)
                reply = None
            else:
                reply = await self._exchange(instruction)

    async def aclose(self) -> None:
        """Release the client's resources (its connection pool, for a remote client)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def create_goal(
        self,
        description: str | None = None,
        *,
        goal_id: str | None = None,
        goal_state: Mapping[str, Any] | None = None,
        plan: Iterable[str] | None = None,
        directions: Mapping[str, Any] | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> GoalView:
        """See :meth:`SyncClientBase.create_goal`."""
        args = _goal_args(goal_id, description, goal_state, plan, directions, budget)
        return await self._run(self._ops.create_goal(*args))

    async def get_goal(self, goal_id: str) -> GoalView:
        """See :meth:`SyncClientBase.get_goal`."""
        return await self._run(self._ops.get_goal(_id("goal_id", goal_id)))

    async def list_goals(self, status: str | None = None) -> list[GoalView]:
        """See :meth:`SyncClientBase.list_goals`."""
        return await self._run(self._ops.list_goals(_status(status)))

    async def update_goal(
        self,
        goal_id: str,
        *,
        description: str | None = None,
        goal_state: Mapping[str, Any] | None = None,
        plan: Iterable[str] | None = None,
        directions: Mapping[str, Any] | None = None,
        budget: Budget | Mapping[str, Any] | None = None,
    ) -> Receipt:
        """See :meth:`SyncClientBase.update_goal`."""
        gid, fields = _goal_args(_id("goal_id", goal_id), description, goal_state, plan, directions, budget)
        return await self._run(self._ops.update_goal(gid, fields))

    async def close_goal(self, goal_id: str) -> GoalView:
        """See :meth:`SyncClientBase.close_goal`."""
        return await self._run(self._ops.close_goal(_id("goal_id", goal_id)))

    async def send(self, events: Iterable[Event | Mapping[str, Any]]) -> Receipt:
        """See :meth:`SyncClientBase.send`."""
        return await self._run(self._ops.send(as_events(events)))

    async def record(self, event: Event | Mapping[str, Any]) -> Decision:
        """See :meth:`SyncClientBase.record`."""
        return await self._run(self._ops.record(as_event(event)))

    async def step(
        self,
        goal_id: str,
        tool: str,
        args: Mapping[str, Any] | None = None,
        *,
        output: str = "",
        error: str | None = None,
        description: str = "",
        tokens: int = 0,
        event_id: str | None = None,
    ) -> Decision:
        """See :meth:`SyncClientBase.step`."""
        return await self.record(_step(goal_id, tool, args, output, error, description, tokens, event_id))

    async def suggestions(
        self, goal_id: str, *, after_version: int = 0, limit: int = 100
    ) -> list[Suggestion]:
        """See :meth:`SyncClientBase.suggestions`."""
        after, lim = _int("after_version", after_version, 0), _int("limit", limit, 1)
        return await self._run(self._ops.suggestions(_id("goal_id", goal_id), after, lim))

    async def feedback(self, suggestion_id: str, outcome: FeedbackOutcome | str) -> Receipt:
        """See :meth:`SyncClientBase.feedback`."""
        sid, out = _id("suggestion_id", suggestion_id), _outcome(outcome)
        return await self._run(self._ops.feedback(sid, out, new_id()))

    async def task(self, goal_id: str) -> dict[str, Any]:
        """See :meth:`SyncClientBase.task`."""
        return await self._run(self._ops.task(_id("goal_id", goal_id)))

    async def metrics_history(
        self, goal_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """See :meth:`SyncClientBase.metrics_history`."""
        after, lim = _int("after_seq", after_seq, 0), _int("limit", limit, 1)
        return await self._run(self._ops.metrics_history(_id("goal_id", goal_id), after, lim))

    async def health(self) -> dict[str, Any]:
        """See :meth:`SyncClientBase.health`."""
        return await self._run(self._ops.health())
