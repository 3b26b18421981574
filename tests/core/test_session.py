"""GoalSession: one goal's state machine (apply -> Outcome), its suggestions, snapshot and restore."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goalkeeper.core import _session_parts as parts
from goalkeeper.core.budget import BudgetDecision
from goalkeeper.core.decision import PRECEDENCE, REFERENCE_PRECEDENCE
from goalkeeper.core.feedback_strategies import AdaptiveGoalFeedbackStrategy
from goalkeeper.core.loops import Escalation
from goalkeeper.core.model import (
    Budget,
    ContextCompressedEvent,
    EventType,
    FeedbackEvent,
    FeedbackOutcome,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    Suggestion,
    SuggestionKind,
)
from goalkeeper.core.routing import ProcessType
from goalkeeper.core.session import GoalSession, Outcome, ProgressSource
from goalkeeper.core.text import stable_hash
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

G = "g-1"
GOAL = "Book the cheapest direct flight from New York to Seattle"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "session.md"


def goal(**kw: Any) -> GoalEvent:
    kw.setdefault("description", GOAL)
    return GoalEvent(goal_id=G, **kw)


def step(i: int = 0, **kw: Any) -> StepEvent:
    kw.setdefault("tool", "search_flights")
    kw.setdefault("args", {"origin": "JFK", "destination": "SEA"})
    kw.setdefault("output", "3 direct flights found")
    return StepEvent(goal_id=G, ts=float(i), **kw)


def metrics(values: dict[str, Any], **kw: Any) -> MetricsEvent:
    return MetricsEvent(goal_id=G, values=values, **kw)


def sub(status: str, **kw: Any) -> SubgoalEvent:
    return SubgoalEvent(goal_id=G, status=status, **kw)  # type: ignore[arg-type]


def rules(outcome: Outcome) -> list[tuple[str, str]]:
    return [(s.kind.value, s.rule) for s in outcome.suggestions]


def canon(session: GoalSession) -> str:
    return json.dumps(session.snapshot(), sort_keys=True)


def roundtrip(session: GoalSession, **kw: Any) -> GoalSession:
    return GoalSession.restore(json.loads(json.dumps(session.snapshot())), **kw)


# -- pinned numbers ---------------------------------------------------------------------------------


def test_constants_are_pinned() -> None:
    assert parts.DEDUP_WINDOW == 64
    assert parts.METRIC_HISTORY == 32
    assert parts.ESTIMATOR_WINDOW == 10
    assert parts.SYSTEM2_ESCALATE_AFTER == 5
    assert parts.MAX_SUBGOALS == 100
    assert parts.ERROR_TEXT_LIMIT == 200
    assert parts.UNLIMITED_STEPS == 10**9
    assert parts.UNLIMITED_TOKENS == 10**15
    assert parts.EventIdWindow.DIGEST_BYTES == 8
    assert {
        PRECEDENCE[0][1],
        PRECEDENCE[1][1],
        PRECEDENCE[7][1],
        REFERENCE_PRECEDENCE[0][1],
    } == parts.LOOP_RULES
    assert [s.value for s in ProgressSource] == ["metrics", "subgoals", "steps"]
    assert GoalSession.KIND == "GoalSession"
    assert GoalSession.SCHEMA == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "nope"}, "profile"),
        ({"strategy": object()}, "strategy"),
        ({"dedup_window": -1}, "dedup_window"),
        ({"metric_history": 1}, "metric_history"),
        ({"dedup_window": True}, "dedup_window"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GoalSession(G, **kwargs)


@pytest.mark.parametrize("goal_id", ["", "  ", None, 3])
def test_bad_goal_id(goal_id: Any) -> None:
    with pytest.raises(ConfigurationError, match="goal_id"):
        GoalSession(goal_id)


# -- before a goal ----------------------------------------------------------------------------------


def test_steps_before_a_goal_feed_loops_only() -> None:
    s = GoalSession(G)
    seen = []
    for i in range(6):
        o = s.apply(step(i, output="nothing found"))
        assert o.verification is None
        assert o.metrics.drift_score == 0.0
        seen.append((o.recommended_action, o.metrics.escalation, rules(o)))
    assert s.goal is None
    assert s.tracker.original_goal == G  # the id stands in, but never judges a step
    assert seen[0] == ("continue", Escalation.NONE, [])
    assert seen[2] == ("adjust", Escalation.NUDGE, [("adjust", "loop:nudge")])
    assert seen[3] == ("replan", Escalation.REPLAN, [("replan", "loop:replan")])
    assert seen[4] == ("replan", Escalation.REPLAN, [])
    assert seen[5] == ("abort", Escalation.STOP, [("abort", "loop:stop")])
    # loop_risk goes through the weight engine, with a reason.
    assert s.tracker.weights.goal_alignment["loop_risk"] == s.metrics.loop_risk == 1.0
    assert s.metrics.progress_source is ProgressSource.STEPS
    assert s.metrics.current_progress == 0.0


def test_first_goal_event_anchors_and_keeps_the_loop_state() -> None:
    s = GoalSession(G)
    for i in range(3):
        s.apply(step(i, output="nothing found"))
    risk = s.metrics.loop_risk
    loops = s.tracker.loops
    s.apply(goal(plan=("search flights", "book the flight")))
    assert s.goal == GOAL
    assert s.tracker.plan == ("search flights", "book the flight")
    assert s.tracker.loops is loops
    assert s.metrics.loop_risk == risk
    assert s.task_state().current_goal == GOAL
    o = s.apply(step(10))
    assert o.verification is not None
    assert o.verification.step_number == 1


def test_plan_only_goal_anchors_on_the_goal_id_text() -> None:
    s = GoalSession(G)
    s.apply(GoalEvent(goal_id=G, plan=("search flights", "book")))
    assert s.goal == G
    assert s.tracker.plan == ("search flights", "book")
    assert s.apply(step(1)).verification is not None


def test_goal_event_updates_only_what_it_gives() -> None:
    s = GoalSession(G)
    s.apply(goal(plan=("a", "b")))
    tracker = s.tracker
    s.apply(goal())  # same description, no plan: nothing to re-anchor
    assert s.tracker is tracker
    assert tracker.plan == ("a", "b")
    s.apply(goal(plan=("c",)))  # new plan only: set_plan on the same tracker
    assert s.tracker is tracker
    assert list(tracker.plan) == ["c"]
    s.apply(goal(description="Fly to Boston"))  # new text: a fresh tracker, the plan is kept
    assert s.tracker is not tracker
    assert s.goal == "Fly to Boston"
    assert s.tracker.plan == ("c",)
    assert s.tracker.weights is tracker.weights
    assert s.tracker.router is tracker.router
    s.apply(GoalEvent(goal_id=G, description="   "))  # blank text counts as not given
    assert s.goal == "Fly to Boston"


def test_goal_budget_creates_replaces_and_clears_the_budget() -> None:
    s = GoalSession(G)
    s.apply(goal(budget=Budget(steps=8)))
    assert s.budget is not None
    assert s.budget.get_stats()["step_budget"] == 8
    assert s.budget.get_stats()["token_budget"] == parts.UNLIMITED_TOKENS
    first = s.budget
    s.apply(goal(budget=Budget(steps=8)))
    assert s.budget is first  # unchanged budget: kept
    s.apply(goal(budget=Budget(tokens=5000)))
    assert s.budget is not first
    assert s.budget.get_stats()["step_budget"] == parts.UNLIMITED_STEPS
    s.apply(goal(budget=Budget()))
    assert s.budget is None
    assert s.metrics.budget is None


# -- versions, duplicates, bad input ----------------------------------------------------------------


def test_version_counts_applied_events_and_duplicates_change_nothing() -> None:
    s = GoalSession(G)
    o1 = s.apply(goal(event_id="e1"))
    o2 = s.apply(step(1, event_id="e2"))
    assert (o1.version, o2.version) == (1, 2)
    assert o2.applied
    assert not o2.duplicate
    before = canon(s)
    dup = s.apply(step(5, event_id="e2", tool="other"))
    assert dup.duplicate
    assert not dup.applied
    assert dup.version == 2
    assert dup.suggestions == ()
    assert dup.event_id == "e2"
    assert dup.event_type is EventType.STEP
    assert canon(s) == before
    # Events without an id are never taken for duplicates.
    assert s.apply(step(6)).applied
    assert s.apply(step(6)).applied
    assert s.version == 4


def test_dedup_window_is_bounded() -> None:
    s = GoalSession(G, dedup_window=3)
    for i in range(4):
        s.apply(MessageEvent(goal_id=G, event_id=f"m{i}", content=f"note {i}"))
    assert s.apply(MessageEvent(goal_id=G, event_id="m1")).duplicate
    assert s.apply(MessageEvent(goal_id=G, event_id="m0")).applied  # forgotten: window of 3
    off = GoalSession(G, dedup_window=0)
    off.apply(MessageEvent(goal_id=G, event_id="x"))
    assert off.apply(MessageEvent(goal_id=G, event_id="x")).applied


BAD_EVENTS: list[tuple[Any, str]] = [
    (object(), "type"),
    ({"goal_id": G, "type": "step"}, "type"),
    (StepEvent(goal_id="other"), "goal_id"),
    (StepEvent(goal_id=G, event_id=3), "event_id"),  # type: ignore[arg-type]
    (StepEvent(goal_id=G, ts=math.nan), "ts"),
    (StepEvent(goal_id=G, ts=True), "ts"),
    (StepEvent(goal_id=G, tool=5), "tool"),  # type: ignore[arg-type]
    (StepEvent(goal_id=G, args=[1]), "args"),  # type: ignore[arg-type]
    (StepEvent(goal_id=G, tokens=-1), "tokens"),
    (StepEvent(goal_id=G, exit_code="1"), "exit_code"),  # type: ignore[arg-type]
    (MessageEvent(goal_id=G, role="bot"), "role"),  # type: ignore[arg-type]
    (MessageEvent(goal_id=G, content=3), "content"),  # type: ignore[arg-type]
    (MetricsEvent(goal_id=G, values=[1]), "values"),  # type: ignore[arg-type]
    (MetricsEvent(goal_id=G, values={"p": math.inf}), "values.p"),
    (GoalEvent(goal_id=G, description=3), "description"),  # type: ignore[arg-type]
    (GoalEvent(goal_id=G, plan="do it"), "plan"),  # type: ignore[arg-type]
    (GoalEvent(goal_id=G, plan=("a", 2)), "plan[1]"),  # type: ignore[arg-type]
    (GoalEvent(goal_id=G, goal_state=[1]), "goal_state"),  # type: ignore[arg-type]
    (GoalEvent(goal_id=G, goal_state={"p": 1}, directions={"p": "up"}), "directions.p"),
    (GoalEvent(goal_id=G, budget=Budget(steps=0)), "budget.steps"),
    (GoalEvent(goal_id=G, budget=Budget(tokens=1.5)), "budget.tokens"),  # type: ignore[arg-type]
    (GoalEvent(goal_id=G, budget={"steps": 3}), "budget"),  # type: ignore[arg-type]
    (SubgoalEvent(goal_id=G), "id"),
    (SubgoalEvent(goal_id=G, id=4), "id"),  # type: ignore[arg-type]
    (SubgoalEvent(goal_id=G, id="a", status="started"), "status"),  # type: ignore[arg-type]
    (FeedbackEvent(goal_id=G), "suggestion_id"),
    (FeedbackEvent(goal_id=G, suggestion_id="s", outcome="meh"), "outcome"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("event", "name"), BAD_EVENTS)
def test_bad_events_name_the_field_and_change_nothing(event: Any, name: str) -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"p": 10}, budget=Budget(steps=10)))
    s.apply(step(1))
    before = canon(s)
    with pytest.raises(InvalidInputError) as err:
        s.apply(event)
    assert err.value.field == name
    assert canon(s) == before


def test_subgoal_limit() -> None:
    s = GoalSession(G, dedup_window=0)
    for i in range(parts.MAX_SUBGOALS):
        s.apply(sub("pending", id=f"s{i}"))
    s.apply(sub("done", id="s0"))  # a known sub-goal is always fine
    before = canon(s)
    with pytest.raises(InvalidInputError) as err:
        s.apply(sub("pending", id="one too many"))
    assert err.value.field == "id"
    assert canon(s) == before


# -- progress ---------------------------------------------------------------------------------------


def test_metric_progress_is_measured_from_the_first_reading() -> None:
    s = GoalSession(G, metric_history=2)
    s.apply(goal(goal_state={"progress": 10}))
    assert s.metrics.progress_source is ProgressSource.METRICS
    assert s.apply(metrics({"progress": 2})).metrics.current_progress == 0.0
    assert s.apply(metrics({"progress": 4})).metrics.current_progress == 0.25  # 1 - 6/8
    for v in (5, 6, 6):  # the loop keeps 2 readings; the first one still counts as the baseline
        s.apply(metrics({"progress": v}))
    m = s.metrics
    assert m.current_progress == 0.5
    assert m.progress_percentage == 50.0
    # Written into the tracker (set_progress) and through the weight engine.
    assert s.tracker.get_state().progress == 0.5
    assert s.tracker.weights.goal_alignment["current_progress"] == 0.5
    assert s.apply(step(1)).metrics.current_progress == 0.5  # steps no longer move it


def test_metric_progress_is_the_mean_over_targets() -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"a": 10, "b": 0, "done": True}))
    s.apply(metrics({"a": 0, "b": 8, "done": False}))
    s.apply(metrics({"a": 5, "b": 2, "done": False}))  # a: 0.5, b: 0.75, done: 0
    assert s.metrics.current_progress == pytest.approx((0.5 + 0.75 + 0.0) / 3)
    s.apply(metrics({"done": True}))
    assert s.metrics.current_progress == pytest.approx((0.5 + 0.75 + 1.0) / 3)
    other = GoalSession(G)
    other.apply(goal(goal_state={"a": 10, "b": 10}))
    other.apply(metrics({"a": 0}))
    other.apply(metrics({"a": 10}))  # b has no reading: counts 0
    assert other.metrics.current_progress == 0.5


def test_new_target_is_seeded_from_retained_readings() -> None:
    s = GoalSession(G)
    s.apply(metrics({"a": 2}))
    s.apply(metrics({"a": 6}))
    s.apply(goal(goal_state={"a": 10}))
    assert s.metrics.current_progress == 0.5  # baseline 2, latest 6, target 10


def test_subgoal_progress_and_task_state() -> None:
    s = GoalSession(G)
    s.apply(goal())
    s.apply(sub("in_progress", id="a", description="search flights"))
    s.apply(sub("pending", id="b", description="book"))
    s.apply(sub("pending", description="confirm"))
    assert s.metrics.progress_source is ProgressSource.SUBGOALS
    o = s.apply(sub("done", id="a"))
    assert o.metrics.current_progress == pytest.approx(1 / 3)
    s.apply(sub("skipped", description="confirm"))
    assert s.metrics.current_progress == pytest.approx(2 / 3)
    s.apply(sub("blocked", id="b"))
    s.apply(sub("in_progress", id="a"))  # done is final in the tree: the record shows done
    task = s.task_state()
    assert [(g["goal"], g["status"]) for g in task.sub_goals] == [
        ("search flights", "done"),
        ("book", "blocked"),
        ("confirm", "skipped"),
    ]
    assert task.progress_percentage == pytest.approx(100 * 2 / 3)
    assert s.tree is not None
    assert s.tree.get_node("n1") is not None
    s.apply(sub("failed", id="b"))
    assert s.task_state().sub_goals[1]["status"] == "failed"
    assert s.metrics.current_progress == pytest.approx(2 / 3)


def test_metrics_take_precedence_over_subgoals() -> None:
    s = GoalSession(G)
    s.apply(sub("done", id="a"))
    assert s.metrics.current_progress == 1.0
    s.apply(goal(goal_state={"p": 4}))
    assert s.metrics.progress_source is ProgressSource.METRICS
    assert s.metrics.current_progress == 0.0


def test_step_progress_comes_from_the_tracker() -> None:
    s = GoalSession(G)
    s.apply(goal(plan=("search direct flights", "book flight")))
    o = s.apply(step(1, tool="search_direct_flights", output="direct flights found"))
    assert o.verification is not None
    assert o.metrics.current_progress == o.verification.progress == 0.5
    assert o.metrics.progress_percentage == 50.0
    assert o.metrics.steps == 1
    assert s.estimate().velocity == 0.5


# -- suggestions ------------------------------------------------------------------------------------


def test_session_suggestion_ids_are_derived_from_goal_version_and_rule() -> None:
    s = GoalSession(G)
    outs = [s.apply(step(i, output="nothing found")) for i in range(3)]
    (sug,) = outs[2].suggestions
    assert sug.suggestion_id == stable_hash(f"{G}|3|loop:nudge")
    assert (sug.goal_id, sug.kind, sug.rule, sug.version) == (G, SuggestionKind.ADJUST, "loop:nudge", 3)
    assert sug.message.startswith("You called `search_flights` with the same arguments 3 times")
    assert sug.metrics == {
        "current_progress": 0.0,
        "drift_score": 0.0,
        "loop_risk": outs[2].metrics.loop_risk,
    }


def test_tracker_advice_is_emitted_on_transitions_only() -> None:
    s = GoalSession(G)
    s.apply(goal(plan=("search flights", "book flight")))
    got = [rules(s.apply(step(i, tool="read_file", args={"path": f"poem{i}.txt"}, output=f"roses {i}")))
           for i in range(5)]  # fmt: skip
    # Drift rises at once (DRIFT_CARRY: fast attack, slow release), so the first off-topic step is
    # already "adjust: drift"; the third in a row gets the consecutive-drift bonus and replans.
    assert got == [
        [("adjust", f"adjust:{PRECEDENCE[4][1]}")],
        [],  # same rule, same action: quiet
        [("replan", f"replan:{PRECEDENCE[2][1]}")],
        [],
        [("escalate", "router:system2")],  # the third System 2 routing in a row (drift > 0.4)
    ]
    # Back on topic: drift falls (a lower rule is a new state, announced once), then "continue".
    back = [rules(s.apply(step(10 + i, args={"destination": "SEA", "date": f"May {i}"},
                               description="search direct flights to Seattle", output=f"direct flight {i}")))
            for i in range(3)]  # fmt: skip
    assert back[0][0] == ("adjust", f"adjust:{PRECEDENCE[4][1]}")
    assert back[1:] == [[], []]
    assert s.recommended_action == "continue"
    again = [rules(s.apply(step(30 + i, tool="read_file", args={"path": f"poem{10 + i}.txt"},
                                output=f"roses are red {i}")))
             for i in range(4)]  # fmt: skip
    assert again == [
        [("adjust", f"adjust:{PRECEDENCE[4][1]}")],
        [],
        [("replan", f"replan:{PRECEDENCE[2][1]}")],
        [],
    ]


def test_messages_can_raise_a_loop_suggestion() -> None:
    s = GoalSession(G)
    s.apply(goal())
    got = [rules(s.apply(MessageEvent(goal_id=G, role="assistant", content="I will look into it.")))
           for _ in range(4)]  # fmt: skip
    assert [("adjust", "loop:nudge")] in got
    assert s.recommended_action in ("adjust", "replan")


def test_router_streak_escalates_once_per_streak() -> None:
    s = GoalSession(G)
    s.apply(goal())
    got = []
    for i in range(7):
        o = s.apply(step(i, tool="search_flights", args={"to": f"SEA{i}"}, output="", error=f"timeout {i}"))
        assert o.routing is ProcessType.SYSTEM2
        got.append([r for r in rules(o) if r[0] == "escalate"])
    assert got == [[], [], [], [], [("escalate", "router:system2")], [], []]
    assert s.metrics.loop_risk >= 0.0


def test_budget_escalates_once_when_stuck_and_once_at_the_hard_cap() -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"p": 10}, budget=Budget(steps=5)))
    s.apply(metrics({"p": 0}))
    escalations = []
    for i in range(7):
        o = s.apply(step(i, tool="t", args={"i": i}, output=f"out {i}"))
        escalations.append([r[1] for r in rules(o) if r[0] == "escalate"])
    # No progress tightens the budget (never below steps taken + 2) until the hard cap: said once.
    assert [r for rs in escalations for r in rs] == ["budget:hard_cap"]
    assert escalations[-1] == []
    assert s.metrics.budget is BudgetDecision.HARD_CAP
    stuck = GoalSession(G)
    stuck.apply(goal(goal_state={"p": 10}, budget=Budget(steps=500)))
    seen = [[r[1] for r in rules(stuck.apply(step(i, tool="t", args={"i": i}))) if r[0] == "escalate"]
            for i in range(8)]  # fmt: skip
    assert seen == [[], [], [], [], ["budget:stuck"], [], [], []]
    stuck.apply(metrics({"p": 0}))
    stuck.apply(metrics({"p": 5}))
    assert stuck.apply(step(9, tool="t", args={"i": 9})).metrics.budget is not BudgetDecision.STUCK


def test_feedback_loop_nudges_only_when_the_move_changes() -> None:
    s = GoalSession(G)
    o = s.apply(goal(goal_state={"progress": 10}))
    assert o.suggestions == ()  # no reading yet: nothing to move
    o = s.apply(metrics({"progress": 2}))
    (n,) = o.suggestions
    assert n.kind is SuggestionKind.NUDGE
    assert n.actions == ({"progress": 6.0},)
    assert n.message == "Move progress from 2 to 6 (goal 10)."
    assert n.rule == "feedback:nudge"
    assert n.suggestion_id == s.feedback_loop.last_suggestions[0]["suggestion_id"]
    assert s.apply(metrics({"progress": 2})).suggestions == ()  # same reading: same state
    assert s.apply(metrics({"other": 7})).suggestions == ()
    # A step leaves the feedback loop's nudge alone (the step itself may warrant tracker advice:
    # "JFK"/"SEA" are not words of the goal, so lexical drift flags it at once).
    assert [x.rule for x in s.apply(step(1)).suggestions if x.rule.startswith("feedback")] == []
    (n2,) = s.apply(metrics({"progress": 4})).suggestions
    assert n2.actions == ({"progress": 7.0},)
    assert n2.suggestion_id != n.suggestion_id


def test_goal_reached_once_per_rising_edge() -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"progress": 10}))
    s.apply(metrics({"progress": 2}))
    o = s.apply(metrics({"progress": 10}))
    assert rules(o) == [("goal_reached", "goal_reached")]
    assert o.suggestions[0].message == "The goal is reached: every metric target is met."
    assert o.metrics.current_progress == 1.0
    assert s.apply(metrics({"progress": 11})).suggestions == ()
    o = s.apply(metrics({"progress": 4}))
    assert rules(o) == [("nudge", "feedback:nudge")]
    assert rules(s.apply(metrics({"progress": 10}))) == [("goal_reached", "goal_reached")]
    # Falling back and asking for the same move again is news: it is announced again.
    assert rules(s.apply(metrics({"progress": 4}))) == [("nudge", "feedback:nudge")]


def test_all_subgoals_done_is_goal_reached() -> None:
    s = GoalSession(G)
    s.apply(sub("pending", id="a"))
    o = s.apply(sub("done", id="a"))
    assert rules(o) == [("goal_reached", "goal_reached")]
    assert o.suggestions[0].message == "The goal is reached: all sub-goals are done."
    assert s.apply(sub("done", id="a")).suggestions == ()
    assert s.apply(sub("pending", id="b")).metrics.current_progress == 0.5
    assert rules(s.apply(sub("skipped", id="b"))) == [("goal_reached", "goal_reached")]


def test_feedback_reaches_the_learning_strategy() -> None:
    s = GoalSession(G, strategy=AdaptiveGoalFeedbackStrategy())
    s.apply(goal(goal_state={"progress": 10}))
    (n,) = s.apply(metrics({"progress": 2})).suggestions
    o = s.apply(FeedbackEvent(goal_id=G, suggestion_id=n.suggestion_id, outcome=FeedbackOutcome.HURT))
    (again,) = o.suggestions  # the step halved: a different move for the same reading
    assert again.actions == ({"progress": 4.0},)
    assert (
        s.apply(FeedbackEvent(goal_id=G, suggestion_id="unknown", outcome=FeedbackOutcome.HELPED)).suggestions
        == ()
    )


def test_accepted_replan_resets_loop_detection() -> None:
    s = GoalSession(G)
    s.apply(goal())
    replan: Suggestion | None = None
    for i in range(5):
        for sug in s.apply(step(i, output="nothing found")).suggestions:
            if sug.kind is SuggestionKind.REPLAN:
                replan = sug
    assert replan is not None
    assert s.metrics.escalation is Escalation.REPLAN
    s.apply(FeedbackEvent(goal_id=G, suggestion_id=replan.suggestion_id, outcome=FeedbackOutcome.REJECTED))
    assert s.metrics.escalation is Escalation.REPLAN  # only accepted/helped count
    o = s.apply(
        FeedbackEvent(goal_id=G, suggestion_id=replan.suggestion_id, outcome=FeedbackOutcome.ACCEPTED)
    )
    assert o.metrics.escalation is Escalation.NONE
    assert o.metrics.loop_risk == 0.0


def test_failed_steps_are_recorded_in_the_task_state() -> None:
    s = GoalSession(G)
    s.apply(step(1, error="x" * 500))
    s.apply(step(2, tool="bash", args={}, error=None, exit_code=2, tokens=7))
    task = s.task_state()
    assert [e["error"] for e in task.error_patterns] == ["x" * parts.ERROR_TEXT_LIMIT, "exit code 2"]
    assert task.tool_usage_summary["bash"] == {"calls": 1, "successes": 0, "success_rate": 0.0}
    assert (task.total_steps, task.total_tokens_spent) == (2, 7)
    assert "[TASK STATE]" in s.context_string()


def test_outcome_to_dict_is_json() -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"p": 3}))
    s.apply(metrics({"p": 0}))
    o = s.apply(step(1))
    data = json.loads(json.dumps(o.to_dict()))
    assert data["event_type"] == "step"
    assert data["routing"] in ("system1", "system2")
    assert data["verification"]["step_number"] == 1
    assert set(data["metrics"]) == {
        "current_progress", "drift_score", "loop_risk", "progress_percentage", "stall_turns", "steps",
        "tokens", "velocity", "escalation", "progress_source", "budget", "failure_risk",
    }  # fmt: skip
    assert data["metrics"]["progress_source"] == "metrics"
    assert data["metrics"]["budget"] is None


# -- snapshot and restore ---------------------------------------------------------------------------


def test_snapshot_is_json_and_restores_exactly() -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"p": 10}, plan=("a", "b"), budget=Budget(steps=20, tokens=9000)))
    s.apply(metrics({"p": 1}))
    s.apply(sub("done", id="x"))
    s.apply(step(1, event_id="e1"))
    r = roundtrip(s)
    assert canon(r) == canon(s)
    assert r.apply(step(1, event_id="e1")).duplicate  # the dedup window survives
    assert r.goal == GOAL
    assert r.task_state() == s.task_state()


def test_snapshot_stays_bounded() -> None:
    # Every part is bounded; the longest windows (the feedback loop's 1024 issued suggestions, the
    # weight engine's 1000 changes) are full well before 3000 events of this mix.
    s = GoalSession(G)
    s.apply(goal(goal_state={"p": 10**6}, plan=("search", "book"), budget=Budget(steps=10**6)))
    sizes = []
    for i in range(4500):
        if i % 2 == 0:
            s.apply(metrics({"p": i}, event_id=f"m{i}"))
        else:
            s.apply(step(i, tool=f"tool{i % 7}", args={"id": i}, output=f"row {i}", event_id=f"s{i}"))
        if i in (3000, 4499):
            sizes.append(len(json.dumps(s.snapshot())))
    assert sizes[1] < 1.02 * sizes[0]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(kind="Other"), "expected a GoalSession"),
        (lambda d: d.update(schema=9), "schema"),
        (lambda d: d.pop("tracker"), "tracker"),
        (lambda d: d.update(progress=2.0), "out of range"),
        (lambda d: d.update(action="dance"), "action"),
        (lambda d: d.update(routing="system3"), "malformed"),
        (lambda d: d.update(seen=[64, "***"]), "event id window"),
        (lambda d: d.update(seen=[1, "AAAAAAAAAAAAAAAAAAAAAA=="]), "event id window"),
        (lambda d: d.update(readings={"p": [1]}), "readings"),
        (lambda d: d.update(budget_spec=[0, None]), "budget_spec"),
        (lambda d: d["announcer"].update(replans=[1]), "replans"),
        (lambda d: d["announcer"].pop("reached"), "reached"),
        (lambda d: d.update(task={"bogus": 1}), "malformed"),
        (lambda d: d.update(version="3"), "version"),
    ],
)
def test_restore_rejects_bad_snapshots(mutate: Any, message: str) -> None:
    s = GoalSession(G)
    s.apply(goal(goal_state={"p": 10}, budget=Budget(steps=9)))
    s.apply(metrics({"p": 2}))
    data = json.loads(json.dumps(s.snapshot()))
    mutate(data)
    with pytest.raises(SnapshotError, match=message):
        GoalSession.restore(data)
    with pytest.raises(SnapshotError):
        GoalSession.restore([1])


# -- property tests ---------------------------------------------------------------------------------

TOOLS = ("search_flights", "book_flight", "read_file")
TEXTS = ("Book a flight to Seattle", "Write a poem", "Fix the failing test")


@st.composite
def event_specs(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Abstract events; ``build`` turns them into core events (feedback picks an emitted id)."""
    n = draw(st.integers(1, 30))
    kinds = st.sampled_from(["goal", "step", "step", "step", "message", "metrics", "subgoal", "feedback",
                             "compressed", "dup"])  # fmt: skip
    return [
        (draw(kinds), draw(st.integers(0, 10**6)), draw(st.one_of(st.none(), st.floats(0, 100))))
        for _ in range(n)
    ]


def build(spec: tuple[Any, ...], i: int, emitted: list[str], ids: list[str]) -> Any:
    kind, r, ts = spec
    eid = ids[r % len(ids)] if kind == "dup" and ids else f"e{i}"
    base = {"goal_id": G, "event_id": eid, "ts": ts}
    if kind in ("step", "dup"):
        return StepEvent(**base, tool=TOOLS[r % 3], args={"q": r % 4}, output=f"out {r % 3}",
                         error="boom" if r % 7 == 0 else None, tokens=r % 300)  # fmt: skip
    if kind == "goal":
        state = [{}, {"p": 10}, {"p": {"min": 2, "max": 4}}, {"done": True}][r % 4]
        plan = [None, ("search", "book")][r % 2]
        budget = [None, Budget(steps=3 + r % 10), Budget(tokens=2000), Budget()][r % 4]
        return GoalEvent(**base, description=TEXTS[r % 3] if r % 5 else "", goal_state=state, plan=plan,
                         budget=budget)  # fmt: skip
    if kind == "message":
        return MessageEvent(
            **base, role=("user", "assistant", "system")[r % 3], content=["", "ok", "hm"][r % 3]
        )
    if kind == "metrics":
        return MetricsEvent(**base, values={"p": r % 12, "done": r % 2 == 0, "note": "x"})
    if kind == "subgoal":
        return SubgoalEvent(**base, id=f"s{r % 3}", status=("pending", "in_progress", "done", "failed",
                            "skipped", "blocked")[r % 6])  # type: ignore[arg-type]  # fmt: skip
    if kind == "feedback":
        sid = emitted[r % len(emitted)] if emitted else "none"
        return FeedbackEvent(**base, suggestion_id=sid, outcome=tuple(FeedbackOutcome)[r % 4])
    return ContextCompressedEvent(**base)


def run(session: GoalSession, events: list[Any]) -> list[dict[str, Any]]:
    return [session.apply(e).to_dict() for e in events]


def check_ranges(outcome: Outcome) -> None:
    m = outcome.metrics
    for value in (m.current_progress, m.drift_score, m.loop_risk):
        assert 0.0 <= value <= 1.0
    assert 0.0 <= m.progress_percentage <= 100.0
    assert m.velocity >= 0.0
    assert m.stall_turns >= 0
    for sug in outcome.suggestions:
        assert all(0.0 <= v <= 1.0 for v in sug.metrics.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=event_specs(), cut=st.integers(0, 30), profile=st.sampled_from(["goalkeeper", "reference"]))
def test_restore_and_continue_equals_an_uninterrupted_run(specs: list[Any], cut: int, profile: Any) -> None:
    full = GoalSession(G, profile=profile, strategy=AdaptiveGoalFeedbackStrategy())
    events: list[Any] = []
    emitted: list[str] = []
    outcomes = []
    for i, spec in enumerate(specs):
        event = build(spec, i, emitted, [e.event_id for e in events])
        events.append(event)
        outcome = full.apply(event)
        check_ranges(outcome)
        emitted.extend(s.suggestion_id for s in outcome.suggestions)
        outcomes.append(outcome.to_dict())
    json.dumps(outcomes)
    cut = min(cut, len(events))
    first = GoalSession(G, profile=profile, strategy=AdaptiveGoalFeedbackStrategy())
    head = run(first, events[:cut])
    resumed = roundtrip(first)
    tail = run(resumed, events[cut:])
    assert head + tail == outcomes
    assert canon(resumed) == canon(full)
    ids = [s["suggestion_id"] for o in outcomes for s in o["suggestions"]]
    assert len(ids) == len(set(ids))  # a suggestion id is never reused


@st.composite
def wild_events(draw: st.DrawFn) -> Any:
    """Events with fields of any type: built by hand, bypassing the codec."""
    junk = st.one_of(
        st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5),
        st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )  # fmt: skip
    cls = draw(st.sampled_from([GoalEvent, StepEvent, MessageEvent, MetricsEvent, SubgoalEvent, FeedbackEvent,
                                ContextCompressedEvent]))  # fmt: skip
    fields = [f.name for f in dataclasses.fields(cls) if f.name != "goal_id"]
    chosen = draw(st.lists(st.sampled_from(fields), max_size=3, unique=True))
    kwargs = {f: draw(junk) for f in chosen}
    return cls(goal_id=draw(st.sampled_from([G, G, G, "other"])), **kwargs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(wild_events(), max_size=12))
def test_no_event_sequence_crashes_a_session(events: list[Any]) -> None:
    s = GoalSession(G)
    for event in events:
        before = canon(s)
        try:
            outcome = s.apply(event)
        except InvalidInputError as exc:
            field = exc.field
            assert field
            assert canon(s) == before
        else:
            check_ranges(outcome)
            json.dumps(outcome.to_dict())
    roundtrip(s)


# -- the user guide's example runs --------------------------------------------------------------------


def test_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOCS), "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    assert "nudge Move progress from 2 to 6 (goal 10)." in out
    assert "adjust You called `search_flights` with the same arguments 3 times" in out
    assert "goal_reached The goal is reached: every metric target is met." in out
    assert "['run-0']\n2\n[('run-0', 'active'), ('run-2', 'active')]" in out


def test_audit_trails_are_bounded_and_never_change_a_decision() -> None:
    events: list[Any] = [goal(plan=("search flights", "compare prices", "book"))]
    for i in range(120):
        tool = ("search_flights", "read_news", "compare_prices")[i % 3]
        events.append(step(i, tool=tool, args={"origin": "JFK", "page": i % 9}, output=f"{i % 4} flights"))
        if i % 10 == 0:
            events.append(metrics({"progress": i}))
    small, large = GoalSession(G), GoalSession(G, audit_history=1000)
    for event in events:
        a, b = small.apply(event), large.apply(event)
        assert a.to_dict() == b.to_dict()  # the audit tail informs; it never decides
    tracker = small._tracker
    assert parts.AUDIT_HISTORY == 24
    assert len(large._tracker.weights.get_recent_changes(10_000)) > 24
    assert len(tracker.weights.get_recent_changes(10_000)) == 24
    assert len(tracker.drift_engine.get_history()) == 24
    # The histories are compact arrays, so the bound saves less than it did with objects: still a third.
    assert len(json.dumps(small.snapshot())) < len(json.dumps(large.snapshot())) * 0.7
    assert len(tracker.verifications) == 24  # the in-process verdict view follows the audit tail
    assert len(large._tracker.verifications) == 120
    restored = GoalSession.restore(small.snapshot())
    assert canon(restored) == canon(small)
    # The view is not part of a snapshot (empty after restore), but its size is kept: by a restore
    # and by a re-anchor on a new goal text.
    assert restored.tracker.verification_history == 24
    assert GoalSession.restore(large.snapshot()).tracker.verification_history == 1000
    for event in events[1:40]:
        restored.apply(event)
    assert len(restored.tracker.verifications) == 24
    restored.apply(goal(description="Book a hotel in Seattle instead"))
    assert restored.tracker.verification_history == 24
    with pytest.raises(ConfigurationError):
        GoalSession(G, audit_history=0)
