"""Goal targets, goal specs and the nudge strategies of the feedback loop."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.feedback_strategies import (
    FEEDBACK_KEY,
    MAX_MAGNITUDE,
    PERSONALITY_FACTORS,
    SIMPLE_STEP,
    AdaptiveGoalFeedbackStrategy,
    Direction,
    FeedbackContext,
    FeedbackOutcome,
    GoalFeedbackStrategy,
    GoalSpec,
    GoalTarget,
    LearningGoalFeedbackStrategy,
    Personality,
    PersonalityGoalFeedbackStrategy,
    SimpleGoalFeedbackStrategy,
    Trend,
    check_json,
    parse_time,
    strategy_from_dict,
)
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def ctx(
    targets: dict[str, object], latest: dict[str, float] | None = None, directions=None
) -> FeedbackContext:
    spec = GoalSpec.parse(targets, directions)
    return FeedbackContext({t.metric: t for t in spec.targets}, latest or {})


# ----------------------------------------------------------------------------------------------
# Pinned constants and enums
# ----------------------------------------------------------------------------------------------


def test_enum_values_are_the_wire_strings():
    assert [d.value for d in Direction] == ["increase", "decrease", "range"]
    assert [t.value for t in Trend] == ["stable", "toward_goal", "away_from_goal"]
    assert [o.value for o in FeedbackOutcome] == ["accepted", "rejected", "helped", "hurt"]
    assert [p.value for p in Personality] == ["cautious", "neutral", "aggressive"]


def test_constants_are_pinned():
    assert SIMPLE_STEP == 0.5
    assert dict(PERSONALITY_FACTORS) == {"cautious": 0.25, "neutral": 0.5, "aggressive": 0.75}
    assert MAX_MAGNITUDE == 1e300
    assert FEEDBACK_KEY == "goal_feedback"


# ----------------------------------------------------------------------------------------------
# Goal targets: wire forms
# ----------------------------------------------------------------------------------------------


def test_plain_number_has_no_direction_until_resolved():
    t = GoalTarget.from_wire("p", 10)
    assert t == GoalTarget("p", 10.0)
    assert t.direction is None
    assert t.to_wire() == 10.0


def test_bool_goal_is_a_condition_not_a_quantity():
    t = GoalTarget.from_wire("done", True)
    assert t is not None
    assert t.boolean
    assert t.target == 1.0
    assert t.to_wire() is True
    assert GoalTarget.from_wire("done", False).target == 0.0  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError) as exc:
        GoalTarget.from_wire("done", True, "increase")
    assert exc.value.field == "directions.done"


def test_dict_forms():
    assert GoalTarget.from_wire("p", {"target": 5, "direction": "range", "tolerance": 0.5}) == GoalTarget(
        "p", 5.0, Direction.RANGE, low=4.5, high=5.5
    )
    t = GoalTarget.from_wire("p", {"min": 0.1, "max": 0.7})
    assert t is not None
    assert (t.low, t.high, t.direction) == (0.1, 0.7, Direction.RANGE)
    assert t.is_reached(0.1)
    assert t.is_reached(0.7)
    assert GoalTarget.from_wire("p", {"min": 3}) == GoalTarget("p", 3.0, Direction.INCREASE)
    assert GoalTarget.from_wire("p", {"max": 3}) == GoalTarget("p", 3.0, Direction.DECREASE)
    assert GoalTarget.from_wire("p", {"target": 3, "tolerance": 1}) == GoalTarget("p", 3.0, None, 1.0)
    assert GoalTarget.from_wire("p", 4, "decrease") == GoalTarget("p", 4.0, Direction.DECREASE)
    assert GoalTarget.from_wire("p", 4, "range") == GoalTarget("p", 4.0, Direction.RANGE, low=4.0, high=4.0)


@pytest.mark.parametrize(
    ("value", "direction", "field"),
    [
        ({"target": 1, "colour": "red"}, None, "goal_state.p"),
        ({"min": 5, "max": 1}, None, "goal_state.p"),
        ({"min": 1, "max": 5, "tolerance": 1}, None, "goal_state.p"),
        ({"min": 1}, "decrease", "goal_state.p"),
        ({"target": 1, "direction": "up"}, None, "goal_state.p.direction"),
        ({"target": 1, "direction": "increase"}, "decrease", "directions.p"),
        ({"direction": "increase"}, None, "goal_state.p"),
        ({"target": 1, "tolerance": -1}, None, "goal_state.p.tolerance"),
        ({"target": 1, "tolerance": True}, None, "goal_state.p.tolerance"),
        ({"min": 1, "max": 3, "target": 9}, None, "goal_state.p"),
        ({"min": 1, "target": 2}, None, "goal_state.p"),
        ({"target": "ten"}, None, "goal_state.p.target"),
        (math.nan, None, "goal_state.p"),
        (math.inf, None, "goal_state.p"),
        (1e301, None, "goal_state.p"),
        (3, "sideways", "directions.p"),
    ],
)
def test_bad_wire_forms_name_the_field(value, direction, field):
    with pytest.raises(InvalidInputError) as exc:
        GoalTarget.from_wire("p", value, direction)
    assert exc.value.field == field


def test_qualitative_values_are_not_targets():
    for value in ("happy", None, ["a"], {"id": "x"}):
        assert GoalTarget.from_wire("mood", value) is None


def wire_targets():
    plain = st.builds(lambda t: t, finite)
    spec = st.fixed_dictionaries(
        {"target": finite},
        optional={
            "direction": st.sampled_from(["increase", "decrease", "range"]),
            "tolerance": st.floats(0, 100),
        },
    )
    bounds = st.tuples(finite, finite).map(lambda ab: {"min": min(ab), "max": max(ab)})
    return st.one_of(plain, spec, bounds, st.booleans(), st.builds(lambda m: {"min": m}, finite))


@settings(max_examples=150, deadline=None)
@given(wire_targets())
def test_to_wire_round_trips_exactly(value):
    target = GoalTarget.from_wire("m", value)
    assert target is not None
    again = GoalTarget.from_wire("m", json.loads(json.dumps(target.to_wire())))
    assert again == target


# ----------------------------------------------------------------------------------------------
# Goal targets: region, trend, progress, nudge
# ----------------------------------------------------------------------------------------------


def test_resolve_infers_direction_from_the_baseline():
    t = GoalTarget("p", 10.0)
    assert t.resolve(2).direction is Direction.INCREASE
    assert t.resolve(12).direction is Direction.DECREASE
    held = t.resolve(10)
    assert held.direction is Direction.RANGE
    assert (held.low, held.high) == (10.0, 10.0)
    assert t.resolve(None) is t
    given_dir = GoalTarget("p", 10.0, Direction.DECREASE)
    assert given_dir.resolve(0) is given_dir


def test_regions_and_tolerance():
    inc = GoalTarget("p", 10.0, Direction.INCREASE, 0.5)
    assert inc.region() == (9.5, math.inf)
    assert inc.is_reached(9.5)
    assert inc.is_reached(100)
    assert not inc.is_reached(9.4)
    dec = GoalTarget("p", 10.0, Direction.DECREASE, 1.0)
    assert dec.is_reached(11)
    assert dec.is_reached(-5)
    assert not dec.is_reached(11.5)
    rng = GoalTarget("p", 5.0, Direction.RANGE, 0.5)
    assert rng.is_reached(4.5)
    assert rng.is_reached(5.5)
    assert not rng.is_reached(5.6)
    assert rng.distance(7.0) == 1.5
    assert rng.distance(4.0) == 0.5
    assert GoalTarget("p", 5.0).distance(3.0) == 2.0  # unresolved: the point itself


def test_trend_is_distance_based():
    point = GoalTarget("p", 10.0, Direction.RANGE)
    assert point.trend(2, 4) is Trend.TOWARD_GOAL
    assert point.trend(4, 2) is Trend.AWAY_FROM_GOAL
    assert point.trend(4, 4) is Trend.STABLE
    assert point.trend(10, 8) is Trend.AWAY_FROM_GOAL  # the reference said toward_goal
    assert point.trend(8, 15) is Trend.AWAY_FROM_GOAL  # overshoot: distance 2 -> 5
    assert point.trend(15, 11) is Trend.TOWARD_GOAL  # coming back from above
    assert point.trend(10, 10) is Trend.STABLE
    assert point.trend(None, 3) is Trend.STABLE
    inc = GoalTarget("p", 10.0, Direction.INCREASE)
    assert inc.trend(8, 15) is Trend.TOWARD_GOAL  # an increase goal is satisfied by overshooting
    assert inc.trend(12, 15) is Trend.STABLE  # moving inside the region


def test_progress_ratio_reference_examples():
    inc = GoalTarget("p", 10.0).resolve(0)
    assert inc.progress(0, 5) == 0.5
    assert inc.progress(0, 15) == 1.0
    assert inc.progress(0, -5) == 0.0
    assert GoalTarget("p", 0.0).resolve(10).progress(10, 5) == 0.5
    held = GoalTarget("p", 10.0).resolve(10)
    assert held.progress(10, 10) == 1.0
    assert held.progress(10, 9) == 0.0
    assert inc.progress(None, 5) is None
    # An exact (range) goal counts overshoot as distance, unlike the reference's clamp to 1.0.
    assert GoalTarget("p", 10.0, Direction.RANGE).progress(0, 15) == 0.5


@settings(max_examples=200, deadline=None)
@given(
    wire_targets(),
    st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE),
    st.floats(-MAX_MAGNITUDE, MAX_MAGNITUDE),
)
def test_progress_and_distance_stay_in_range(value, baseline, current):
    target = GoalTarget.from_wire("m", value).resolve(baseline)  # type: ignore[union-attr]
    ratio = target.progress(baseline, current)
    assert ratio is not None
    assert 0.0 <= ratio <= 1.0
    assert math.isfinite(target.distance(current))
    assert target.distance(current) >= 0.0


def test_nudge_rules():
    inc = GoalTarget("p", 10.0, Direction.INCREASE)
    assert inc.nudge(4, 0.5) == 7.0
    assert inc.nudge(100, 0.5) == 100  # reached: an overshoot is not pulled back
    point = GoalTarget("time", 0.0)
    assert point.nudge(5, 0.5) == 2.5
    assert point.nudge(5, 0.5, monotonic=True) == 5  # one-direction layer: never decreases
    assert GoalTarget("p", 10.0).nudge(5, 0.5, monotonic=True) == 7.5
    assert GoalTarget("p", 1e300).nudge(-1e300, 1.0) == 1e300  # clamped, never past the target


# ----------------------------------------------------------------------------------------------
# Goal specs
# ----------------------------------------------------------------------------------------------


def test_goal_spec_parse_and_round_trip():
    spec = GoalSpec.parse(
        {"progress": 10, "mood": "happy", "done": True, "latency": {"max": 5}},
        {"progress": "increase"},
    )
    assert [t.metric for t in spec.targets] == ["progress", "done", "latency"]
    assert spec.extras == {"mood": "happy"}
    state = spec.to_goal_state()
    assert state["progress"] == {"target": 10.0, "tolerance": 0.0, "direction": "increase"}
    assert GoalSpec.parse(json.loads(json.dumps(state))) == spec
    assert GoalSpec.parse(None) == GoalSpec()
    assert GoalSpec().to_goal_state() == {}
    assert GoalSpec.parse(spec) is spec


@pytest.mark.parametrize(
    ("goal_state", "directions", "field"),
    [
        ([1, 2], None, "goal_state"),
        ({"": 1}, None, "goal_state"),
        ({1: 1}, None, "goal_state"),
        ({"p": 1}, ["increase"], "directions"),
        ({"p": 1}, {"q": "increase"}, "directions.q"),
        ({"p": 1, "when": {"at": object()}}, None, "goal_state.when.at"),
    ],
)
def test_goal_spec_errors_name_the_field(goal_state, directions, field):
    with pytest.raises(InvalidInputError) as exc:
        GoalSpec.parse(goal_state, directions)
    assert exc.value.field == field


def test_goal_spec_built_by_hand_is_validated():
    p = GoalTarget("p", 1.0)
    assert GoalSpec((p,), {}).extras is None
    for targets, extras in [((p, p), None), (("p",), None), ((p,), {"x": object()}), ((p,), {"p": 1})]:
        with pytest.raises(InvalidInputError):
            GoalSpec(targets, extras)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Value helpers
# ----------------------------------------------------------------------------------------------


def test_check_json_copies_and_validates():
    nested = {"a": [1, {"b": (2, 3)}]}
    out = check_json(nested, "x")
    assert out == {"a": [1, {"b": [2, 3]}]}
    assert out["a"] is not nested["a"]
    for bad, field in [({"a": math.nan}, "x.a"), ({"a": {1, 2}}, "x.a"), ([10**400], "x[0]"), ({2: 1}, "x")]:
        with pytest.raises(InvalidInputError) as exc:
            check_json(bad, "x")
        assert exc.value.field == field
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(InvalidInputError):
        check_json(deep, "x")


def test_parse_time():
    assert parse_time("1970-01-01T00:01:00Z", numbers=False) == 60.0
    assert parse_time("1970-01-01T00:01:00", numbers=False) == 60.0  # naive means UTC
    assert parse_time("1970-01-01T01:01:00+01:00", numbers=False) == 60.0
    assert parse_time("yesterday", numbers=False) is None
    assert parse_time(5, numbers=False) is None
    assert parse_time(5, numbers=True) == 5.0
    assert parse_time(True, numbers=True) is None


# ----------------------------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------------------------


def test_strategies_satisfy_the_protocols():
    for strategy in (SimpleGoalFeedbackStrategy(), PersonalityGoalFeedbackStrategy()):
        assert isinstance(strategy, GoalFeedbackStrategy)
        assert not isinstance(strategy, LearningGoalFeedbackStrategy)
    assert isinstance(AdaptiveGoalFeedbackStrategy(), LearningGoalFeedbackStrategy)


def test_simple_strategy_start_value_precedence():
    s = SimpleGoalFeedbackStrategy()
    c = ctx({"p": 10}, {"p": 4.0})
    # The action's own value wins; without one, the last measurement; the key is then added.
    out = s.suggest_actions([{"p": 100}, {"p": 2}, {}, {"p": None}], c)
    # An unresolved goal is the point 10, so 100 comes down to 55.
    assert out == [{"p": 55.0}, {"p": 6.0}, {"p": 7.0}, {"p": 7.0}]
    # Neither own value nor measurement: the key is left alone (not assumed 0.0).
    assert s.suggest_actions([{}, {"p": None}], ctx({"p": 10})) == [{}, {"p": None}]


def test_strategies_never_touch_text_bools_or_qualitative_goals():
    s = SimpleGoalFeedbackStrategy()
    c = ctx({"p": 10, "mood": "happy", "done": True}, {"p": 0.0, "done": 0.0})
    out = s.suggest_actions([{"p": "abc", "mood": "sad", "done": False}], c)
    assert out == [{"p": "abc", "mood": "sad", "done": False}]


def test_reached_goal_start_is_not_added_or_moved():
    s = SimpleGoalFeedbackStrategy()
    c = ctx({"p": 10}, {"p": 12.0}, {"p": "increase"})
    assert s.suggest_actions([{}, {"p": 15}], c) == [{}, {"p": 15}]


def test_suggestions_do_not_share_nested_data():
    s = SimpleGoalFeedbackStrategy()
    action = {"p": 0, "meta": {"tags": ["a"]}}
    out = s.suggest_actions([action, action], ctx({"p": 10}))
    out[0]["meta"]["tags"].append("b")
    assert out[1]["meta"] == {"tags": ["a"]}
    assert action["meta"] == {"tags": ["a"]}


def test_personality_steps_and_validation():
    c = ctx({"p": 10}, {"p": 0.0})
    assert PersonalityGoalFeedbackStrategy("aggressive").suggest_actions([{}], c) == [{"p": 7.5}]
    assert PersonalityGoalFeedbackStrategy("CAUTIOUS").suggest_actions([{}], ctx({"p": 8}, {"p": 4.0})) == [
        {"p": 5.0}
    ]
    assert PersonalityGoalFeedbackStrategy().personality is Personality.NEUTRAL
    with pytest.raises(ConfigurationError, match="known: cautious, neutral, aggressive"):
        PersonalityGoalFeedbackStrategy("reckless")
    with pytest.raises(ConfigurationError):
        PersonalityGoalFeedbackStrategy(3)  # type: ignore[arg-type]


def test_one_direction_layers_validation():
    assert SimpleGoalFeedbackStrategy(iter(["time"])).one_direction_layers == frozenset({"time"})
    for bad in ("time", 5, ["time", 3]):
        with pytest.raises(ConfigurationError):
            SimpleGoalFeedbackStrategy(bad)  # type: ignore[arg-type]


def test_strategy_serialisation_by_name_and_params():
    for strategy in (
        SimpleGoalFeedbackStrategy(["b", "a"]),
        PersonalityGoalFeedbackStrategy("aggressive", ["t"]),
        AdaptiveGoalFeedbackStrategy(0.3, min_step=0.1, steps={"p": 0.2}),
    ):
        data = json.loads(json.dumps(strategy.to_dict()))
        assert strategy_from_dict(data) == strategy
    assert SimpleGoalFeedbackStrategy(["b", "a"]).to_dict() == {
        "name": "simple",
        "one_direction_layers": ["a", "b"],
    }
    assert "PersonalityGoalFeedbackStrategy(" in repr(PersonalityGoalFeedbackStrategy())
    with pytest.raises(ConfigurationError, match="known: adaptive, personality, simple"):
        strategy_from_dict({"name": "marketing"})
    with pytest.raises(ConfigurationError):
        strategy_from_dict(["simple"])
    with pytest.raises(ConfigurationError, match="bad parameters"):
        strategy_from_dict({"name": "simple", "step": 0.9})


# ----------------------------------------------------------------------------------------------
# Adaptive strategy
# ----------------------------------------------------------------------------------------------


def test_adaptive_defaults_are_pinned():
    a = AdaptiveGoalFeedbackStrategy()
    assert (a.initial_step, a.min_step, a.max_step) == (0.5, 0.05, 0.95)
    assert dict(a.factors) == {"helped": 1.25, "accepted": 1.0, "rejected": 0.8, "hurt": 0.5}
    assert a.MAX_METRICS == 1024


def test_adaptive_learns_per_metric_and_is_bounded():
    a = AdaptiveGoalFeedbackStrategy()
    assert a.record_feedback("p", "helped") is True
    assert a.step_for("p") == 0.625
    assert a.step_for("q") == 0.5
    assert a.record_feedback("p", FeedbackOutcome.HURT) is True
    assert a.step_for("p") == 0.3125
    assert a.record_feedback("p", "rejected") is True
    assert a.step_for("p") == 0.25
    assert a.record_feedback("p", "accepted") is False  # factor 1.0 changes nothing
    assert a.record_feedback("q", "accepted") is False
    assert "q" not in a.steps
    for _ in range(20):
        a.record_feedback("p", "hurt")
    assert a.step_for("p") == 0.05
    for _ in range(20):
        a.record_feedback("p", "helped")
    assert a.step_for("p") == 0.95
    assert a.suggest_actions([{"p": 0}], ctx({"p": 10})) == [{"p": 9.5}]


def test_adaptive_accepts_a_loop_suggestion():
    a = AdaptiveGoalFeedbackStrategy()
    suggestion = {"p": 5.0, FEEDBACK_KEY: {"nudges": {"p": {"from": 0, "to": 5.0}, "q": {}}}}
    assert a.record_feedback(suggestion, "helped")
    assert a.steps == {"p": 0.625, "q": 0.625}
    for bad in ({"p": 1}, "", 3):
        with pytest.raises(InvalidInputError) as exc:
            a.record_feedback(bad, "helped")  # type: ignore[arg-type]
        assert exc.value.field == "metric_or_suggestion"
    with pytest.raises(InvalidInputError) as exc:
        a.record_feedback("p", "great")
    assert exc.value.field == "outcome"


def test_adaptive_forgets_the_oldest_learned_step_beyond_the_cap():
    a = AdaptiveGoalFeedbackStrategy()
    for i in range(a.MAX_METRICS + 3):
        a.record_feedback(f"m{i}", "helped")
    assert len(a.steps) == a.MAX_METRICS
    assert "m0" not in a.steps
    assert f"m{a.MAX_METRICS + 2}" in a.steps


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_step": 0},
        {"min_step": 0.6},
        {"max_step": 1.5},
        {"initial_step": 0.99},
        {"helped_factor": 0.9},
        {"hurt_factor": 1.2},
        {"rejected_factor": 0},
        {"accepted_factor": 5},
        {"helped_factor": math.nan},
        {"steps": {"p": 2.0}},
        {"steps": [("p", 0.5)]},
        {"steps": {"": 0.5}},
        {"initial_step": True},
    ],
)
def test_adaptive_bad_config(kwargs):
    with pytest.raises(ConfigurationError):
        AdaptiveGoalFeedbackStrategy(**kwargs)


def test_adaptive_snapshot_restore():
    a = AdaptiveGoalFeedbackStrategy(one_direction_layers=["t"])
    a.record_feedback("p", "hurt")
    data = json.loads(json.dumps(a.snapshot()))
    assert data["kind"] == "AdaptiveGoalFeedbackStrategy"
    assert data["schema"] == 1
    b = AdaptiveGoalFeedbackStrategy.restore(data)
    assert b == a
    assert b.steps == {"p": 0.25}
    with pytest.raises(SnapshotError):
        AdaptiveGoalFeedbackStrategy.restore({**data, "kind": "Other"})
    with pytest.raises(SnapshotError):
        AdaptiveGoalFeedbackStrategy.restore({**data, "schema": 2})
    with pytest.raises(SnapshotError):
        AdaptiveGoalFeedbackStrategy.restore({**data, "steps": {"p": 7}})


outcomes = st.sampled_from([o.value for o in FeedbackOutcome])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), outcomes), max_size=40), st.data())
def test_adaptive_restore_and_continue_is_identical(events, data):
    cut = data.draw(st.integers(0, len(events)))
    whole = AdaptiveGoalFeedbackStrategy()
    part = AdaptiveGoalFeedbackStrategy()
    results_whole = [whole.record_feedback(m, o) for m, o in events]
    results_part = [part.record_feedback(m, o) for m, o in events[:cut]]
    part = AdaptiveGoalFeedbackStrategy.restore(json.loads(json.dumps(part.snapshot())))
    results_part += [part.record_feedback(m, o) for m, o in events[cut:]]
    assert results_part == results_whole
    assert part.snapshot() == whole.snapshot()
    assert all(0.05 <= s <= 0.95 for s in whole.steps.values())
