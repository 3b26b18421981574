"""Field validators and per-type parsers of wire schema v1 (private: use :mod:`goalkeeper.events`).

Every helper raises :class:`~goalkeeper.errors.ValidationError` whose ``.field`` is the dotted path
of the bad field and whose message says what was expected and what was got (``expected a string,
got the number 5``). :data:`SPECS` maps each wire ``type`` to its allowed fields and its parser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeVar, cast

from .core.feedback_strategies import GoalSpec, check_json, parse_time
from .core.model import (
    Budget,
    ContextCompressedEvent,
    Event,
    EventType,
    FeedbackEvent,
    FeedbackOutcome,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    SubGoalStatus,
)
from .core.steps import Role, Step
from .errors import InvalidInputError, ValidationError

#: The wire schema version this reader understands and writers emit (the ``v`` field).
SCHEMA_VERSION: Final = 1
#: Longest accepted identifier (``goal_id``, ``event_id``, ``suggestion_id``, sub-goal ``id``).
MAX_ID_LENGTH: Final = 256
#: Largest accepted count (``tokens``, budget ``steps``/``tokens``): it fits a signed 64-bit column.
MAX_INT: Final = 2**63 - 1
#: First epoch second after the last one ISO-8601 can write (year 10000); ``ts`` must be below it.
TS_MAX: Final = 253_402_300_800.0
#: Exit codes span negative POSIX signal codes up to unsigned 32-bit Windows codes (0xC0000005).
EXIT_MIN, EXIT_MAX = -(2**31), 2**32 - 1

# Unicode category Cc: invisible, and they break logs, terminals and URL paths.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ENVELOPE = frozenset({"type", "goal_id", "event_id", "ts", "v", "schema", "meta"})
#: What an identifier must be, as error messages say it.
ID = f"a non-empty string of at most {MAX_ID_LENGTH} characters without control characters"
_ROLES: Final = ("user", "assistant", "system")
_E = TypeVar("_E", bound=StrEnum)


# ---------------------------------------------------------------------------------------------
# Error helpers: every message says what was expected and what was got.
# ---------------------------------------------------------------------------------------------


def describe(value: object) -> str:
    """A short JSON-flavoured description of ``value`` for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > 40:
            return f"a string of {len(value)} characters starting {value[:40]!r}"
        return f"the string {value!r}"
    if isinstance(value, int):
        # repr() of an int beyond sys.int_max_str_digits raises, so giant ints are only sized.
        return f"the number {value!r}" if value.bit_length() <= 64 else "a huge integer"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    return f"a value of type {type(value).__name__}"


def wrong(field: str | None, expected: str, value: object) -> ValidationError:
    """The error for ``field``: ``expected <expected>, got <what value is>``."""
    return ValidationError(f"expected {expected}, got {describe(value)}", field=field)


def missing(field: str, expected: str) -> ValidationError:
    """The error for a required ``field`` that is absent."""
    return ValidationError(f"required field is missing; expected {expected}", field=field)


def bare_message(exc: InvalidInputError) -> str:
    """The message of ``exc`` without the ``"<field>: "`` prefix its constructor adds."""
    text, prefix = str(exc), f"{exc.field}: "
    return text[len(prefix) :] if exc.field and text.startswith(prefix) else text


def revalidated(exc: InvalidInputError) -> ValidationError:
    """The core's InvalidInputError as a ValidationError for the same field and message."""
    return ValidationError(bare_message(exc), field=exc.field)


# ---------------------------------------------------------------------------------------------
# Field validators
# ---------------------------------------------------------------------------------------------


def ident(value: object, field: str) -> str:
    """Return ``value`` if it is an identifier (see :data:`ID`), else raise naming ``field``."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID_LENGTH
        or _CONTROL.search(value) is not None
    ):
        raise wrong(field, ID, value)
    return value


def required(obj: Mapping[str, Any], key: str, expected: str) -> Any:
    """Return ``obj[key]`` (maybe null), or raise if the key is absent."""
    if key not in obj:
        raise missing(key, expected)
    return obj[key]


def opt_str(obj: Mapping[str, Any], key: str) -> str:
    """Return the optional string ``obj[key]``; absent or null is ``""``."""
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise wrong(key, "a string", value)
    return value


def count(value: object, field: str) -> int:
    """Return ``value`` if it is an integer in ``[0, MAX_INT]`` (never a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise wrong(field, "a non-negative integer (at most 2**63 - 1)", value)
    return value


def choice(value: object, field: str, enum: type[_E]) -> _E:
    """Return the member of ``enum`` whose value is ``value``, else raise listing the values."""
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise wrong(field, "one of " + ", ".join(repr(m.value) for m in enum), value)


def json_copy(value: object, field: str) -> Any:
    """A validated deep copy of JSON-like data (see core ``check_json``), errors naming the path."""
    try:
        return check_json(value, field)
    except InvalidInputError as exc:
        raise revalidated(exc) from None
    except ValueError:  # an integer too long to print (sys.int_max_str_digits)
        raise ValidationError("contains an integer too large to represent", field=field) from None


def json_object(value: object, field: str) -> dict[str, Any]:
    """An optional JSON object: ``null`` is empty; the result is a validated deep copy."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise wrong(field, "an object", value)
    return cast(dict[str, Any], json_copy(value, field))


def timestamp(value: object, field: str = "ts") -> float:
    """Epoch seconds from an ISO-8601 string (naive = UTC) or a number, within [0, TS_MAX)."""
    expected = "an ISO-8601 date-time or epoch seconds"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise wrong(field, expected, value)
    try:
        seconds = parse_time(value, numbers=True)
    except OverflowError:  # a date-time whose offset pushes it outside datetime's range
        seconds = math.inf
    if seconds is None:
        raise wrong(field, expected, value)
    if not 0.0 <= seconds < TS_MAX:  # also false for NaN
        hint = " (milliseconds? send seconds)" if 0.0 <= seconds / 1000 < TS_MAX else ""
        raise wrong(field, f"a time from 1970-01-01 to 9999-12-31{hint}", value)
    return seconds


def check_version(obj: Mapping[str, Any]) -> None:
    """Reject ``v`` / ``schema`` unless absent, null or exactly the integer 1."""
    for key in ("v", "schema"):
        value = obj.get(key)
        if value is not None and not (type(value) is int and value == SCHEMA_VERSION):
            raise wrong(key, f"{SCHEMA_VERSION} (the wire schema this reader understands)", value)


def check_fields(obj: Mapping[str, Any], allowed: frozenset[str], what: str, prefix: str = "") -> None:
    """Reject the first unknown field (in input order), suggesting the closest known name."""
    extra = obj.keys() - allowed
    if not extra:
        return
    key = next(k for k in obj if k in extra)
    name = key if isinstance(key, str) else repr(key)
    close = get_close_matches(name, sorted(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValidationError(
        f"unknown field for {what}{hint}; expected one of: {', '.join(sorted(allowed))}",
        field=prefix + name,
    )


def check_meta(obj: Mapping[str, Any]) -> None:
    """Reject a ``meta`` that is neither absent, null nor an object (its content is ignored)."""
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, Mapping):
        raise wrong("meta", "an object", meta)


# ---------------------------------------------------------------------------------------------
# Per-type parsers: (object, goal_id, event_id, ts) -> event
# ---------------------------------------------------------------------------------------------


def parse_goal(obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None) -> GoalEvent:
    """``goal``: description, goal_state + directions (checked by GoalSpec), plan, budget."""
    description = opt_str(obj, "description")
    goal_state = json_object(obj.get("goal_state"), "goal_state")
    directions = json_object(obj.get("directions"), "directions")
    try:  # the core decides what a valid goal is; its errors already name goal_state.x / directions.x
        GoalSpec.parse(goal_state, directions)
    except InvalidInputError as exc:
        raise revalidated(exc) from None
    raw_plan, plan = obj.get("plan"), None
    if raw_plan is not None:
        if not isinstance(raw_plan, (list, tuple)):
            raise wrong("plan", "an array of strings", raw_plan)
        for i, item in enumerate(raw_plan):
            if not isinstance(item, str):
                raise wrong(f"plan[{i}]", "a string", item)
        plan = tuple(raw_plan)
    raw_budget, budget = obj.get("budget"), None
    if raw_budget is not None:
        if not isinstance(raw_budget, Mapping):
            raise wrong("budget", "an object with steps and/or tokens", raw_budget)
        check_fields(raw_budget, frozenset({"steps", "tokens"}), "a budget", "budget.")
        steps, tokens = raw_budget.get("steps"), raw_budget.get("tokens")
        budget = Budget(
            None if steps is None else count(steps, "budget.steps"),
            None if tokens is None else count(tokens, "budget.tokens"),
        )
    return GoalEvent(
        goal_id=goal_id,
        event_id=event_id,
        ts=ts,
        description=description,
        goal_state=goal_state,
        plan=plan,
        directions=directions,
        budget=budget,
    )


def parse_step(obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None) -> StepEvent:
    """``step``: tool, args, description, output (non-text JSON-encoded), error, exit_code, tokens,
    thought."""
    tool, description = opt_str(obj, "tool"), opt_str(obj, "description")
    args = json_object(obj.get("args"), "args")
    output = obj.get("output")
    if output is None:
        output = ""
    elif not isinstance(output, str):
        try:  # Step.of owns the rule for encoding structured output as text
            output = Step.of(output=output).output
        except InvalidInputError as exc:
            raise revalidated(exc) from None
        except (ValueError, RecursionError):  # giant ints, pathological nesting
            raise ValidationError("cannot be encoded as JSON text", field="output") from None
    error = obj.get("error")
    if error is not None and not isinstance(error, str):
        raise wrong("error", "a string or null", error)
    exit_code = obj.get("exit_code")
    if exit_code is not None and (
        isinstance(exit_code, bool) or not isinstance(exit_code, int) or not EXIT_MIN <= exit_code <= EXIT_MAX
    ):
        raise wrong("exit_code", "an integer from -2**31 to 2**32 - 1, or null", exit_code)
    tokens = obj.get("tokens")
    return StepEvent(
        goal_id=goal_id,
        event_id=event_id,
        ts=ts,
        tool=tool,
        args=args,
        description=description,
        output=output,
        error=error or None,  # "" means no error, as in Step.of
        exit_code=exit_code,
        tokens=0 if tokens is None else count(tokens, "tokens"),
        thought=opt_str(obj, "thought"),
    )


def parse_message(obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None) -> MessageEvent:
    """``message``: role (required), content."""
    expected = "one of 'user', 'assistant', 'system'"
    role = required(obj, "role", expected)
    if not isinstance(role, str) or role not in _ROLES:
        raise wrong("role", expected, role)
    return MessageEvent(
        goal_id=goal_id, event_id=event_id, ts=ts, role=cast(Role, role), content=opt_str(obj, "content")
    )


def parse_metrics(obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None) -> MetricsEvent:
    """``metrics``: values (required), an object of scalar readings."""
    raw = required(obj, "values", "an object of metric readings")
    if not isinstance(raw, Mapping):
        raise wrong("values", "an object of metric readings", raw)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise wrong("values", "metric names that are non-empty strings", key)
        name = f"values.{key}"
        if isinstance(value, (Mapping, list, tuple)):
            raise wrong(name, "a number, boolean, string or null", value)
        values[key] = json_copy(value, name)
    return MetricsEvent(goal_id=goal_id, event_id=event_id, ts=ts, values=values)


def parse_subgoal(obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None) -> SubgoalEvent:
    """``subgoal``: id and/or description (one is required), status (default pending)."""
    raw_id, description = obj.get("id"), obj.get("description")
    sub_id = None if raw_id is None else ident(raw_id, "id")
    if description is not None and not isinstance(description, str):
        raise wrong("description", "a string or null", description)
    if sub_id is None and not description:
        raise ValidationError(
            "a subgoal event needs an id or a non-empty description, got neither", field="id"
        )
    status = obj.get("status")
    return SubgoalEvent(
        goal_id=goal_id,
        event_id=event_id,
        ts=ts,
        id=sub_id,
        description=description,
        status=SubGoalStatus.PENDING if status is None else choice(status, "status", SubGoalStatus),
    )


def parse_feedback(obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None) -> FeedbackEvent:
    """``feedback``: suggestion_id and outcome, both required."""
    suggestion_id = ident(required(obj, "suggestion_id", ID), "suggestion_id")
    outcomes = ", ".join(repr(o.value) for o in FeedbackOutcome)
    outcome = choice(required(obj, "outcome", f"one of {outcomes}"), "outcome", FeedbackOutcome)
    return FeedbackEvent(
        goal_id=goal_id, event_id=event_id, ts=ts, suggestion_id=suggestion_id, outcome=outcome
    )


def parse_compressed(
    obj: Mapping[str, Any], goal_id: str, event_id: str, ts: float | None
) -> ContextCompressedEvent:
    """The ``context_compressed`` marker (it carries nothing beyond the envelope)."""
    return ContextCompressedEvent(goal_id=goal_id, event_id=event_id, ts=ts)


#: Builds the typed event from the object and its validated goal_id, event_id and ts.
Parser = Callable[[Mapping[str, Any], str, str, float | None], Event]


class Spec(NamedTuple):
    """What one event type accepts: its allowed top-level fields, its parser, its name in errors."""

    fields: frozenset[str]
    parse: Parser
    what: str


def spec(fields: str, parse: Parser, type_: EventType) -> Spec:
    """The :class:`Spec` of ``type_``: the envelope fields plus ``fields`` (space-separated)."""
    return Spec(_ENVELOPE | frozenset(fields.split()), parse, f"a {type_.value!r} event")


#: The event types by wire ``type``. Keyed by the plain string so the hot path is one dict
#: lookup on the wire value.
SPECS: Final[Mapping[str, Spec]] = MappingProxyType(
    {
        EventType.GOAL.value: spec(
            "description goal_state plan directions budget", parse_goal, EventType.GOAL
        ),
        EventType.STEP.value: spec(
            "tool args description output error exit_code tokens thought", parse_step, EventType.STEP
        ),
        EventType.MESSAGE.value: spec("role content", parse_message, EventType.MESSAGE),
        EventType.METRICS.value: spec("values", parse_metrics, EventType.METRICS),
        EventType.SUBGOAL.value: spec("id description status", parse_subgoal, EventType.SUBGOAL),
        EventType.FEEDBACK.value: spec("suggestion_id outcome", parse_feedback, EventType.FEEDBACK),
        EventType.CONTEXT_COMPRESSED.value: spec("", parse_compressed, EventType.CONTEXT_COMPRESSED),
    }
)
#: The accepted ``type`` values, as error messages say it.
TYPES = "one of " + ", ".join(repr(t) for t in SPECS)
