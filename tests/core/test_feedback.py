"""The goal-driven feedback loop: reference scenarios, the reference's bugs, ids, persistence."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.feedback import (
    DEFAULT_RETENTION_LIMIT,
    MAX_EMITTED,
    MAX_ISSUED,
    AdaptiveGoalFeedbackStrategy,
    FeedbackContext,
    GoalDrivenFeedbackLoop,
    GoalMetric,
    GoalSpec,
    PersonalityGoalFeedbackStrategy,
    SimpleGoalFeedbackStrategy,
    SuggestionKind,
)
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

T0 = 1_700_000_000.0


def make(goal: Any = None, strategy: Any = None, **kwargs: Any) -> GoalDrivenFeedbackLoop:
    return GoalDrivenFeedbackLoop(strategy or SimpleGoalFeedbackStrategy(), goal, **kwargs)


def roundtrip(loop: GoalDrivenFeedbackLoop, **kwargs: Any) -> GoalDrivenFeedbackLoop:
    return GoalDrivenFeedbackLoop.restore(json.loads(json.dumps(loop.snapshot())), **kwargs)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def kinds(suggestions: list[dict[str, Any]]) -> list[str]:
    return [s["goal_feedback"]["kind"] for s in suggestions]


class ExplodingStrategy(SimpleGoalFeedbackStrategy):
    def suggest_actions(self, current_actions, context):
        raise RuntimeError("boom")


# ----------------------------------------------------------------------------------------------
# Pinned numbers and shapes
# ----------------------------------------------------------------------------------------------


def test_constants_and_kinds_are_pinned():
    assert DEFAULT_RETENTION_LIMIT == 1000
    assert MAX_EMITTED == 1024
    assert MAX_ISSUED == 1024
    assert [k.value for k in SuggestionKind] == ["nudge", "hold", "goal_reached"]


def test_suggestion_shape():
    loop = make({"progress": 10}, goal_id="g1")
    [s] = loop.suggest([{"progress": 0}], [{"progress": 0, "tool": "x"}])
    assert set(s) == {"progress", "tool", "suggestion_id", "goal_feedback"}
    assert s["tool"] == "x"
    assert len(s["suggestion_id"]) == 16
    fb = s["goal_feedback"]
    assert fb["kind"] == "nudge"
    assert fb["goal_id"] == "g1"
    assert fb["version"] == loop.version == 1
    assert fb["nudges"] == {"progress": {"from": 0.0, "to": 5.0}}
    assert fb["analysis"] == loop.last_analysis


def test_suggest_actions_is_an_alias():
    assert GoalDrivenFeedbackLoop.suggest_actions is GoalDrivenFeedbackLoop.suggest
    assert make({"p": 10}).suggest_actions([], [{"p": 0}])[0]["p"] == 5


# ----------------------------------------------------------------------------------------------
# Reference scenarios (section 3, items 1-16)
# ----------------------------------------------------------------------------------------------


def test_scenario_01_first_suggestion_moves_halfway():
    assert make({"progress": 10}).suggest([{"progress": 0}], [{"progress": 0}])[0]["progress"] == 5


def test_scenario_02_empty_history_starts_from_the_actions_own_value():
    # The reference got 5 by assuming a missing reading is 0 (bug 8); we get it from the action.
    assert make({"progress": 10}).suggest([], [{"progress": 0}])[0]["progress"] == 5


def test_scenario_03_corrected_each_action_starts_from_its_own_value():
    # The reference answered 7 and 7, ignoring the actions' values (bug 8).
    out = make({"progress": 10}).suggest([{"progress": 4}], [{"progress": 2}, {"progress": 6}])
    assert [s["progress"] for s in out] == [6, 8]


def test_scenario_04_qualitative_goals_are_ignored():
    loop = make({"progress": 10, "mood": "happy"})
    [s] = loop.suggest([{"progress": 0, "mood": "sad"}], [{"progress": 0, "mood": "sad"}])
    assert (s["progress"], s["mood"]) == (5, "sad")


def test_scenario_05_set_goal_state_changes_the_target():
    loop = make({"progress": 4})
    assert loop.suggest([{"progress": 0}], [{"progress": 0}])[0]["progress"] == 2
    loop.set_goal_state({"progress": 10})
    assert loop.suggest([{"progress": 0}], [{"progress": 0}])[0]["progress"] == 5


def test_scenario_06_one_direction_layer_blocks_backward_moves():
    loop = make({"time": 0}, SimpleGoalFeedbackStrategy(["time"]))
    [s] = loop.suggest([{"time": 5}], [{"time": 5}])
    assert s["time"] == 5
    assert s["goal_feedback"]["kind"] == "hold"
    assert make({"time": 0}).suggest([{"time": 5}], [{"time": 5}])[0]["time"] == 2.5


def test_scenario_07_one_direction_layer_allows_forward_moves():
    loop = make({"time": 10}, SimpleGoalFeedbackStrategy(["time"]))
    assert loop.suggest([{"time": 5}], [{"time": 5}])[0]["time"] == 7.5


def test_scenario_08_long_history_and_many_actions():
    loop = make({"progress": 100})
    out = loop.suggest([{"progress": i} for i in range(100)], [{} for _ in range(100)])
    assert len(out) == 100
    assert all(s["progress"] == 99.5 for s in out)
    assert len({s["suggestion_id"] for s in out}) == 100  # identical actions, one id per occurrence


def test_scenario_09_stored_history_is_reused():
    loop = make({"progress": 10})
    assert loop.suggest([{"progress": 4}], [{"progress": 4}])[0]["progress"] == 7
    # The literal repeat is a duplicate at an unchanged state: nothing new to say.
    assert loop.suggest([], [{"progress": 4}]) == []
    # An action without its own value starts from the stored reading (4).
    assert loop.suggest([], [{}])[0]["progress"] == 7


def test_scenario_10_analysis_of_the_last_readings():
    loop = make({"progress": 10})
    [s] = loop.suggest([{"progress": 2}, {"progress": 4}], [{"progress": 4}])
    a = loop.last_analysis["progress"]
    assert (a["goal"], a["current"], a["gap"], a["trend"]) == (10, 4, 6, "toward_goal")
    assert a["baseline"] == 2
    assert a["progress_ratio"] == 0.25
    assert s["goal_feedback"]["analysis"]["progress"]["gap"] == 6


def test_scenario_11_aggressive_personality():
    loop = make({"progress": 10}, PersonalityGoalFeedbackStrategy("aggressive"))
    assert loop.suggest([{"progress": 0}], [{}])[0]["progress"] == 7.5


def test_scenario_12_cautious_personality():
    loop = make({"progress": 8}, PersonalityGoalFeedbackStrategy("cautious"))
    assert loop.suggest([{"progress": 4}], [{}])[0]["progress"] == 5


def test_scenario_13_aggressive_moves_further_than_cautious():
    results = [
        make({"progress": 10}, PersonalityGoalFeedbackStrategy(p)).suggest([{"progress": 0}], [{}])[0][
            "progress"
        ]
        for p in ("aggressive", "cautious")
    ]
    assert results[0] > results[1]


def test_scenario_14_state_survives_a_restart():
    loop = make({"score": 10})
    loop.extend_history([{"score": 2.0, "timestamp": iso(T0)}, {"score": 4.0}])
    loop.suggest([], [{"score": 6.0}])
    again = roundtrip(loop)
    # The reference stored the action too (3 entries, bug 5); measurements only here.
    assert again.history == [{"score": 2.0, "timestamp": iso(T0)}, {"score": 4.0}]
    again.suggest([], [])
    assert again.last_analysis["score"]["baseline"] == 2.0


def test_scenario_15_retention_limit_and_rebuilt_baseline():
    loop = make({"score": 10}, retention_limit=2)
    loop.extend_history([{"score": 1}, {"score": 3}, {"score": 6}])
    assert loop.history == [{"score": 3}, {"score": 6}]
    assert loop.last_analysis["score"]["baseline"] == 3.0
    again = roundtrip(loop)
    again.suggest([], [])
    assert again.last_analysis["score"]["baseline"] == 3.0


def test_scenario_16_retention_window():
    loop = make({"depth": 10}, retention_window=1)
    loop.extend_history([{"depth": 1, "timestamp": iso(T0 - 30)}, {"depth": 2, "timestamp": iso(T0)}], now=T0)
    assert [e["depth"] for e in loop.history] == [2]
    loop.extend_history([{"depth": 3}], now=T0)
    assert loop.history[-1] == {"depth": 3}  # stamped with now, but the entry itself is unchanged
    assert [e["depth"] for e in loop.history] == [2, 3]
    loop.suggest([], [], now=T0 + 1.5)
    assert loop.history == []


# ----------------------------------------------------------------------------------------------
# The reference's bugs (section 2.1), each with its regression test
# ----------------------------------------------------------------------------------------------


def test_bug01_retention_limit_zero_keeps_nothing():
    loop = make({"p": 10}, retention_limit=0)
    loop.extend_history([{"p": 1}, {"p": 2}])
    assert loop.history == []
    assert loop.last_analysis == {}
    # The latest reading is state, not history: nudges still start from it.
    assert loop.suggest([], [{}])[0]["p"] == 6
    for bad in (-1, True, 1.5, "3"):
        with pytest.raises(ConfigurationError):
            make({"p": 10}, retention_limit=bad)


def test_bug02_trend_is_distance_based():
    loop = make({"p": 10})
    loop.extend_history([{"p": 10}, {"p": 8}])  # inferred "hold 10": moving off it is away
    assert loop.last_analysis["p"]["trend"] == "away_from_goal"
    exact = make({"p": 10}, directions={"p": "range"})
    exact.extend_history([{"p": 8}, {"p": 15}])  # overshoot: distance 2 -> 5
    assert exact.last_analysis["p"]["trend"] == "away_from_goal"
    exact.record_metrics({"p": 11})
    assert exact.last_analysis["p"]["trend"] == "toward_goal"
    exact.record_metrics({"p": 11})
    assert exact.last_analysis["p"]["trend"] == "stable"


def test_bug03_history_argument_appends_instead_of_replacing():
    loop = make({"p": 10})
    loop.extend_history([{"p": i} for i in range(5)])
    loop.suggest([{"p": 100}, {"p": 1}], [])
    assert [e["p"] for e in loop.history] == [0, 1, 2, 3, 4, 100, 1]


def test_bug04_analysis_matches_the_retained_history():
    loop = make({"p": 10}, retention_limit=2)
    loop.suggest([{"p": 0}, {"p": 4}, {"p": 6}], [{"p": 6}])
    assert loop.history == [{"p": 4}, {"p": 6}]
    assert loop.last_analysis["p"]["baseline"] == 4 == loop.history[0]["p"]
    assert roundtrip(loop).last_analysis == loop.last_analysis


def test_bug05_actions_are_not_stored_as_measurements():
    loop = make({"p": 10})
    loop.suggest([], [{"p": 100}])
    assert loop.history == []
    assert loop.last_analysis == {}
    loop.record_metrics({"p": 3})
    loop.suggest([], [{"other": 1}])  # an action lacking p does not drop p from the analysis
    assert loop.history == [{"p": 3}]
    assert loop.last_analysis["p"]["current"] == 3


def test_bug06_none_and_text_readings_do_not_crash():
    loop = make({"p": 10})
    out = loop.suggest([{"p": None}, {"p": "abc"}, {"p": "3"}], [{"p": None}, {"p": "abc"}])
    assert [s.get("p") for s in out] == [None, "abc"]  # nothing measured, nothing assumed
    assert loop.last_analysis == {}  # "3" is text, not coerced
    loop.record_metrics({"p": 4})
    assert loop.suggest([], [{"p": None}])[0]["p"] == 7


def test_bug07_bool_targets_are_not_numeric():
    loop = make({"done": True, "p": 10})
    [s] = loop.suggest([{"done": False, "p": 0}], [{"done": False, "p": 0}])
    assert s["done"] is False
    assert s["goal_feedback"]["nudges"] == {"p": {"from": 0.0, "to": 5.0}}
    assert loop.last_analysis["done"]["goal"] == 1.0
    assert loop.last_analysis["done"]["current"] == 0.0
    assert loop.record_metrics({"done": 1}) == []  # a number is not the boolean True
    [reached] = loop.record_metrics({"done": True})
    assert reached["goal_feedback"]["kind"] == "goal_reached"
    assert reached["goal_feedback"]["metric"] == "done"
    assert loop.last_analysis["done"]["progress_ratio"] == 1.0


def test_bug08_missing_goal_keys_are_not_assumed_zero():
    loop = make({"p": 10})
    [s] = loop.suggest([], [{"x": 1}])
    assert "p" not in s
    assert s["goal_feedback"]["kind"] == "hold"
    loop.record_metrics({"p": 4})
    # The action's own value counts; 100 already satisfies the inferred "increase" goal.
    assert loop.suggest([], [{"p": 100}])[0]["p"] == 100


def test_bug09_datetime_objects_are_rejected_and_snapshots_are_json():
    loop = make({"p": 10})
    with pytest.raises(InvalidInputError) as exc:
        loop.extend_history([{"p": 1, "timestamp": datetime.now(UTC)}])
    assert exc.value.field == "entries[0].timestamp"
    loop.extend_history([{"p": 1, "timestamp": iso(T0)}, {"p": 2, "timestamp": T0}], now=T0)
    json.dumps(loop.snapshot())
    assert all(isinstance(r[0], float) for r in loop.snapshot()["history"])


def test_bug10_numeric_timestamp_field_is_domain_data_by_default():
    loop = make({"depth": 10}, retention_window=60)
    loop.record_metrics({"depth": 1, "timestamp": 5}, now=1000)
    assert loop.history == [{"depth": 1, "timestamp": 5}]
    opted_in = make({"depth": 10}, retention_window=60, numeric_timestamps=True)
    opted_in.record_metrics({"depth": 1, "timestamp": 5}, now=1000)
    assert opted_in.history == []
    off = make({"depth": 10}, retention_window=60, timestamp_field=None)
    off.record_metrics({"depth": 1, "timestamp": iso(0)}, now=1000)
    assert len(off.history) == 1


def test_bug11_a_failing_strategy_changes_nothing():
    loop = make({"p": 10}, ExplodingStrategy())
    loop.record_metrics({"p": 1})
    before = loop.snapshot()
    with pytest.raises(RuntimeError):
        loop.suggest([{"p": 5}], [{"p": 1}], now=T0)
    assert loop.snapshot() == before


def test_bug12_analysis_of_an_empty_call_survives_restore():
    loop = make({"p": 10})
    loop.extend_history([{"p": 2}, {"p": 4}])
    loop.suggest([], [])
    assert roundtrip(loop).last_analysis == loop.last_analysis != {}


def test_bug13_goal_state_is_in_the_snapshot():
    loop = make({"p": 10}, goal_id="g")
    loop.set_goal_state({"p": 99, "mood": "calm"}, {"p": "increase"})
    again = roundtrip(loop)
    assert again.goal_spec == loop.goal_spec
    assert again.goal_id == "g"
    assert again.goal_state == {
        "p": {"target": 99.0, "tolerance": 0.0, "direction": "increase"},
        "mood": "calm",
    }


def test_bug21_analogue_counts_once_per_event_not_per_action():
    # The reference counted one attempt per action; here a goal is reached once per call and one
    # feedback event teaches the strategy once, however many actions there were.
    loop = make({"p": 10}, AdaptiveGoalFeedbackStrategy())
    out = loop.suggest([{"p": 10}], [{}, {}, {}])
    assert kinds(out).count("goal_reached") == 1
    loop.record_metrics({"p": 0})
    nudge = loop.suggest([], [{"p": 0}])[0]
    assert loop.record_feedback(nudge["suggestion_id"], "helped") is True
    assert loop.record_feedback(nudge["suggestion_id"], "helped") is False  # redelivered event
    assert loop.strategy.steps == {"p": 0.625}  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------
# Goals, directions and goal_reached
# ----------------------------------------------------------------------------------------------


def test_direction_is_inferred_from_the_baseline_and_kept():
    loop = make({"p": 10})
    loop.record_metrics({"p": 2})
    assert loop.last_analysis["p"]["direction"] == "increase"
    loop.record_metrics({"p": 20})  # reached by overshooting an increase goal
    assert loop.last_analysis["p"]["reached"] is True
    assert loop.suggest([], [{"p": 25}])[0]["p"] == 25
    down = make({"p": 10})
    down.record_metrics({"p": 30})
    assert down.last_analysis["p"]["direction"] == "decrease"


def test_range_goals_and_tolerance():
    loop = make({"temp": {"target": 5, "direction": "range", "tolerance": 0.5}})
    assert loop.record_metrics({"temp": 7}) == []
    assert loop.suggest([], [{}])[0]["temp"] == 6
    assert kinds(loop.record_metrics({"temp": 5.4})) == ["goal_reached"]
    minmax = make({"temp": {"min": 18, "max": 22}})
    assert kinds(minmax.record_metrics({"temp": 18})) == ["goal_reached"]


def test_goal_reached_is_emitted_once_and_again_after_a_loss():
    loop = make({"p": 10})
    assert loop.record_metrics({"p": 5}) == []
    first = loop.record_metrics({"p": 10})
    assert kinds(first) == ["goal_reached"]
    assert loop.reached_metrics == ("p",)
    assert loop.all_goals_reached
    assert loop.record_metrics({"p": 12}) == []  # still reached
    assert loop.suggest([], []) == []
    assert loop.record_metrics({"p": 3}) == []
    assert not loop.all_goals_reached
    again = loop.record_metrics({"p": 11})
    assert kinds(again) == ["goal_reached"]
    assert again[0]["suggestion_id"] != first[0]["suggestion_id"]


def test_goal_already_met_after_a_goal_change_is_reported_by_the_next_call():
    loop = make({"p": 10})
    loop.record_metrics({"p": 4})
    loop.set_goal_state({"p": 3}, {"p": "decrease"})
    assert loop.last_analysis["p"]["reached"] is False
    loop.set_goal_state({"p": 5})  # inferred from the baseline 4: increase, so 4 is not there yet
    assert kinds(loop.suggest([], [])) == []
    loop.set_goal_state({"p": 4})
    assert kinds(loop.suggest([], [])) == ["goal_reached"]
    loop.reset_history()
    assert loop.reached_metrics == ()
    assert loop.last_suggestions == []
    assert kinds(loop.record_metrics({"p": 4})) == ["goal_reached"]


def test_set_goal_state_copies_and_validates():
    goal = {"p": 10}
    loop = make(goal)
    goal["p"] = 99
    assert loop.goal_state == {"p": 10.0}
    version = loop.version
    loop.set_goal_state({"p": 10})
    assert loop.version == version  # unchanged goal: no new state
    with pytest.raises(InvalidInputError) as exc:
        loop.set_goal_state({"p": math.nan})
    assert exc.value.field == "goal_state.p"
    loop.set_goal_state(GoalSpec.parse({"q": 1}))
    assert loop.goal_state == {"q": 1.0}
    loop.set_goal_state(None)
    assert loop.goal_state == {}
    assert not loop.all_goals_reached


# ----------------------------------------------------------------------------------------------
# Ids, versions and duplicate suppression
# ----------------------------------------------------------------------------------------------


def test_ids_are_deterministic_and_depend_on_goal_and_version():
    def ids(goal_id: str | None) -> list[str]:
        loop = make({"p": 10}, goal_id=goal_id)
        return [s["suggestion_id"] for s in loop.suggest([{"p": 0}], [{"p": 0}, {"p": 1}])]

    assert ids("a") == ids("a") != ids("b")
    loop = make({"p": 10})
    first = loop.suggest([{"p": 0}], [{"p": 0}])
    second = loop.suggest([{"p": 1}], [{"p": 0}])
    assert first[0]["suggestion_id"] != second[0]["suggestion_id"]


def test_an_unchanged_state_never_repeats_a_nudge():
    loop = make({"p": 10})
    assert len(loop.suggest([{"p": 0}], [{"p": 0}, {"p": 1}])) == 2
    assert loop.suggest([], [{"p": 1}, {"p": 0}]) == []
    assert loop.suggest([{"p": 0}], [{"p": 0}]) == []  # same reading again: same state
    assert [s["p"] for s in loop.suggest([], [{"p": 0}, {"p": 0}, {"p": 2}])] == [5, 6]  # only the new ones
    assert len(loop.suggest([{"p": 1}], [{"p": 0}])) == 1  # new reading: new state version


def test_a_resubmitted_suggestion_is_treated_as_its_plain_action():
    loop = make({"p": 10})
    [s] = loop.suggest([{"p": 0}], [{"p": 0}])
    [again] = loop.suggest([], [s])
    assert again["p"] == 7.5
    assert again["suggestion_id"] != s["suggestion_id"]
    assert loop.suggest([], [{**s, "suggestion_id": "forged"}]) == []


# ----------------------------------------------------------------------------------------------
# Feedback
# ----------------------------------------------------------------------------------------------


def test_record_feedback_teaches_an_adaptive_strategy_through_the_loop():
    loop = make({"p": 10}, AdaptiveGoalFeedbackStrategy())
    [s] = loop.suggest([{"p": 0}], [{"p": 0}])
    assert s["p"] == 5
    version = loop.version
    assert loop.record_feedback(s["suggestion_id"], "hurt") is True
    assert loop.version == version + 1
    [smaller] = loop.suggest([], [{"p": 0}])  # same action, new strategy state: a fresh nudge
    assert smaller["p"] == 2.5
    assert loop.record_feedback("unknown", "helped") is False
    with pytest.raises(InvalidInputError) as exc:
        loop.record_feedback(s["suggestion_id"], "meh")
    assert exc.value.field == "outcome"
    with pytest.raises(InvalidInputError) as exc:
        loop.record_feedback(3, "helped")  # type: ignore[arg-type]
    assert exc.value.field == "suggestion_id"


def test_record_feedback_with_a_fixed_strategy_is_accepted_but_changes_nothing():
    loop = make({"p": 10})
    [s] = loop.suggest([{"p": 0}], [{"p": 0}])
    version = loop.version
    assert loop.record_feedback(s["suggestion_id"], "helped") is True
    assert loop.version == version


# ----------------------------------------------------------------------------------------------
# Copies, time, validation
# ----------------------------------------------------------------------------------------------


def test_suggestions_and_accessors_are_independent_copies():
    loop = make({"p": 10})
    out = loop.suggest([{"p": 0, "meta": {"a": [1]}}], [{"p": 0, "meta": {"a": [1]}}, {"p": 1}])
    out[0]["goal_feedback"]["analysis"]["p"]["gap"] = -1
    assert out[1]["goal_feedback"]["analysis"]["p"]["gap"] == 10
    out[0]["meta"]["a"].append(2)
    last = loop.last_suggestions
    assert last[0]["meta"] == {"a": [1]}
    assert last[0]["goal_feedback"]["analysis"]["p"]["gap"] == 10
    last[0]["p"] = 42
    assert loop.last_suggestions[0]["p"] == 5
    loop.history[0]["meta"]["a"].append(3)
    assert loop.history[0]["meta"] == {"a": [1]}


def test_time_comes_from_now_or_entry_stamps_and_never_runs_backwards():
    loop = make({"p": 10}, retention_window=timedelta(seconds=10))
    loop.extend_history([{"p": 1, "timestamp": iso(T0)}])  # no now: the stamp is the clock
    loop.extend_history([{"p": 2, "timestamp": iso(T0 - 100)}], now=T0)  # late entry: clamped
    assert [e["p"] for e in loop.history] == [1, 2]
    loop.record_metrics({"p": 3}, now=T0 - 50)  # a clock going backwards is ignored
    assert loop.snapshot()["clock"] == T0
    loop.record_metrics({"p": 4}, now=T0 + 10)
    assert [e["p"] for e in loop.history] == [1, 2, 3, 4]
    loop.record_metrics({"p": 5}, now=T0 + 10.5)
    assert [e["p"] for e in loop.history] == [4, 5]


def test_default_retention_bounds_the_history():
    loop = make({"p": 10})
    loop.extend_history([{"p": i % 7} for i in range(DEFAULT_RETENTION_LIMIT + 50)])
    assert len(loop.history) == DEFAULT_RETENTION_LIMIT
    assert loop.last_analysis["p"]["baseline"] == 50 % 7


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda lp: lp.record_metrics([1]), "values"),
        (lambda lp: lp.record_metrics({"p": math.inf}), "values.p"),
        (lambda lp: lp.record_metrics({"p": 1}, now=math.nan), "now"),
        (lambda lp: lp.record_metrics({"p": 1}, now=True), "now"),
        (lambda lp: lp.extend_history({"p": 1}), "entries"),
        (lambda lp: lp.extend_history(["x"]), "entries[0]"),
        (lambda lp: lp.suggest("abc", []), "history"),
        (lambda lp: lp.suggest([], [{"p": 1}, 5]), "current_actions[1]"),
        (lambda lp: lp.suggest([], [{"p": {1: 2}}]), "current_actions[0].p"),
        (lambda lp: lp.suggest([{"p": 1e301}], []), "history[0].p"),
    ],
)
def test_bad_inputs_raise_invalid_input_naming_the_field(call, field):
    loop = make({"p": 10})
    before = loop.snapshot()
    with pytest.raises(InvalidInputError) as exc:
        call(loop)
    assert exc.value.field == field
    assert loop.snapshot() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": object()},
        {"goal": {"p": math.nan}},
        {"goal": [1]},
        {"goal_id": ""},
        {"retention_window": -1},
        {"retention_window": math.inf},
        {"retention_window": "1s"},
        {"timestamp_field": ""},
        {"numeric_timestamps": 1},
    ],
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ConfigurationError):
        make(**kwargs)


def test_a_misbehaving_custom_strategy_is_a_configuration_error():
    class Wrong(SimpleGoalFeedbackStrategy):
        def __init__(self, result):
            super().__init__()
            self.result = result

        def suggest_actions(self, current_actions, context):
            return self.result

    for result in ([], [{"p": math.nan}], [[1]], ({"p": 1},)):
        loop = make({"p": 10}, Wrong(result))
        before = loop.snapshot()
        with pytest.raises(ConfigurationError):
            loop.suggest([{"p": 1}], [{"p": 1}])
        assert loop.snapshot() == before


# ----------------------------------------------------------------------------------------------
# GoalMetric
# ----------------------------------------------------------------------------------------------


def test_goal_metric_round_trip_and_validation():
    m = GoalMetric(10.0, 4.0, 6.0, 2.0, "toward_goal", 0.25, "increase", False)
    assert GoalMetric.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    legacy = GoalMetric.from_dict({"goal": 10, "current": 4, "gap": 6, "trend": "stable"})
    assert legacy.baseline is None
    assert legacy.progress_ratio is None
    assert legacy.goal == 10.0
    bad_cases = [
        ({"goal": 1, "current": 1, "gap": 0}, "trend"),
        ({"goal": 1, "current": 1, "gap": 0, "trend": "up"}, "trend"),
        ({"goal": "1", "current": 1, "gap": 0, "trend": "stable"}, "goal"),
        ({"goal": True, "current": 1, "gap": 0, "trend": "stable"}, "goal"),
        ({"goal": 1, "current": math.nan, "gap": 0, "trend": "stable"}, "current"),
        ({"goal": 1, "current": 1, "gap": 0, "trend": "stable", "progress_ratio": 1.5}, "progress_ratio"),
        ({"goal": 1, "current": 1, "gap": 0, "trend": "stable", "direction": "up"}, "direction"),
        ({"goal": 1, "current": 1, "gap": 0, "trend": "stable", "reached": 1}, "reached"),
        ({"goal": 1, "current": 1, "gap": 0, "trend": "stable", "colour": 1}, "colour"),
        ([1], "goal_metric"),
    ]
    for data, field in bad_cases:
        with pytest.raises(InvalidInputError) as exc:
            GoalMetric.from_dict(data)
        assert exc.value.field == field


# ----------------------------------------------------------------------------------------------
# Snapshots
# ----------------------------------------------------------------------------------------------


def test_snapshot_restore_errors():
    loop = make({"p": 10})
    loop.suggest([{"p": 1}], [{"p": 1}])
    good = loop.snapshot()
    assert good["kind"] == "GoalDrivenFeedbackLoop"
    assert good["schema"] == 1
    broken: list[dict[str, Any]] = [
        {**good, "kind": "Other"},
        {**good, "schema": 99},
        {k: v for k, v in good.items() if k != "history"},
        {**good, "strategy": {"name": "nope"}},
        {**good, "history": [[0.0, False]]},
        {**good, "history": [["x", False, {}]]},
        {**good, "latest": {"zzz": 1.0}},
        {**good, "inferred": {"p": "up"}},
        {**good, "issued": [["id", [], ["great"]]]},
        {**good, "version": -1},
        {**good, "retention_limit": -1},
        {**good, "last_suggestions": [{"x": math.nan}]},
        {**good, "latest": {"p": math.nan}},
        {**good, "clock": math.inf},
        {**good, "history": [[math.nan, False, {}]]},
        {**good, "history": [[0.0, "no", {}]]},
        {**good, "reached": "p"},
        {**good, "emitted": [1]},
        {**good, "issued": [["id", "p", []]]},
        {**good, "issued": [[1, [], []]]},
    ]
    for data in broken:
        with pytest.raises(SnapshotError):
            GoalDrivenFeedbackLoop.restore(data)
    with pytest.raises(SnapshotError):
        GoalDrivenFeedbackLoop.restore("not a dict")


def test_restore_with_a_custom_strategy():
    class Custom(SimpleGoalFeedbackStrategy):
        def to_dict(self):
            return {"name": "custom"}

    loop = make({"p": 10}, Custom())
    loop.record_metrics({"p": 0})
    data = json.loads(json.dumps(loop.snapshot()))
    with pytest.raises(SnapshotError, match="unknown strategy"):
        GoalDrivenFeedbackLoop.restore(data)
    again = GoalDrivenFeedbackLoop.restore(data, strategy=Custom())
    assert again.suggest([], [{}]) == loop.suggest([], [{}])


# ----------------------------------------------------------------------------------------------
# Property tests
# ----------------------------------------------------------------------------------------------

KEYS = ["p", "q", "done", "mood", "timestamp"]
readings = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.integers(-5, 15),
    st.booleans(),
    st.none(),
    st.sampled_from(["abc", "3", iso(T0), iso(T0 + 5)]),
)
entries = st.dictionaries(st.sampled_from(KEYS), readings, max_size=4)
goals = st.fixed_dictionaries(
    {},
    optional={
        "p": st.one_of(st.integers(-5, 15), st.fixed_dictionaries({"min": st.just(2), "max": st.just(6)})),
        "q": st.one_of(
            st.floats(-10, 10), st.fixed_dictionaries({"target": st.integers(0, 5), "tolerance": st.just(1)})
        ),
        "done": st.booleans(),
        "mood": st.just("calm"),
    },
)
nows = st.one_of(st.none(), st.floats(T0, T0 + 100))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("record"), entries, nows),
        st.tuples(st.just("suggest"), st.lists(entries, max_size=2), st.lists(entries, max_size=3), nows),
        st.tuples(st.just("goal"), goals, st.sampled_from([None, {"q": "decrease"}])),
        st.tuples(
            st.just("feedback"),
            st.integers(0, 50),
            st.sampled_from(["accepted", "rejected", "helped", "hurt"]),
        ),
        st.tuples(st.just("reset")),
    ),
    max_size=12,
)


def apply(loop: GoalDrivenFeedbackLoop, op: tuple[Any, ...], ids: list[str]) -> Any:
    """Run one operation; return a JSON-able result to compare runs by."""
    kind = op[0]
    if kind == "record":
        out = loop.record_metrics(op[1], now=op[2])
    elif kind == "suggest":
        out = loop.suggest(op[1], op[2], now=op[3])
    elif kind == "goal":
        if "q" not in op[1]:
            loop.set_goal_state(op[1])
        else:
            loop.set_goal_state(op[1], op[2])
        return loop.version
    elif kind == "feedback":
        return loop.record_feedback(ids[op[1] % len(ids)], op[2]) if ids else None
    else:
        loop.reset_history()
        return loop.version
    ids.extend(s["suggestion_id"] for s in out)
    return out


def new_loop(goal: dict[str, Any]) -> GoalDrivenFeedbackLoop:
    return make(goal, AdaptiveGoalFeedbackStrategy(), goal_id="g", retention_limit=4, retention_window=30)


def check_invariants(loop: GoalDrivenFeedbackLoop) -> None:
    json.dumps(loop.snapshot())
    assert len(loop.history) <= 4
    for metric in loop.last_analysis.values():
        assert metric["progress_ratio"] is None or 0.0 <= metric["progress_ratio"] <= 1.0
        assert all(math.isfinite(metric[k]) for k in ("goal", "current", "gap"))


@settings(max_examples=250, deadline=None)
@given(goals, ops, st.data())
def test_restore_and_continue_gives_identical_suggestions_and_ids(goal, operations, data):
    cut = data.draw(st.integers(0, len(operations)))
    whole, ids_whole = new_loop(goal), []
    expected = [apply(whole, op, ids_whole) for op in operations]
    part, ids_part = new_loop(goal), []
    got = [apply(part, op, ids_part) for op in operations[:cut]]
    part = roundtrip(part)
    got += [apply(part, op, ids_part) for op in operations[cut:]]
    assert got == expected
    assert part.snapshot() == whole.snapshot()
    assert part.last_analysis == whole.last_analysis
    assert part.history == whole.history
    check_invariants(whole)


junk = st.one_of(
    readings,
    st.just(math.nan),
    st.just(-math.inf),
    st.just(10**400),
    st.just(datetime(2024, 1, 1, tzinfo=UTC)),
    st.just({1: 2}),
    st.just({"nested": [1, {"x": "y"}]}),
    st.just(object()),
)
junk_entries = st.one_of(st.dictionaries(st.sampled_from(KEYS), junk, max_size=3), junk)


@settings(max_examples=250, deadline=None)
@given(
    goals,
    st.lists(
        st.one_of(
            st.tuples(st.just("record"), junk_entries, st.one_of(nows, st.just(math.nan), st.just("now"))),
            st.tuples(
                st.just("suggest"),
                st.one_of(st.lists(junk_entries, max_size=2), junk),
                st.one_of(st.lists(junk_entries, max_size=2), junk),
                nows,
            ),
            st.tuples(
                st.just("goal"), st.one_of(goals, st.dictionaries(st.sampled_from(KEYS), junk)), st.none()
            ),
            st.tuples(st.just("feedback"), st.integers(0, 9), st.sampled_from(["helped", "bogus", 3])),
        ),
        max_size=10,
    ),
)
def test_no_input_sequence_crashes_or_corrupts_state(goal, operations):
    loop = new_loop(goal)
    ids: list[str] = []
    for op in operations:
        before = loop.snapshot()
        error: InvalidInputError | None = None
        try:
            apply(loop, op, ids)
        except InvalidInputError as exc:
            error = exc
        if error is not None:
            assert error.field  # every rejection names the offending field
            assert loop.snapshot() == before  # and leaves no trace
        check_invariants(loop)


def test_context_is_handed_to_custom_strategies():
    seen: list[FeedbackContext] = []

    class Spy(SimpleGoalFeedbackStrategy):
        def suggest_actions(self, current_actions, context):
            seen.append(context)
            return super().suggest_actions(current_actions, context)

    loop = make({"p": 10, "done": True}, Spy())
    loop.suggest([{"p": 3, "done": False}], [{}])
    assert seen[0].latest == {"p": 3.0, "done": 0.0}
    assert seen[0].targets["p"].direction == "increase"
