"""The sans-I/O protocol every client backend speaks.

An operation is a generator (:data:`Call`): it yields :class:`Request` objects (send this over
HTTP) or :class:`Sleep` objects (wait this long), receives a :class:`Response` or a
:class:`Failure` back for each request, and finally returns its result. All the logic (building
requests, retrying, polling, parsing, mapping errors) lives in these generators; a client's driver
only performs the I/O they ask for, with ``time.sleep``/``httpx.Client`` or ``asyncio.sleep``/
``httpx.AsyncClient``. That is how the sync and the async client share one implementation instead
of being hand-copied twins. The in-process backend's operations never yield: they return at once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field, is_dataclass, replace
from typing import Any, Protocol, TypeAlias, TypeVar

from ..core.model import Budget, Event, FeedbackOutcome, GoalEvent, Suggestion
from ..errors import InvalidInputError, ValidationError
from ..events import event_to_dict, parse_event
from ._model import Decision, GoalView, Receipt

__all__ = [
    "Call",
    "Failure",
    "GoalFields",
    "Operations",
    "Reply",
    "Request",
    "Response",
    "Sleep",
    "as_event",
    "as_events",
    "goal_fields",
    "new_id",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request an operation wants sent.

    Attributes:
        method: ``GET``, ``POST``, ``PATCH``.
        path: the path below the server's base URL (already percent-encoded).
        params: query parameters.
        body: the JSON body, or ``None``.
        idempotent: sending it twice has the effect of sending it once, so it may be retried after
            a failure that happened once the request had left (a timeout, a 5xx).
    """

    method: str
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = None
    idempotent: bool = True

    def content(self) -> bytes | None:
        """The body encoded as compact JSON (``None`` without a body)."""
        if self.body is None:
            return None
        return json.dumps(self.body, separators=(",", ":"), allow_nan=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Response:
    """What came back for a :class:`Request`.

    Attributes:
        status: the HTTP status code.
        body: the raw body.
        retry_after: the ``Retry-After`` header in seconds, when the server sent one as a number.
    """

    status: int
    body: bytes = b""
    retry_after: float | None = None

    def json(self) -> Any:
        """The body decoded as JSON (``None`` for an empty or malformed body)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Failure:
    """No response arrived: the connection failed or timed out.

    Attributes:
        error: the transport's exception (kept as ``__cause__`` of the error finally raised).
        sent: whether the request may have reached the server (a read timeout) or certainly did
            not (a refused connection). Only an idempotent request is retried when it may have.
    """

    error: BaseException
    sent: bool


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait this many seconds before going on (a retry back-off or a poll interval)."""

    seconds: float


#: What an operation yields, and what it is sent back.
Instruction: TypeAlias = Request | Sleep
Reply: TypeAlias = Response | Failure | None
#: An operation: yields instructions, returns ``T``.
Call: TypeAlias = Generator[Instruction, Reply, T]


def new_id() -> str:
    """A fresh random id (UUID4 hex), used for event and goal ids the caller did not give."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class GoalFields:
    """The fields of a ``goal`` event a caller gave, validated, in wire form.

    Attributes:
        body: the wire fields given (``description``, ``goal_state``, ``plan``, ``directions``,
            ``budget``), ready to be posted.
        event: the same as a typed :class:`~goalkeeper.core.model.GoalEvent` (of ``goal_id``).
    """

    body: dict[str, Any]
    event: GoalEvent


def goal_fields(
    goal_id: str,
    *,
    description: str | None = None,
    goal_state: Mapping[str, Any] | None = None,
    plan: Iterable[str] | None = None,
    directions: Mapping[str, Any] | None = None,
    budget: Budget | Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> GoalFields:
    """Validate goal fields by the wire schema (before anything is sent) and return them.

    Raises:
        ValidationError: a bad field; ``.field`` names it (``goal_id``, ``plan[2]``, ``budget.steps``).
    """
    body: dict[str, Any] = {}
    if description is not None:
        body["description"] = description
    if goal_state is not None:
        body["goal_state"] = dict(goal_state) if isinstance(goal_state, Mapping) else goal_state
    if plan is not None:
        body["plan"] = plan if isinstance(plan, str) else list(plan)
    if directions is not None:
        body["directions"] = dict(directions) if isinstance(directions, Mapping) else directions
    if budget is not None:
        body["budget"] = (
            {"steps": budget.steps, "tokens": budget.tokens} if isinstance(budget, Budget) else budget
        )
    eid = new_id() if event_id is None else event_id
    event = parse_event({"type": "goal", "goal_id": goal_id, "event_id": eid, **body})
    assert isinstance(event, GoalEvent)
    return GoalFields(body, event)


def as_event(item: Event | Mapping[str, Any]) -> Event:
    """Validate one event (typed or a wire dict) and give it an ``event_id`` if it has none.

    The id is assigned here, on the client, once: a retried post then carries the same id and the
    server takes the event once.

    Raises:
        ValidationError: the event fails the wire schema; ``.field`` names the field.
    """
    if isinstance(item, Mapping):
        return parse_event(item)
    if not is_dataclass(item) or isinstance(item, type) or not hasattr(item, "goal_id"):
        raise ValidationError(f"expected an event or an event object, got {type(item).__name__}", field=None)
    event = item if getattr(item, "event_id", "") else replace(item, event_id=new_id())
    # Round trip through the wire form: a typed event gets exactly the checks of a wire dict.
    return parse_event(event_to_dict(event))


def as_events(events: Iterable[Event | Mapping[str, Any]]) -> list[Event]:
    """:func:`as_event` for each event of a batch.

    Raises:
        ValidationError: an event fails the schema; ``.field`` is ``events[i].<field>`` (the
            server's naming for a batch).
    """
    if isinstance(events, (Mapping, str, bytes)):
        raise ValidationError("expected a list of events", field="events")
    out: list[Event] = []
    for i, item in enumerate(events):
        try:
            out.append(as_event(item))
        except InvalidInputError as exc:
            where = f"events[{i}]" if exc.field is None else f"events[{i}].{exc.field}"
            raise ValidationError(_bare(exc), field=where) from None
    return out


def _bare(exc: InvalidInputError) -> str:
    text = str(exc)
    prefix = f"{exc.field}: "
    return text[len(prefix) :] if exc.field is not None and text.startswith(prefix) else text


class Operations(Protocol):
    """What a client backend provides; every method returns an operation (:data:`Call`)."""

    def create_goal(self, goal_id: str, fields: GoalFields) -> Call[GoalView]:
        """Create a goal from validated fields."""
        ...

    def get_goal(self, goal_id: str) -> Call[GoalView]:
        """Read one goal."""
        ...

    def list_goals(self, status: str | None) -> Call[list[GoalView]]:
        """Every goal (or those with ``status``)."""
        ...

    def update_goal(self, goal_id: str, fields: GoalFields) -> Call[Receipt]:
        """Send a goal event that changes an existing goal."""
        ...

    def close_goal(self, goal_id: str) -> Call[GoalView]:
        """Close a goal (idempotent)."""
        ...

    def send(self, events: list[Event]) -> Call[Receipt]:
        """Send validated events that all carry an ``event_id``."""
        ...

    def record(self, event: Event) -> Call[Decision]:
        """Send one validated event and return goalkeeper's decision on it."""
        ...

    def suggestions(self, goal_id: str, after_version: int, limit: int) -> Call[list[Suggestion]]:
        """The goal's suggestions with ``version > after_version``, oldest first."""
        ...

    def feedback(self, suggestion_id: str, outcome: FeedbackOutcome, event_id: str) -> Call[Receipt]:
        """Report how a suggestion worked out."""
        ...

    def task(self, goal_id: str) -> Call[dict[str, Any]]:
        """The goal's task record."""
        ...

    def metrics_history(self, goal_id: str, after_seq: int, limit: int) -> Call[list[dict[str, Any]]]:
        """The goal's metric points with ``seq > after_seq``, oldest first."""
        ...

    def health(self) -> Call[dict[str, Any]]:
        """The backend's health."""
        ...
