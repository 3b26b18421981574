"""Tests for goalkeeper.events: wire schema v1, field-naming validation, the JSON/JSONL codec."""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.model import (
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
    Suggestion,
    SuggestionKind,
)
from goalkeeper.core.steps import Step
from goalkeeper.errors import InvalidInputError, ValidationError
from goalkeeper.events import (
    MAX_ID_LENGTH,
    MAX_INT,
    SCHEMA_VERSION,
    TS_MAX,
    JsonlReport,
    LineError,
    dumps_event,
    event_to_dict,
    loads_event,
    parse_event,
    parse_suggestion,
    read_jsonl,
    suggestion_to_dict,
    write_jsonl,
)

# One valid wire object per type; the error table below breaks them one field at a time.
VALID: dict[str, dict[str, Any]] = {
    "goal": {
        "type": "goal",
        "goal_id": "g1",
        "description": "Book a flight",
        "goal_state": {"progress": 10, "cost": {"max": 300}},
        "plan": ["search", "book"],
        "directions": {"progress": "increase"},
        "budget": {"steps": 20, "tokens": 5000},
    },
    "step": {
        "type": "step",
        "goal_id": "g1",
        "tool": "search",
        "args": {"q": "SEA", "n": [1, 2]},
        "description": "search flights",
        "output": "3 flights",
        "error": None,
        "exit_code": 0,
        "tokens": 12,
        "thought": "first, search",
    },
    "message": {"type": "message", "goal_id": "g1", "role": "user", "content": "hi"},
    "metrics": {"type": "metrics", "goal_id": "g1", "values": {"progress": 4, "ok": True, "note": "x"}},
    "subgoal": {"type": "subgoal", "goal_id": "g1", "id": "s1", "description": "search", "status": "done"},
    "feedback": {"type": "feedback", "goal_id": "g1", "suggestion_id": "sg1", "outcome": "helped"},
    "context_compressed": {"type": "context_compressed", "goal_id": "g1"},
}


def _with(type_: str, **changes: Any) -> dict[str, Any]:
    obj = dict(VALID[type_])
    for key, value in changes.items():
        if value is _DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


_DROP = object()


def _fails(obj: object, **kwargs: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_event(obj, event_id_factory=lambda: "e", **kwargs)  # type: ignore[arg-type]
    return info.value


# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------


def test_documented_constants() -> None:
    assert SCHEMA_VERSION == 1
    assert MAX_ID_LENGTH == 256
    assert MAX_INT == 2**63 - 1
    assert TS_MAX == 253_402_300_800.0  # 10000-01-01T00:00:00Z


# ---------------------------------------------------------------------------------------------
# Valid input
# ---------------------------------------------------------------------------------------------


def test_parse_every_type() -> None:
    opts: dict[str, Any] = {"event_id_factory": lambda: "e1"}
    assert parse_event(VALID["goal"], **opts) == GoalEvent(
        goal_id="g1",
        event_id="e1",
        description="Book a flight",
        goal_state={"progress": 10, "cost": {"max": 300}},
        plan=("search", "book"),
        directions={"progress": "increase"},
        budget=Budget(20, 5000),
    )
    assert parse_event(VALID["step"], **opts) == StepEvent(
        goal_id="g1",
        event_id="e1",
        tool="search",
        args={"q": "SEA", "n": [1, 2]},
        description="search flights",
        output="3 flights",
        exit_code=0,
        tokens=12,
        thought="first, search",
    )
    assert parse_event(VALID["message"], **opts) == MessageEvent(
        goal_id="g1", event_id="e1", role="user", content="hi"
    )
    assert parse_event(VALID["metrics"], **opts) == MetricsEvent(
        goal_id="g1", event_id="e1", values={"progress": 4, "ok": True, "note": "x"}
    )
    assert parse_event(VALID["subgoal"], **opts) == SubgoalEvent(
        goal_id="g1", event_id="e1", id="s1", description="search", status=SubGoalStatus.DONE
    )
    assert parse_event(VALID["feedback"], **opts) == FeedbackEvent(
        goal_id="g1", event_id="e1", suggestion_id="sg1", outcome=FeedbackOutcome.HELPED
    )
    assert parse_event(VALID["context_compressed"], **opts) == ContextCompressedEvent(
        goal_id="g1", event_id="e1"
    )


def test_defaults_and_null_means_not_given() -> None:
    bare = {"goal_id": "g", "event_id": "e"}
    assert parse_event({"type": "goal", **bare}) == GoalEvent(goal_id="g", event_id="e")
    assert parse_event({"type": "step", **bare}) == StepEvent(goal_id="g", event_id="e")
    nulls = dict.fromkeys(
        ("tool", "args", "description", "output", "error", "exit_code", "tokens", "thought")
    )
    assert parse_event({"type": "step", **bare, **nulls}) == StepEvent(goal_id="g", event_id="e")
    goal_nulls = dict.fromkeys(("description", "goal_state", "plan", "directions", "budget"))
    assert parse_event({"type": "goal", **bare, **goal_nulls}) == GoalEvent(goal_id="g", event_id="e")
    message = parse_event({"type": "message", **bare, "role": "system", "content": None})
    assert message == MessageEvent(goal_id="g", event_id="e", role="system", content="")
    subgoal = parse_event({"type": "subgoal", **bare, "description": "write tests"})
    assert isinstance(subgoal, SubgoalEvent)
    assert subgoal.status is SubGoalStatus.PENDING
    assert subgoal.id is None
    budget = parse_event({"type": "goal", **bare, "budget": {"steps": None}})
    assert isinstance(budget, GoalEvent)
    assert budget.budget == Budget(None, None)
    assert parse_event({"type": "metrics", **bare, "values": {}}) == MetricsEvent(goal_id="g", event_id="e")


def test_step_output_and_error_normalisation_match_step_of() -> None:
    structured = {"b": [1, 2], "a": None}
    event = parse_event(_with("step", output=structured, error=""))
    assert isinstance(event, StepEvent)
    assert event.output == Step.of(output=structured).output == '{"a": null, "b": [1, 2]}'
    assert event.error is None  # "" counts as no error, as in Step.of
    assert event.to_step() == Step.of(
        "search", {"q": "SEA", "n": [1, 2]}, "search flights", event.output, None, 0, 12, "first, search"
    )


def test_parse_copies_its_input() -> None:
    obj = _with("step", args={"q": {"deep": [1]}})
    event = parse_event(obj)
    obj["args"]["q"]["deep"].append(2)
    assert isinstance(event, StepEvent)
    assert event.args == {"q": {"deep": [1]}}
    wire = event_to_dict(event)
    wire["args"]["q"]["deep"].append(3)
    assert event.args == {"q": {"deep": [1]}}


def test_event_id_assignment() -> None:
    obj = _with("message")
    default = parse_event(obj).event_id
    assert len(default) == 32
    assert int(default, 16) >= 0
    assert parse_event(obj).event_id != default
    counter = itertools.count(1)
    ids = [parse_event(obj, event_id_factory=lambda: f"n{next(counter)}").event_id for _ in range(3)]
    assert ids == ["n1", "n2", "n3"]
    assert parse_event({**obj, "event_id": "given"}, event_id_factory=lambda: "x").event_id == "given"
    assert parse_event({**obj, "event_id": None}, event_id_factory=lambda: "x").event_id == "x"
    # A factory that returns junk is a caller bug, not bad data: not a ValidationError.
    with pytest.raises(InvalidInputError) as info:
        parse_event(obj, event_id_factory=lambda: "")
    assert not isinstance(info.value, ValidationError)
    assert info.value.field == "event_id_factory"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1_700_000_000, 1_700_000_000.0),
        (1_700_000_000.25, 1_700_000_000.25),
        (0, 0.0),
        ("2024-01-01T00:00:00Z", 1_704_067_200.0),
        ("2024-01-01T02:00:00+02:00", 1_704_067_200.0),
        ("2024-01-01T00:00:00", 1_704_067_200.0),  # naive = UTC
        ("2024-01-01T00:00:00.5Z", 1_704_067_200.5),
        ("2024-01-01", 1_704_067_200.0),
        ("9999-12-31T23:59:59Z", TS_MAX - 1),
    ],
)
def test_ts_forms(ts: object, expected: float) -> None:
    event = parse_event(_with("context_compressed", ts=ts))
    assert event.ts == expected
    assert isinstance(event.ts, float)


def test_ts_received_at() -> None:
    obj = _with("context_compressed")
    assert parse_event(obj).ts is None
    assert parse_event(obj, received_at=5).ts == 5.0
    assert parse_event({**obj, "ts": None}, received_at=5.5).ts == 5.5
    assert parse_event({**obj, "ts": 7}, received_at=5.5).ts == 7.0
    for bad in (math.nan, -1.0, TS_MAX, True, "now"):
        with pytest.raises(InvalidInputError) as info:
            parse_event(obj, received_at=bad)  # type: ignore[arg-type]
        assert info.value.field == "received_at"
        assert not isinstance(info.value, ValidationError)


def test_envelope_v_schema_meta() -> None:
    obj = _with("message", v=1, schema=1, meta={"trace": {"anything": [1, None]}})
    assert parse_event(obj, event_id_factory=lambda: "e") == parse_event(
        _with("message"), event_id_factory=lambda: "e"
    )
    assert parse_event(_with("message", v=None, meta=None)).goal_id == "g1"


# ---------------------------------------------------------------------------------------------
# Errors name the field
# ---------------------------------------------------------------------------------------------

BAD: list[tuple[object, str | None, str]] = [
    # envelope
    ([1, 2], None, "expected an event object, got an array of 2 items"),
    ("{}", None, "expected an event object, got the string '{}'"),
    (_with("step", type=_DROP), "type", "required field is missing"),
    (_with("step", type="stepp"), "type", "got the string 'stepp'"),
    (_with("step", type=None), "type", "got null"),
    (_with("step", type=["step"]), "type", "got an array of 1 items"),
    (_with("step", goal_id=_DROP), "goal_id", "required field is missing"),
    (_with("step", goal_id=""), "goal_id", "got the string ''"),
    (_with("step", goal_id=7), "goal_id", "got the number 7"),
    (_with("step", goal_id="a" * 257), "goal_id", "a string of 257 characters"),
    (_with("step", goal_id="a\nb"), "goal_id", "without control characters"),
    (_with("step", goal_id="a\x85b"), "goal_id", "without control characters"),
    (_with("step", event_id=""), "event_id", "non-empty string"),
    (_with("step", event_id=5), "event_id", "got the number 5"),
    (_with("step", ts=True), "ts", "expected an ISO-8601 date-time or epoch seconds, got true"),
    (_with("step", ts=math.nan), "ts", "got the number nan"),
    (_with("step", ts=math.inf), "ts", "got the number inf"),
    (_with("step", ts=-1), "ts", "a time from 1970-01-01 to 9999-12-31"),
    (_with("step", ts=TS_MAX), "ts", "a time from 1970-01-01 to 9999-12-31 (milliseconds? send seconds)"),
    (_with("step", ts=1e15), "ts", "a time from 1970-01-01 to 9999-12-31, got the number 1000000000000000.0"),
    (_with("step", ts=1_700_000_000_000), "ts", "(milliseconds? send seconds)"),
    (_with("step", ts=10**400), "ts", "a huge integer"),
    (_with("step", ts="yesterday"), "ts", "got the string 'yesterday'"),
    (_with("step", ts="1969-12-31T23:59:59Z"), "ts", "from 1970-01-01"),
    (_with("step", ts={"s": 1}), "ts", "got an object"),
    (_with("step", v=2), "v", "expected 1 (the wire schema this reader understands), got the number 2"),
    (_with("step", v="1"), "v", "got the string '1'"),
    (_with("step", v=True), "v", "got true"),
    (_with("step", v=1.0), "v", "got the number 1.0"),
    (_with("step", schema=2), "schema", "got the number 2"),
    (_with("step", meta=[1]), "meta", "expected an object, got an array"),
    (_with("step", toool="x"), "toool", "unknown field for a 'step' event (did you mean 'tool'?)"),
    (_with("message", tool="x"), "tool", "unknown field for a 'message' event; expected one of: content,"),
    (_with("context_compressed", note="x"), "note", "unknown field for a 'context_compressed' event"),
    # goal
    (_with("goal", description=3), "description", "expected a string, got the number 3"),
    (_with("goal", goal_state=[1]), "goal_state", "expected an object, got an array"),
    (
        _with("goal", goal_state={"progress": math.nan}, directions=_DROP),
        "goal_state.progress",
        "finite number",
    ),
    (
        _with("goal", goal_state={"p": {"target": 1, "tolerance": -1}}, directions=_DROP),
        "goal_state.p.tolerance",
        ">= 0",
    ),
    (
        _with("goal", goal_state={"p": {"min": 5, "max": 1}}, directions=_DROP),
        "goal_state.p",
        "min must be <= max",
    ),
    (
        _with("goal", goal_state={"p": {"x": [math.inf]}}, directions=_DROP),
        "goal_state.p.x[0]",
        "finite number",
    ),
    (_with("goal", directions={"progress": "up"}), "directions.progress", "one of increase, decrease, range"),
    (_with("goal", directions={"speed": "increase"}), "directions.speed", "no target"),
    (_with("goal", directions="increase"), "directions", "expected an object, got the string"),
    (_with("goal", plan="search"), "plan", "expected an array of strings, got the string 'search'"),
    (_with("goal", plan=["a", "b", 3]), "plan[2]", "expected a string, got the number 3"),
    (_with("goal", budget=10), "budget", "expected an object with steps and/or tokens, got the number 10"),
    (_with("goal", budget={"steps": -1}), "budget.steps", "expected a non-negative integer"),
    (_with("goal", budget={"tokens": 1.5}), "budget.tokens", "got the number 1.5"),
    (_with("goal", budget={"steps": True}), "budget.steps", "got true"),
    (_with("goal", budget={"steps": 2**63}), "budget.steps", "at most 2**63 - 1"),
    (_with("goal", budget={"step": 1}), "budget.step", "unknown field for a budget (did you mean 'steps'?)"),
    # step
    (_with("step", tool=1), "tool", "expected a string, got the number 1"),
    (_with("step", args=[1]), "args", "expected an object, got an array of 1 items"),
    (_with("step", args="q=1"), "args", "got the string 'q=1'"),
    (_with("step", args={"q": math.nan}), "args.q", "finite number"),
    (_with("step", args={"q": [1, {"r": math.inf}]}), "args.q[1].r", "finite number"),
    (_with("step", args={1: "x"}), "args", "keys must be strings"),
    (_with("step", args={"q": {1, 2}}), "args.q", "JSON-like data, got set"),
    (_with("step", description=[]), "description", "expected a string, got an array of 0 items"),
    (_with("step", error=1), "error", "expected a string or null, got the number 1"),
    (_with("step", exit_code="0"), "exit_code", "expected an integer from -2**31 to 2**32 - 1, or null"),
    (_with("step", exit_code=1.0), "exit_code", "got the number 1.0"),
    (_with("step", exit_code=False), "exit_code", "got false"),
    (_with("step", exit_code=2**32), "exit_code", "got the number 4294967296"),
    (_with("step", exit_code=-(2**31) - 1), "exit_code", "got the number -2147483649"),
    (
        _with("step", tokens=-1),
        "tokens",
        "expected a non-negative integer (at most 2**63 - 1), got the number -1",
    ),
    (_with("step", tokens="12"), "tokens", "got the string '12'"),
    (_with("step", thought=1), "thought", "expected a string, got the number 1"),
    # message
    (_with("message", role=_DROP), "role", "required field is missing; expected one of 'user', 'assistant'"),
    (_with("message", role="bot"), "role", "got the string 'bot'"),
    (_with("message", role=None), "role", "got null"),
    (_with("message", role=["user"]), "role", "got an array"),
    (_with("message", content=5), "content", "expected a string, got the number 5"),
    # metrics
    (_with("metrics", values=_DROP), "values", "required field is missing; expected an object"),
    (_with("metrics", values=None), "values", "got null"),
    (_with("metrics", values=[4]), "values", "got an array"),
    (_with("metrics", values={"progress": {"v": 1}}), "values.progress", "a number, boolean, string or null"),
    (_with("metrics", values={"progress": [1]}), "values.progress", "got an array of 1 items"),
    (_with("metrics", values={"progress": math.nan}), "values.progress", "finite number"),
    (_with("metrics", values={"progress": -math.inf}), "values.progress", "finite number"),
    (_with("metrics", values={"progress": 1e301}), "values.progress", "magnitude <= 1e300"),
    (_with("metrics", values={"": 1}), "values", "metric names that are non-empty strings"),
    # subgoal
    (_with("subgoal", id=None, description=None), "id", "needs an id or a non-empty description"),
    (_with("subgoal", id=_DROP, description=""), "id", "needs an id or a non-empty description"),
    (_with("subgoal", id=""), "id", "non-empty string"),
    (_with("subgoal", id=3), "id", "got the number 3"),
    (_with("subgoal", description=3), "description", "expected a string or null"),
    (_with("subgoal", status="finished"), "status", "one of 'pending', 'in_progress', 'done', 'blocked',"),
    (_with("subgoal", status=1), "status", "got the number 1"),
    # feedback
    (_with("feedback", suggestion_id=_DROP), "suggestion_id", "required field is missing"),
    (_with("feedback", suggestion_id=""), "suggestion_id", "non-empty string"),
    (_with("feedback", outcome=_DROP), "outcome", "required field is missing; expected one of 'accepted'"),
    (
        _with("feedback", outcome="good"),
        "outcome",
        "'accepted', 'rejected', 'helped', 'hurt', got the string",
    ),
]


@pytest.mark.parametrize(("obj", "field", "fragment"), BAD)
def test_errors_name_the_field(obj: object, field: str | None, fragment: str) -> None:
    error = _fails(obj)
    assert error.field == field
    assert fragment in str(error)
    assert str(error).startswith(f"{field}: " if field else "expected")


def test_error_message_format_is_pinned() -> None:
    error = _fails(_with("step", args=[1, 2]))
    assert str(error) == "args: expected an object, got an array of 2 items"
    error = _fails(_with("step", goal_id=_DROP))
    assert str(error) == (
        "goal_id: required field is missing; expected a non-empty string of at most 256 characters "
        "without control characters"
    )


def test_identifier_limits() -> None:
    assert parse_event(_with("step", goal_id="a" * 256)).goal_id == "a" * 256
    assert parse_event(_with("step", goal_id="ziel ü/1\u2028")).goal_id == "ziel ü/1\u2028"  # Zl is no Cc
    assert parse_event(_with("step", exit_code=2**32 - 1)).exit_code == 2**32 - 1  # type: ignore[union-attr]
    assert parse_event(_with("step", exit_code=-(2**31))).exit_code == -(2**31)  # type: ignore[union-attr]
    assert parse_event(_with("step", tokens=MAX_INT)).tokens == MAX_INT  # type: ignore[union-attr]


def test_error_precedence() -> None:
    """Pinned order: object, v, schema, type, unknown fields, goal_id, event_id, ts, meta, type fields."""
    everything = {"v": 2, "schema": 2, "type": "x", "zz": 1, "event_id": 1, "ts": "x", "meta": 1}
    order = ["v", "schema", "type", "zz", "goal_id", "event_id", "ts", "meta"]
    obj: dict[str, Any] = dict(everything)
    for field in order:
        assert _fails(obj).field == field
        if field == "type":
            obj["type"] = "step"
        elif field == "goal_id":
            obj["goal_id"] = "g"
        else:
            del obj[field]
    assert _fails({**obj, "tool": 1, "tokens": -1}).field == "tool"
    # The first unknown field in input order is the one reported.
    assert _fails({"type": "step", "goal_id": "g", "b": 1, "a": 2}).field == "b"


# ---------------------------------------------------------------------------------------------
# Round trips (hypothesis)
# ---------------------------------------------------------------------------------------------

_text = st.text(max_size=20)
_ids = st.text(st.characters(blacklist_categories=["Cc"]), min_size=1, max_size=12)
_ts = st.none() | st.floats(0, TS_MAX, exclude_max=True)
_numbers = st.integers(-(2**70), 2**70) | st.floats(-1e300, 1e300, allow_nan=False)
_scalars = st.none() | st.booleans() | _numbers | _text
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_counts = st.integers(0, MAX_INT)


@st.composite
def _goals(draw: st.DrawFn, goal_id: str, event_id: str, ts: float | None) -> GoalEvent:
    numeric = draw(st.dictionaries(_ids, _numbers, max_size=3))
    extras = draw(
        st.dictionaries(_ids.map(lambda s: "x" + s), _text | st.lists(_text, max_size=2), max_size=2)
    )
    flags = draw(st.dictionaries(_ids.map(lambda s: "f" + s), st.booleans(), max_size=2))
    directions = {
        k: draw(st.sampled_from(["increase", "decrease", "range"])) for k in numeric if draw(st.booleans())
    }
    return GoalEvent(
        goal_id=goal_id,
        event_id=event_id,
        ts=ts,
        description=draw(_text),
        goal_state={**numeric, **extras, **flags},
        plan=draw(st.none() | st.lists(_text, max_size=3).map(tuple)),
        directions=directions,
        budget=draw(st.none() | st.builds(Budget, st.none() | _counts, st.none() | _counts)),
    )


def _event_strategy(goal_id: str, event_id: str, ts: float | None) -> st.SearchStrategy[Event]:
    common: dict[str, Any] = {"goal_id": st.just(goal_id), "event_id": st.just(event_id), "ts": st.just(ts)}
    return st.one_of(
        _goals(goal_id, event_id, ts),
        st.builds(
            StepEvent,
            **common,
            tool=_text,
            args=st.dictionaries(_text, _json, max_size=3),
            description=_text,
            output=_text,
            error=st.none() | st.text(min_size=1, max_size=10),
            exit_code=st.none() | st.integers(-(2**31), 2**32 - 1),
            tokens=_counts,
            thought=_text,
        ),
        st.builds(
            MessageEvent, **common, role=st.sampled_from(["user", "assistant", "system"]), content=_text
        ),
        st.builds(MetricsEvent, **common, values=st.dictionaries(_ids, _scalars, max_size=4)),
        st.builds(
            SubgoalEvent,
            **common,
            id=_ids,
            description=st.none() | _text,
            status=st.sampled_from(SubGoalStatus),
        ),
        st.builds(
            SubgoalEvent, **common, description=st.text(min_size=1), status=st.sampled_from(SubGoalStatus)
        ),
        st.builds(FeedbackEvent, **common, suggestion_id=_ids, outcome=st.sampled_from(FeedbackOutcome)),
        st.builds(ContextCompressedEvent, **common),
    )


_events = st.tuples(_ids, _ids, _ts).flatmap(lambda t: _event_strategy(*t))


@settings(max_examples=300, deadline=None)
@given(_events)
def test_round_trip_every_type(event: Event) -> None:
    wire = event_to_dict(event)
    assert wire["v"] == 1
    assert wire["type"] == event.type.value
    assert parse_event(wire) == event
    line = dumps_event(event)
    assert "\n" not in line
    assert line.isascii()
    assert len(line.splitlines()) == 1
    line.encode("utf-8")  # never raises, whatever the text holds
    assert loads_event(line) == event
    assert loads_event(line.encode("utf-8")) == event
    assert json.loads(line) == json.loads(json.dumps(wire))


def test_event_to_dict_shape() -> None:
    event = parse_event(_with("step", ts="2024-01-01T00:00:00Z"), event_id_factory=lambda: "e")
    wire = event_to_dict(event)
    assert wire == {"v": 1, **VALID["step"], "event_id": "e", "ts": 1_704_067_200.0}
    assert list(wire)[:5] == ["v", "type", "goal_id", "event_id", "ts"]
    assert list(event_to_dict(ContextCompressedEvent(goal_id="g"))) == [
        "v",
        "type",
        "goal_id",
        "event_id",
        "ts",
    ]
    # An event built in code without an id is written with a null id, which parsing then assigns.
    built = event_to_dict(ContextCompressedEvent(goal_id="g"))
    assert built["event_id"] is None
    assert built["ts"] is None
    assert parse_event(built, event_id_factory=lambda: "new").event_id == "new"
    with pytest.raises(ValidationError) as info:
        event_to_dict(ContextCompressedEvent(goal_id="g", ts=math.nan))
    assert info.value.field == "ts"
    with pytest.raises(ValidationError) as info:
        dumps_event(StepEvent(goal_id="g", tokens=math.inf))  # type: ignore[arg-type]
    assert info.value.field is None
    with pytest.raises(ValidationError) as info:
        event_to_dict(MetricsEvent(goal_id="g", values={"p": math.nan}))
    assert info.value.field == "values.p"


# ---------------------------------------------------------------------------------------------
# Nothing but ValidationError (hypothesis)
# ---------------------------------------------------------------------------------------------

_FIELD_NAMES = sorted(
    {k for obj in VALID.values() for k in obj}
    | {"event_id", "ts", "v", "schema", "meta", "content", "outcome", "values", "status", "id"}
)
_wild_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**400), 10**400)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["step", "goal", "metrics", "subgoal", "feedback", "message", "context_compressed"])
)
_wild = st.recursive(
    _wild_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


def _parse_or_error(obj: Any) -> Event | ValidationError:
    try:
        return parse_event(obj, event_id_factory=lambda: "e")
    except ValidationError as exc:
        return exc


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(_FIELD_NAMES), _wild, max_size=8) | _wild)
def test_arbitrary_input_raises_only_validation_error(obj: Any) -> None:
    result = _parse_or_error(obj)  # anything but a ValidationError propagates and fails the test
    if isinstance(result, ValidationError):
        assert result.field is None or isinstance(result.field, str)
    else:
        assert parse_event(event_to_dict(result)) == result  # whatever is accepted re-encodes exactly


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VALID)), st.sampled_from(_FIELD_NAMES), _wild)
def test_one_wild_field_raises_only_validation_error(type_: str, field: str, value: Any) -> None:
    result = _parse_or_error({**VALID[type_], field: value})
    if isinstance(result, ValidationError):
        assert result.field is not None
    else:
        assert parse_event(event_to_dict(result)) == result


# ---------------------------------------------------------------------------------------------
# Suggestions
# ---------------------------------------------------------------------------------------------

SUGGESTION = Suggestion(
    "sg-1",
    "g1",
    SuggestionKind.NUDGE,
    "call search with other arguments",
    ({"progress": 7.0},),
    {"loop_risk": 0.8},
    "loop.repeat",
    3,
)


def test_suggestion_round_trip_and_shape() -> None:
    wire = suggestion_to_dict(SUGGESTION)
    assert wire == {"v": 1, **SUGGESTION.to_dict()}
    assert parse_suggestion(wire) == SUGGESTION
    minimal = parse_suggestion({"suggestion_id": "s", "goal_id": "g", "kind": "abort", "message": ""})
    assert minimal == Suggestion("s", "g", SuggestionKind.ABORT, "")
    assert parse_suggestion({**wire, "metrics": {"p": 1}}).metrics == {"p": 1.0}
    assert isinstance(parse_suggestion({**wire, "metrics": {"p": 1}}).metrics["p"], float)


@settings(max_examples=150, deadline=None)
@given(
    st.builds(
        Suggestion,
        _ids,
        _ids,
        st.sampled_from(SuggestionKind),
        _text,
        st.lists(st.dictionaries(_text, _json, max_size=3), max_size=3).map(tuple),
        st.dictionaries(_text, st.floats(-1e300, 1e300, allow_nan=False), max_size=3),
        _text,
        _counts,
    )
)
def test_suggestion_round_trip_property(suggestion: Suggestion) -> None:
    assert parse_suggestion(suggestion_to_dict(suggestion)) == suggestion
    assert parse_suggestion(json.loads(json.dumps(suggestion_to_dict(suggestion)))) == suggestion


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"suggestion_id": _DROP}, "suggestion_id", "required field is missing"),
        ({"goal_id": ""}, "goal_id", "non-empty string"),
        (
            {"kind": "shout"},
            "kind",
            "one of 'nudge', 'adjust', 'replan', 'abort', 'escalate', 'goal_reached'",
        ),
        ({"message": _DROP}, "message", "required field is missing; expected a string"),
        ({"message": None}, "message", "expected a string, got null"),
        ({"actions": {}}, "actions", "expected an array of objects, got an object"),
        ({"actions": [{"p": 1}, 2]}, "actions[1]", "expected an object, got the number 2"),
        ({"actions": [{"p": math.nan}]}, "actions[0].p", "finite number"),
        ({"metrics": {"p": "high"}}, "metrics.p", "expected a finite number, got the string 'high'"),
        ({"metrics": {"p": True}}, "metrics.p", "got true"),
        ({"metrics": {"p": math.inf}}, "metrics.p", "finite number"),
        ({"rule": 1}, "rule", "expected a string"),
        ({"version": -1}, "version", "non-negative integer"),
        ({"v": 2}, "v", "expected 1"),
        ({"meta": 1}, "meta", "expected an object"),
        ({"kindd": "nudge"}, "kindd", "unknown field for a suggestion (did you mean 'kind'?)"),
    ],
)
def test_suggestion_errors_name_the_field(changes: dict[str, Any], field: str, fragment: str) -> None:
    wire = suggestion_to_dict(SUGGESTION)
    for key, value in changes.items():
        if value is _DROP:
            del wire[key]
        else:
            wire[key] = value
    with pytest.raises(ValidationError) as info:
        parse_suggestion(wire)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_suggestion_not_an_object() -> None:
    with pytest.raises(ValidationError) as info:
        parse_suggestion([])  # type: ignore[arg-type]
    assert info.value.field is None


# ---------------------------------------------------------------------------------------------
# JSON lines
# ---------------------------------------------------------------------------------------------


def test_dumps_is_compact_ascii_one_line() -> None:
    event = parse_event(_with("message", content="Grüße\n\u2028 \ud800 😀"), event_id_factory=lambda: "e")
    line = dumps_event(event)
    assert line.startswith('{"v":1,"type":"message","goal_id":"g1","event_id":"e","ts":null,')
    assert line.isascii()
    assert "\n" not in line
    assert len(line.splitlines()) == 1
    assert loads_event(line) == event


@pytest.mark.parametrize(
    ("line", "position"),
    [
        ('{"type": "step",', "line 1 column 17 (char 16)"),
        ("{'type': 'step'}", "line 1 column 2 (char 1)"),
        ("", "line 1 column 1 (char 0)"),
        ('{"a": 1} x', "line 1 column 10 (char 9)"),
    ],
)
def test_loads_malformed_json(line: str, position: str) -> None:
    with pytest.raises(ValidationError) as info:
        loads_event(line)
    assert info.value.field is None
    assert str(info.value).startswith("malformed JSON: ")
    assert position in str(info.value)


@pytest.mark.parametrize(
    "line", [b'{"type": "\xff"}', "[" * 100_000 + "]" * 100_000, '{"ts": ' + "1" * 5000 + "}"]
)
def test_loads_hostile_input(line: str | bytes) -> None:
    with pytest.raises(ValidationError) as info:
        loads_event(line)
    assert info.value.field is None
    assert "malformed JSON" in str(info.value)


def test_loads_schema_error_keeps_field() -> None:
    with pytest.raises(ValidationError) as info:
        loads_event('{"type": "step", "goal_id": "g", "args": []}')
    assert info.value.field == "args"


def _lines() -> list[str | bytes]:
    return [
        '{"type": "message", "goal_id": "g", "event_id": "a", "role": "user", "content": "hi"}\n',
        "\n",
        "   \n",
        '{"type": "step", "goal_id": "g", "event_id": "b", "args": [1]}\n',  # line 4: schema error
        "{not json\n",  # line 5: malformed
        b'{"type": "context_compressed", "goal_id": "g", "event_id": "c"}\r\n',
        "",
    ]


def test_read_jsonl_raise() -> None:
    report = read_jsonl(_lines())
    assert next(report).event_id == "a"
    with pytest.raises(ValidationError) as info:
        next(report)
    assert info.value.field == "args"
    assert str(info.value) == "args: expected an object, got an array of 1 items (input line 4)"
    assert isinstance(info.value.__cause__, ValidationError)


def test_read_jsonl_skip() -> None:
    report = read_jsonl(_lines(), on_error="skip")
    assert [e.event_id for e in report] == ["a", "c"]
    assert (report.lines, report.events, report.skipped, report.errors) == (7, 2, 2, [])


def test_read_jsonl_collect() -> None:
    report = read_jsonl(_lines(), on_error="collect")
    assert isinstance(report, JsonlReport)
    assert [e.event_id for e in report] == ["a", "c"]
    assert [line for line, _ in report.errors] == [4, 5]
    first, second = report.errors
    assert isinstance(first, LineError)
    assert first.error.field == "args"
    assert "(input line 4)" in str(first.error)
    assert second.error.field is None
    assert str(second.error).startswith("malformed JSON")
    assert "(input line 5)" in str(second.error)
    assert report.skipped == 2


def test_read_jsonl_is_lazy_and_handles_bom() -> None:
    def source() -> Any:
        yield '\ufeff{"type": "context_compressed", "goal_id": "g", "event_id": "a"}'
        raise AssertionError("read too far")

    assert next(read_jsonl(source())).event_id == "a"
    with pytest.raises(InvalidInputError) as info:
        read_jsonl([], on_error="ignore")  # type: ignore[arg-type]
    assert info.value.field == "on_error"


def test_read_jsonl_passes_factory_and_received_at() -> None:
    counter = itertools.count()
    lines = ['{"type": "context_compressed", "goal_id": "g"}'] * 2
    events = list(read_jsonl(lines, event_id_factory=lambda: f"n{next(counter)}", received_at=9.0))
    assert [(e.event_id, e.ts) for e in events] == [("n0", 9.0), ("n1", 9.0)]


def test_write_then_read_jsonl() -> None:
    events = [parse_event(obj, event_id_factory=lambda: "e") for obj in VALID.values()]
    buffer = io.StringIO()
    assert write_jsonl(events, buffer) == len(VALID)
    text = buffer.getvalue()
    assert text.count("\n") == len(VALID)
    assert text.endswith("\n")
    assert list(read_jsonl(io.StringIO(text))) == events
    assert list(read_jsonl(text.encode().splitlines(keepends=True))) == events


def test_parse_accepts_any_mapping() -> None:
    class Frozen(Mapping[str, Any]):
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            return self._data[key]

        def __iter__(self) -> Any:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    obj = Frozen(VALID["step"])
    assert parse_event(obj, event_id_factory=lambda: "e") == parse_event(
        VALID["step"], event_id_factory=lambda: "e"
    )


ENVELOPE = "event_id goal_id meta schema ts type v"


@pytest.mark.parametrize(
    ("type_", "fields"),
    [
        ("goal", "budget description directions goal_state plan"),
        ("step", "args description error exit_code output thought tokens tool"),
        ("message", "content role"),
        ("metrics", "values"),
        ("subgoal", "description id status"),
        ("feedback", "outcome suggestion_id"),
        ("context_compressed", ""),
    ],
)
def test_schema_fields_per_type_are_pinned(type_: str, fields: str) -> None:
    error = _fails({"type": type_, "goal_id": "g", "zzz": 1})
    assert error.field == "zzz"
    listed = str(error).split("expected one of: ")[1].split(", ")
    assert listed == sorted((ENVELOPE + " " + fields).split())
