"""No input crashes the engine: bad input raises a clear goalkeeper error and changes nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goalkeeper.core.steps import ContextCompressed, Message, Step
from goalkeeper.core.tracker import GoalTracker
from goalkeeper.errors import GoalkeeperError

GOAL = "Book the cheapest direct flight from New York to Seattle on May 20"

# Anything at all, including the wrong types for every field.
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "tool": anything,
        "args": anything,
        "description": anything,
        "output": anything,
        "error": anything,
        "exit_code": anything,
        "tokens": anything,
        "thought": anything,
        "ts": anything,
    },
)


def _try(t: GoalTracker, call: Any) -> None:
    before = json.dumps(t.snapshot(), sort_keys=True)
    try:
        call()
    except GoalkeeperError:
        # A refused input leaves no trace.
        assert json.dumps(t.snapshot(), sort_keys=True) == before
        return
    v = t.verifications[-1] if t.verifications else None
    if v is not None:
        for x in (v.alignment_score, v.progress, v.drift_score, v.loop_risk):
            assert 0.0 <= x <= 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fields, min_size=1, max_size=8), anything)
def test_direct_steps_with_any_field_values(batch: list[dict[str, Any]], now: Any) -> None:
    t = GoalTracker(GOAL, plan=["search", "book"])
    for kw in batch:
        _try(t, lambda kw=kw: t.verify(Step(**kw)))  # built directly: no validation on the way in
        _try(t, lambda kw=kw: t.verify(Step.of(**kw)))
        _try(t, lambda: t.verify(Step(tool="search", output="x"), now=now))
        _try(
            t,
            lambda kw=kw: t.verify_step(
                kw.get("description", ""), kw.get("output", ""), tool=kw.get("tool", "")
            ),
        )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything, anything, anything)
def test_messages_and_other_calls_with_any_values(a: Any, b: Any, c: Any) -> None:
    t = GoalTracker(GOAL)
    _try(t, lambda: t.observe(Message(a, b)))
    _try(t, lambda: t.observe(Message.of(a, b)))
    _try(t, lambda: t.observe(ContextCompressed(c)))
    _try(t, lambda: t.observe(a))
    _try(t, lambda: t.set_plan(a))
    _try(t, lambda: t.set_progress(a, reason="fuzz"))
    _try(t, lambda: t.verify(a))
