"""Wire schema v1 of goalkeeper's events and suggestions, with its JSON and JSONL codec.

An event on the wire is one JSON object; a file or stream of them is JSONL (one object a line).
:func:`parse_event` validates such an object and returns the typed event of
:mod:`goalkeeper.core.model`; :func:`event_to_dict` is its inverse (``parse_event(event_to_dict(e))
== e``). :func:`parse_suggestion` / :func:`suggestion_to_dict` do the same for
:class:`~goalkeeper.core.model.Suggestion`. ``docs/events.md`` is the user-facing reference.

The schema is strict, because a typo that is silently ignored is a bug that surfaces much later:
every field is checked by type, unknown fields are rejected, and every error is a
:class:`~goalkeeper.errors.ValidationError` whose ``.field`` is the dotted path of the bad field
(``"args"``, ``"values.progress"``, ``"plan[2]"``, ``"budget.steps"``) and whose message says what
was expected and what was got. Two envelope fields are tolerated on every object: ``v`` (or
``schema``), which must be 1 when present, and ``meta``, an object that is accepted and ignored.
``null`` for an optional field means "not given" (its default applies).

Errors are checked in a fixed order and the first one is reported: the object itself, ``v``,
``schema``, ``type``, unknown fields, ``goal_id``, ``event_id``, ``ts``, ``meta``, then the fields
of the type. This module uses only the standard library; parsing a typical step event costs a few
microseconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, NamedTuple, Protocol

from . import _wire as _w
from ._wire import MAX_ID_LENGTH, MAX_INT, SCHEMA_VERSION, TS_MAX
from .core.model import (
    Event,
    FeedbackEvent,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    Suggestion,
    SuggestionKind,
)
from .errors import InvalidInputError, ValidationError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_INT",
    "SCHEMA_VERSION",
    "TS_MAX",
    "JsonlReport",
    "LineError",
    "OnError",
    "dumps_event",
    "event_to_dict",
    "loads_event",
    "parse_event",
    "parse_suggestion",
    "read_jsonl",
    "suggestion_to_dict",
    "write_jsonl",
]

#: What to do with a bad JSONL line: raise, skip it silently, or collect it in the report.
OnError = Literal["raise", "skip", "collect"]


def _new_event_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


def parse_event(
    obj: Mapping[str, Any],
    *,
    event_id_factory: Callable[[], str] | None = None,
    received_at: float | None = None,
) -> Event:
    """Validate one wire object and return the typed event.

    Args:
        obj: the decoded JSON object (any mapping).
        event_id_factory: called for an event without ``event_id``; the default returns a random
            UUID4 hex. Pass a deterministic one to make re-ingesting the same input idempotent.
        received_at: the ``ts`` (epoch seconds) of an event without one; ``None`` leaves it unknown.

    Returns:
        A :class:`~goalkeeper.core.model.GoalEvent`, ``StepEvent``, ``MessageEvent``,
        ``MetricsEvent``, ``SubgoalEvent``, ``FeedbackEvent`` or ``ContextCompressedEvent``.

    Raises:
        ValidationError: ``obj`` fails the schema; ``.field`` is the dotted path of the bad field
            (``None`` when ``obj`` is not an object at all).
        InvalidInputError: ``received_at`` or the factory's result is invalid (a caller bug, not
            bad data: ``.field`` is ``"received_at"`` / ``"event_id_factory"``).
    """
    if received_at is not None:
        if isinstance(received_at, bool) or not isinstance(received_at, (int, float)):
            raise InvalidInputError(
                f"expected epoch seconds, got {_w.describe(received_at)}", field="received_at"
            )
        if not 0.0 <= received_at < TS_MAX:
            raise InvalidInputError(f"expected 0 <= seconds < {TS_MAX:.0f}", field="received_at")
    if not isinstance(obj, Mapping):
        raise _w.wrong(None, "an event object", obj)
    _w.check_version(obj)
    type_ = obj.get("type")
    spec = _w.SPECS.get(type_) if isinstance(type_, str) else None
    if spec is None:
        raise _w.missing("type", _w.TYPES) if "type" not in obj else _w.wrong("type", _w.TYPES, type_)
    _w.check_fields(obj, spec.fields, spec.what)
    goal_id = _w.ident(_w.required(obj, "goal_id", _w.ID), "goal_id")
    event_id = obj.get("event_id")
    if event_id is None:
        event_id = (event_id_factory or _new_event_id)()
        if not isinstance(event_id, str) or not event_id:
            raise InvalidInputError(
                f"must return a non-empty string, returned {_w.describe(event_id)}", field="event_id_factory"
            )
    else:
        _w.ident(event_id, "event_id")
    ts = obj.get("ts")
    ts = received_at if ts is None else _w.timestamp(ts)
    _w.check_meta(obj)
    return spec.parse(obj, goal_id, event_id, None if ts is None else float(ts))


def event_to_dict(event: Event) -> dict[str, Any]:
    """Return the wire form of ``event``: a JSON-able dict with ``v: 1`` and every field.

    ``ts`` is epoch seconds (a float) or null; an empty ``event_id`` (an event built in code) is
    written as null, so parsing assigns one. Mapping fields are deep-copied.

    Raises:
        ValidationError: ``ts`` is out of range, or a mapping field holds something JSON cannot
            carry (NaN, a set, ...).
    """
    out: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": event.type.value,
        "goal_id": event.goal_id,
        "event_id": event.event_id or None,
        # Checked because an event built in code may hold NaN, which JSON cannot carry.
        "ts": None if event.ts is None else _w.timestamp(event.ts),
    }
    if isinstance(event, StepEvent):
        out.update(
            tool=event.tool,
            args=_w.json_copy(event.args, "args"),
            description=event.description,
            output=event.output,
            error=event.error,
            exit_code=event.exit_code,
            tokens=event.tokens,
            thought=event.thought,
        )
    elif isinstance(event, GoalEvent):
        budget = event.budget
        out.update(
            description=event.description,
            goal_state=_w.json_copy(event.goal_state, "goal_state"),
            plan=None if event.plan is None else list(event.plan),
            directions=_w.json_copy(event.directions, "directions"),
            budget=None if budget is None else {"steps": budget.steps, "tokens": budget.tokens},
        )
    elif isinstance(event, MessageEvent):
        out.update(role=event.role, content=event.content)
    elif isinstance(event, MetricsEvent):
        out["values"] = _w.json_copy(event.values, "values")
    elif isinstance(event, SubgoalEvent):
        out.update(id=event.id, description=event.description, status=event.status.value)
    elif isinstance(event, FeedbackEvent):
        out.update(suggestion_id=event.suggestion_id, outcome=event.outcome.value)
    return out


# ---------------------------------------------------------------------------------------------
# Suggestions
# ---------------------------------------------------------------------------------------------

_SUGGESTION_FIELDS = frozenset(
    "v schema meta suggestion_id goal_id kind message actions metrics rule version".split()
)


def parse_suggestion(obj: Mapping[str, Any]) -> Suggestion:
    """Validate the wire form of a suggestion and return a :class:`~goalkeeper.core.model.Suggestion`.

    Required: ``suggestion_id``, ``goal_id``, ``kind``, ``message``. Optional: ``actions`` (array
    of objects), ``metrics`` (object of finite numbers, read as floats), ``rule`` (string),
    ``version`` (non-negative integer), and the envelope fields ``v``/``schema``/``meta``.

    Raises:
        ValidationError: the object fails the schema; ``.field`` names the bad field.
    """
    if not isinstance(obj, Mapping):
        raise _w.wrong(None, "a suggestion object", obj)
    _w.check_version(obj)
    _w.check_fields(obj, _SUGGESTION_FIELDS, "a suggestion")
    _w.check_meta(obj)
    suggestion_id = _w.ident(_w.required(obj, "suggestion_id", _w.ID), "suggestion_id")
    goal_id = _w.ident(_w.required(obj, "goal_id", _w.ID), "goal_id")
    kinds = ", ".join(repr(k.value) for k in SuggestionKind)
    kind = _w.choice(_w.required(obj, "kind", f"one of {kinds}"), "kind", SuggestionKind)
    message = _w.required(obj, "message", "a string")
    if not isinstance(message, str):
        raise _w.wrong("message", "a string", message)
    raw_actions, actions = obj.get("actions"), ()
    if raw_actions is not None:
        if not isinstance(raw_actions, (list, tuple)):
            raise _w.wrong("actions", "an array of objects", raw_actions)
        for i, action in enumerate(raw_actions):
            if not isinstance(action, Mapping):
                raise _w.wrong(f"actions[{i}]", "an object", action)
        actions = tuple(_w.json_copy(a, f"actions[{i}]") for i, a in enumerate(raw_actions))
    metrics: dict[str, float] = {}
    for key, value in _w.json_object(obj.get("metrics"), "metrics").items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _w.wrong(f"metrics.{key}", "a finite number", value)
        metrics[key] = float(value)
    version = obj.get("version")
    return Suggestion(
        suggestion_id,
        goal_id,
        kind,
        message,
        actions,
        metrics,
        _w.opt_str(obj, "rule"),
        0 if version is None else _w.count(version, "version"),
    )


def suggestion_to_dict(suggestion: Suggestion) -> dict[str, Any]:
    """Return the wire form of ``suggestion`` (``v: 1`` plus every field); ``parse_suggestion``
    gives back an equal suggestion.

    Raises:
        ValidationError: ``actions`` or ``metrics`` hold something JSON cannot carry.
    """
    out: dict[str, Any] = {"v": SCHEMA_VERSION, **suggestion.to_dict()}
    out["actions"] = _w.json_copy(out["actions"], "actions")
    out["metrics"] = _w.json_copy(out["metrics"], "metrics")
    return out


# ---------------------------------------------------------------------------------------------
# JSON lines
# ---------------------------------------------------------------------------------------------


def dumps_event(event: Event) -> str:
    """Encode ``event`` as one compact JSON line (no trailing newline).

    The output is pure ASCII (non-ASCII characters are ``\\u`` escapes), so it is valid UTF-8
    whatever the text holds (even lone surrogates), and no line splitter (``str.splitlines`` also
    splits on U+2028) can break it in two.

    Raises:
        ValidationError: the event holds something JSON cannot carry (see :func:`event_to_dict`).
    """
    wire = event_to_dict(event)
    try:
        return json.dumps(wire, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:  # a scalar field of an event built in code has a bad type
        raise ValidationError(f"cannot be encoded as JSON: {exc}", field=None) from exc


def loads_event(
    line: str | bytes,
    *,
    event_id_factory: Callable[[], str] | None = None,
    received_at: float | None = None,
) -> Event:
    """Decode one JSON line (``str`` or UTF-8/16/32 ``bytes``) and :func:`parse_event` it.

    Raises:
        ValidationError: malformed JSON (``.field`` is None; the message gives the position) or an
            object that fails the schema.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"malformed JSON: {exc}", field=None) from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, over-long integers, absurd nesting
        raise ValidationError(f"malformed JSON: {type(exc).__name__}: {exc}", field=None) from None
    return parse_event(obj, event_id_factory=event_id_factory, received_at=received_at)


class LineError(NamedTuple):
    """A JSONL line that failed: its 1-based number and the error (whose message names it too)."""

    line: int
    error: ValidationError


class JsonlReport(Iterator[Event]):
    """Iterates the events of a JSONL stream, lazily, and accounts for the lines it read.

    Returned by :func:`read_jsonl`. With ``on_error="collect"`` bad lines end up in :attr:`errors`
    (filled as iteration proceeds; read it after the loop); with ``"skip"`` they are only counted
    in :attr:`skipped`; with ``"raise"`` the first one ends the iteration with its error.

    Attributes:
        lines: lines read so far (blank ones included).
        events: events yielded so far.
        skipped: bad lines passed over (``"skip"`` and ``"collect"``).
        errors: the bad lines, in order (``"collect"`` only).
    """

    def __init__(
        self,
        lines: Iterable[str | bytes],
        *,
        on_error: OnError = "raise",
        event_id_factory: Callable[[], str] | None = None,
        received_at: float | None = None,
    ) -> None:
        if on_error not in ("raise", "skip", "collect"):
            raise InvalidInputError(
                f"expected 'raise', 'skip' or 'collect', got {on_error!r}", field="on_error"
            )
        self.lines = 0
        self.events = 0
        self.skipped = 0
        self.errors: list[LineError] = []
        self._gen = self._run(lines, on_error, event_id_factory, received_at)

    def _run(
        self,
        lines: Iterable[str | bytes],
        on_error: OnError,
        event_id_factory: Callable[[], str] | None,
        received_at: float | None,
    ) -> Iterator[Event]:
        for number, line in enumerate(lines, 1):
            self.lines = number
            if not line or line.isspace():
                continue
            if number == 1 and isinstance(line, str) and line.startswith("\ufeff"):
                line = line[1:]  # a byte-order mark left by the decoder (json.loads rejects it)
            try:
                event = loads_event(line, event_id_factory=event_id_factory, received_at=received_at)
            except ValidationError as exc:
                error = ValidationError(f"{_w.bare_message(exc)} (input line {number})", field=exc.field)
                if on_error == "raise":
                    raise error from exc
                self.skipped += 1
                if on_error == "collect":
                    self.errors.append(LineError(number, error))
                continue
            self.events += 1
            yield event

    def __iter__(self) -> JsonlReport:
        return self

    def __next__(self) -> Event:
        return next(self._gen)


def read_jsonl(
    lines: Iterable[str | bytes],
    *,
    on_error: OnError = "raise",
    event_id_factory: Callable[[], str] | None = None,
    received_at: float | None = None,
) -> JsonlReport:
    """Parse a JSONL stream (an open file, a list of lines, ...) into events, lazily.

    Blank lines are skipped. Errors name the 1-based line number in their message. Example::

        report = read_jsonl(open("run.jsonl", encoding="utf-8"), on_error="collect")
        events = list(report)
        for line, error in report.errors:
            print(line, error.field, error)

    Args:
        lines: the lines, as ``str`` or ``bytes``.
        on_error: ``"raise"`` (default), ``"skip"`` or ``"collect"``; see :class:`JsonlReport`.
        event_id_factory: passed to :func:`parse_event` (make it deterministic for idempotent
            re-imports, e.g. ``functools.partial(next, itertools.count())`` mapped to strings).
        received_at: passed to :func:`parse_event`.

    Raises:
        ValidationError: (while iterating, ``on_error="raise"``) the first bad line.
        InvalidInputError: ``on_error`` is not one of the three modes.
    """
    return JsonlReport(lines, on_error=on_error, event_id_factory=event_id_factory, received_at=received_at)


class _TextSink(Protocol):
    def write(self, text: str, /) -> object: ...


def write_jsonl(events: Iterable[Event], fp: _TextSink) -> int:
    """Write ``events`` to the text stream ``fp``, one :func:`dumps_event` line each.

    Returns:
        The number of events written.
    """
    count = 0
    for event in events:
        fp.write(dumps_event(event) + "\n")
        count += 1
    return count
