"""Tests for goalkeeper.core.context: TaskState and the goal reminders (core/goal_reminder.py)."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.context import (
    STATUS_MARKS,
    GoalProgress,
    GoalReminder,
    GoalReminderInjector,
    ReminderContext,
    ReminderMode,
    SubGoalStatus,
    TaskState,
    render_reminder,
)
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

# -- TaskState ---------------------------------------------------------------------------------


def test_task_state_fields_and_defaults():
    assert [f.name for f in fields(TaskState)] == [
        "current_goal",
        "sub_goals",
        "decisions_made",
        "active_entities",
        "constraints",
        "open_questions",
        "progress_percentage",
        "error_patterns",
        "tool_usage_summary",
        "total_steps",
        "total_tokens_spent",
    ]
    state = TaskState()
    assert state.to_dict() == {
        "current_goal": "",
        "sub_goals": [],
        "decisions_made": [],
        "active_entities": {},
        "constraints": [],
        "open_questions": [],
        "progress_percentage": 0.0,
        "error_patterns": [],
        "tool_usage_summary": {},
        "total_steps": 0,
        "total_tokens_spent": 0,
    }


def test_sub_goal_status_vocabulary_and_marks():
    assert [s.value for s in SubGoalStatus] == [
        "pending",
        "in_progress",
        "done",
        "blocked",
        "failed",
        "skipped",
    ]
    assert dict(STATUS_MARKS) == {
        "pending": "[ ]",
        "in_progress": "[>]",
        "done": "[x]",
        "blocked": "[B]",
        "failed": "[!]",
        "skipped": "[-]",
    }


def test_progress_percentage_is_0_to_100():
    state = TaskState()
    state.update_from_metrics(0.35, total_steps=7, total_tokens_spent=1200)
    assert state.progress_percentage == 35.0
    assert (state.total_steps, state.total_tokens_spent) == (7, 1200)
    state.update_from_metrics(1.0)
    assert state.progress_percentage == 100.0
    for bad in (1.2, -0.1, math.nan, "0.5"):
        with pytest.raises(InvalidInputError) as info:
            state.update_from_metrics(bad)  # type: ignore[arg-type]
        assert info.value.field == "current_progress"
    # Finite values outside 0-100 are clamped; non-numbers and NaN/inf are rejected.
    assert TaskState(progress_percentage=150).progress_percentage == 100.0
    assert TaskState(progress_percentage=-5).progress_percentage == 0.0
    assert TaskState(progress_percentage=35).progress_percentage == 35.0
    for bad in (math.nan, math.inf, "35", None, True):
        with pytest.raises(InvalidInputError) as info:
            TaskState(progress_percentage=bad)  # type: ignore[arg-type]
        assert info.value.field == "progress_percentage"


def _sample_state() -> TaskState:
    state = TaskState(
        current_goal="Build the login page",
        constraints=["no new dependencies", "keep the API stable"],
        open_questions=["which OAuth provider?"],
        active_entities={"LoginForm": "React component"},
    )
    state.set_sub_goal("Design the form", "done")
    state.set_sub_goal("Wire the backend", SubGoalStatus.IN_PROGRESS)
    state.set_sub_goal("Write tests")
    state.set_sub_goal("Deploy", "blocked")
    state.record_tool_use("search", True, tokens=300)
    state.record_tool_use("search", False, tokens=200)
    state.record_tool_use("bash", True, tokens=100)
    state.record_decision("Use JWT", "stateless sessions")
    state.record_error("ImportError: no module named jwt at 2024-05-20T11:03:22Z")
    state.record_error("ImportError: no module named jwt at 2024-05-21T09:00:00Z", "pip install pyjwt")
    state.update_from_metrics(0.35)
    return state


def test_to_context_string_format():
    assert _sample_state().to_context_string() == "\n".join(
        [
            "[TASK STATE]",
            "Goal: Build the login page",
            "Progress: 35.0% (3 steps, 600 tokens)",
            "Sub-goals:",
            "  [x] Design the form",
            "  [>] Wire the backend",
            "  [ ] Write tests",
            "  [B] Deploy",
            "Constraints: no new dependencies; keep the API stable",
            "Open questions: which OAuth provider?",
            "Entities: LoginForm = React component",
            "Recent decisions:",
            "  - Use JWT (why: stateless sessions) [step 3]",
            "Error patterns:",
            "  - ImportError: no module named jwt at <ts> -> pip install pyjwt (x2)",
            "Tool usage: search 2 calls 50% ok; bash 1 call 100% ok",
        ]
    )
    assert (
        TaskState().to_context_string() == "[TASK STATE]\nGoal: (not set)\nProgress: 0.0% (0 steps, 0 tokens)"
    )


def test_context_string_shows_only_recent_items():
    state = TaskState(current_goal="g")
    for i in range(8):
        state.record_decision(f"d{i}", step=i)
    text = state.to_context_string()
    assert "d2" not in text
    assert "d3" in text
    assert "d7" in text


def test_sub_goals_update_in_place_and_are_bounded():
    state = TaskState()
    state.set_sub_goal("a")
    state.set_sub_goal("a", "done")
    assert state.sub_goals == [{"goal": "a", "status": "done"}]
    with pytest.raises(InvalidInputError) as info:
        state.set_sub_goal("b", "finished")
    assert info.value.field == "sub_goal.status"
    for i in range(TaskState.MAX_SUB_GOALS - 1):
        state.set_sub_goal(f"s{i}")
    with pytest.raises(InvalidInputError):
        state.set_sub_goal("one too many")


def test_record_helpers_keep_lists_bounded():
    assert (TaskState.MAX_DECISIONS, TaskState.MAX_ERROR_PATTERNS, TaskState.MAX_TOOLS, TaskState.SHOWN) == (
        50,
        50,
        100,
        5,
    )
    state = TaskState()
    for i in range(60):
        state.record_decision(f"d{i}")
        state.record_error(f"error kind {i}")
    assert len(state.decisions_made) == 50
    assert state.decisions_made[0]["decision"] == "d10"
    assert len(state.error_patterns) == 50
    state.record_error("error kind 10")  # a repeat moves to the end and counts
    assert state.error_patterns[-1] == {"error": "error kind 10", "resolution": None, "count": 2}
    for i in range(105):
        state.record_tool_use(f"tool{i}", i % 2 == 0)
    state.record_tool_use("tool5", True)
    assert len(state.tool_usage_summary) == 100
    assert "tool0" not in state.tool_usage_summary  # least recently used first
    assert state.tool_usage_summary["tool5"] == {"calls": 2, "successes": 1, "success_rate": 0.5}
    state.record_tool_use("new", True)  # evicts tool6: tool5 was just used
    assert "tool5" in state.tool_usage_summary
    assert "tool6" not in state.tool_usage_summary
    assert state.total_steps == 107
    with pytest.raises(InvalidInputError):
        state.record_tool_use("x", 1)  # type: ignore[arg-type]


def test_from_dict_roundtrip_and_validation():
    state = _sample_state()
    data = json.loads(json.dumps(state.to_dict()))
    assert TaskState.from_dict(data) == state
    assert TaskState.from_dict({"current_goal": "g"}).current_goal == "g"
    cases = [
        ({"progress": 3}, "progress"),
        ({"current_goal": 3}, "current_goal"),
        ({"sub_goals": [{"goal": "a", "status": "finished"}]}, "sub_goals[0].status"),
        ({"sub_goals": [{"status": "done"}]}, "sub_goals[0].goal"),
        ({"sub_goals": "a"}, "sub_goals"),
        ({"decisions_made": [{"decision": "x", "extra": [1]}]}, "decisions_made[0].extra"),
        ({"decisions_made": [{"decision": "x", "w": math.nan}]}, "decisions_made[0].w"),
        ({"active_entities": {"a": 1}}, "active_entities.a"),
        ({"constraints": ["ok", 2]}, "constraints[1]"),
        ({"error_patterns": [{"error": "e", "count": 0}]}, "error_patterns[0].count"),
        ({"tool_usage_summary": {"s": {"calls": 1, "successes": 2}}}, "tool_usage_summary.s.successes"),
        ({"tool_usage_summary": {"s": {"calls": -1, "successes": 0}}}, "tool_usage_summary.s.calls"),
        ({"total_steps": -1}, "total_steps"),
        ({"total_tokens_spent": 1.5}, "total_tokens_spent"),
    ]
    for data, name in cases:
        with pytest.raises(InvalidInputError) as info:
            TaskState.from_dict(data)
        assert info.value.field == name, data
    with pytest.raises(InvalidInputError):
        TaskState.from_dict([])  # type: ignore[arg-type]
    # The success rate is derived from the counts, whatever the input said.
    fixed = TaskState.from_dict(
        {"tool_usage_summary": {"s": {"calls": 4, "successes": 1, "success_rate": 0.9}}}
    )
    assert fixed.tool_usage_summary["s"]["success_rate"] == 0.25


def test_task_state_snapshot():
    state = _sample_state()
    snap = state.snapshot()
    assert snap["kind"] == "TaskState"
    assert TaskState.restore(json.loads(json.dumps(snap))) == state
    for data in ({**snap, "kind": "X"}, {**snap, "state": {"total_steps": -1}}, {**snap, "state": 3}):
        with pytest.raises(SnapshotError):
            TaskState.restore(data)


_task_op = st.one_of(
    st.tuples(st.just("sub"), st.sampled_from(["a", "b", "c"]), st.sampled_from(list(STATUS_MARKS))),
    st.tuples(st.just("decision"), st.text(max_size=5), st.none()),
    st.tuples(st.just("error"), st.sampled_from(["e1", "e2 0x1234abcd"]), st.none() | st.just("fix")),
    st.tuples(st.just("tool"), st.sampled_from(["s", "b", ""]), st.booleans()),
    st.tuples(st.just("metrics"), st.floats(0.0, 1.0), st.none()),
)


def _task_run(state: TaskState, op) -> None:
    kind, a, b = op
    if kind == "sub":
        state.set_sub_goal(a, b)
    elif kind == "decision":
        state.record_decision(a)
    elif kind == "error":
        state.record_error(a, b)
    elif kind == "tool":
        state.record_tool_use(a, b, tokens=3)
    else:
        state.update_from_metrics(a)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(_task_op, max_size=25), cut=st.integers(0, 25))
def test_task_state_restore_and_continue(ops, cut):
    straight = TaskState(current_goal="g")
    for op in ops:
        _task_run(straight, op)
        assert 0.0 <= straight.progress_percentage <= 100.0
        assert all(0.0 <= u["success_rate"] <= 1.0 for u in straight.tool_usage_summary.values())
    first = TaskState(current_goal="g")
    cut = min(cut, len(ops))
    for op in ops[:cut]:
        _task_run(first, op)
    resumed = TaskState.restore(json.loads(json.dumps(first.snapshot())))
    for op in ops[cut:]:
        _task_run(resumed, op)
    assert resumed.to_dict() == straight.to_dict()
    assert resumed.to_context_string() == straight.to_context_string()


# -- reminders ---------------------------------------------------------------------------------


def test_reminder_mode_is_a_plain_str_subclass():
    assert (ReminderMode.FULL, ReminderMode.COMPACT, ReminderMode.ULTRA_COMPACT) == (
        "full",
        "compact",
        "ultra_compact",
    )
    assert isinstance(ReminderMode.FULL, str)
    assert type(ReminderMode.FULL) is ReminderMode
    assert ReminderMode("compact") == ReminderMode.COMPACT
    with pytest.raises(InvalidInputError):
        ReminderMode("verbose")


def test_get_mode_cutoffs():
    inj = GoalReminderInjector()
    assert (inj.full_cutoff, inj.compact_cutoff, inj.max_pitfalls, inj.max_tried) == (5, 15, 5, 5)
    assert inj.drift_warning_threshold == 0.3
    assert [inj.get_mode(t) for t in (0, 1, 5, 6, 15, 16, 1000)] == [
        "full",
        "full",
        "full",
        "compact",
        "compact",
        "ultra_compact",
        "ultra_compact",
    ]
    custom = GoalReminderInjector(full_cutoff=1, compact_cutoff=2)
    assert [custom.get_mode(t) for t in (1, 2, 3)] == ["full", "compact", "ultra_compact"]
    with pytest.raises(InvalidInputError):
        inj.get_mode(-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"full_cutoff": 10, "compact_cutoff": 5},
        {"full_cutoff": -1},
        {"max_pitfalls": 0},
        {"max_tried": 0},
        {"drift_warning_threshold": 1.5},
        {"drift_warning_threshold": math.nan},
    ],
)
def test_injector_constructor_validation(kwargs):
    with pytest.raises(ConfigurationError):
        GoalReminderInjector(**kwargs)


GOAL = "Migrate the billing service to Postgres"
PROGRESS = GoalProgress(3, 10, 0.3, "schema ported", "move the invoices table")


def _injector() -> GoalReminderInjector:
    inj = GoalReminderInjector()
    inj.set_goal(GOAL)
    inj.record_pitfall("editing generated files")
    inj.record_pitfall("dropping the old table early")
    inj.record_tried_approach("pg_dump of the whole database")
    return inj


def test_full_format():
    inj = _injector()
    r = inj.build_reminder(PROGRESS, drift_score=0.35, turn_number=2, now=12.5)
    assert r.text == (
        "[GOAL: Migrate the billing service to Postgres] "
        "[PROGRESS: 3/10 - 30% complete - schema ported] "
        "[FOCUS: move the invoices table] "
        "[AVOID: editing generated files; dropping the old table early] "
        "[TRIED: pg_dump of the whole database] "
        "[DRIFT WARNING: 0.35 - refocus on the goal]"
    )
    assert r == GoalReminder(r.text, ReminderMode.FULL, len(r.text) // 4, 2, True, 12.5)
    no_drift = inj.build_reminder(GoalProgress(0, 0, 0.5), drift_score=0.3, turn_number=1)
    assert no_drift.text == (
        "[GOAL: Migrate the billing service to Postgres] [PROGRESS: 50% complete] "
        "[AVOID: editing generated files; dropping the old table early] "
        "[TRIED: pg_dump of the whole database]"
    )
    assert not no_drift.includes_drift_warning


def test_compact_format():
    inj = _injector()
    r = inj.build_reminder(PROGRESS, drift_score=0.35, turn_number=6)
    assert r.mode == ReminderMode.COMPACT
    assert r.text == (
        "[GOAL: Migrate the billing service to Postgres] [PROGRESS: 3/10 - 30%] "
        "[FOCUS: move the invoices table] [AVOID: dropping the old table early] [DRIFT: 0.35 - refocus]"
    )
    plain = inj.build_reminder(None, turn_number=15)
    assert (
        plain.text == "[GOAL: Migrate the billing service to Postgres] [AVOID: dropping the old table early]"
    )


def test_ultra_compact_format():
    inj = _injector()
    r = inj.build_reminder(PROGRESS, drift_score=0.35, turn_number=16)
    assert r.mode == ReminderMode.ULTRA_COMPACT
    assert r.text == "[GOAL: Migrate the billing service to Postgres] [PROGRESS: 30%] [DRIFT: 0.35!]"
    assert inj.build_reminder(None, turn_number=40).text == "[GOAL: Migrate the billing service to Postgres]"


def test_drift_warning_threshold_is_strict_or_flag():
    inj = _injector()
    assert not inj.build_reminder(drift_score=0.3, turn_number=20).includes_drift_warning
    assert inj.build_reminder(drift_score=math.nextafter(0.3, 1.0), turn_number=20).includes_drift_warning
    flagged = inj.build_reminder(drift_score=0.1, turn_number=20, is_drift_active=True)
    assert flagged.includes_drift_warning
    assert flagged.text.endswith("[DRIFT: 0.10!]")


def test_truncation_limits():
    long_goal = "word " * 100
    for mode, (goal_limit, item_limit) in {
        "full": (200, 80),
        "compact": (100, 60),
        "ultra_compact": (60, 0),
    }.items():
        text = render_reminder(ReminderMode(mode), long_goal, None, 0.0, False, ["p" * 200], ["t" * 200])
        goal = text[len("[GOAL: ") : text.index("]")]
        assert len(goal) <= goal_limit
        assert goal.endswith("...")
        if item_limit:
            avoid = text[text.index("[AVOID: ") + 8 :]
            assert len(avoid[: avoid.index("]")]) == item_limit


def test_render_reminder_skips_blank_items_and_validates_mode():
    text = render_reminder(ReminderMode.FULL, "g", None, 0.0, False, ["", "  ", "x"], [" "])
    assert text == "[GOAL: g] [AVOID: x]"
    assert render_reminder("compact", "g", None, 0.0, False) == "[GOAL: g]"  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        render_reminder("loud", "g", None, 0.0, False)  # type: ignore[arg-type]


def test_token_estimate_is_chars_over_four():
    r = _injector().build_reminder(PROGRESS, turn_number=1)
    assert r.token_estimate == len(r.text) // 4


def test_no_goal_gives_an_empty_unrecorded_reminder():
    inj = GoalReminderInjector()
    r = inj.build_reminder(PROGRESS, drift_score=0.9, turn_number=3)
    assert (r.text, r.token_estimate, r.includes_drift_warning, r.mode) == ("", 0, False, "full")
    assert inj.total_reminders == 0
    assert inj.history == []


def test_pitfalls_dedupe_and_prune_at_twice_the_max():
    inj = GoalReminderInjector(max_pitfalls=3, max_tried=2)
    inj.set_goal("g")
    assert inj.record_pitfall("Use  the cache")
    assert not inj.record_pitfall("use the CACHE")
    assert not inj.record_pitfall("   ")
    for i in range(4):
        inj.record_pitfall(f"p{i}")
    assert inj.pitfalls == ["Use the cache", "p0", "p1", "p2", "p3"]  # 5 < 2*3, not pruned yet
    inj.record_pitfall("p4")  # reaches 6 = 2*3: keep the last 3
    assert inj.pitfalls == ["p2", "p3", "p4"]
    for i in range(4):
        inj.record_tried_approach(f"t{i}")
    assert inj.tried_approaches == ["t2", "t3"]
    text = inj.build_reminder(turn_number=1).text
    assert "[AVOID: p2; p3; p4]" in text
    assert "[TRIED: t2; t3]" in text
    assert "[AVOID: p4]" in inj.build_reminder(turn_number=7).text  # compact: the latest pitfall only


def test_set_goal_clears_state_and_history_is_capped():
    inj = _injector()
    for turn in range(60):
        inj.build_reminder(turn_number=turn, now=float(turn))
    assert inj.total_reminders == 60
    assert len(inj.history) == GoalReminderInjector.HISTORY_SIZE == 50
    assert inj.history[-1].timestamp == 59.0
    inj.set_goal("  new   goal ")
    assert (inj.goal, inj.pitfalls, inj.tried_approaches, inj.history) == ("new goal", [], [], [])
    assert inj.total_reminders == 60  # a lifetime counter


def test_time_comes_from_now_or_the_last_known_time():
    inj = _injector()
    assert inj.build_reminder().timestamp == 0.0
    assert inj.build_reminder(now=5.0).timestamp == 5.0
    assert inj.build_reminder().timestamp == 5.0
    with pytest.raises(InvalidInputError) as info:
        inj.build_reminder(now=math.nan)
    assert info.value.field == "now"


def test_build_from_context_uses_the_context_only():
    inj = _injector()
    ctx = ReminderContext("Ship v2", PROGRESS, 0.5, ["a", "b"], ["c"], 3, False)
    r = inj.build_from_context(ctx, now=1.0)
    assert r.text.startswith("[GOAL: Ship v2] [PROGRESS: 3/10")
    assert "[AVOID: a; b] [TRIED: c] [DRIFT WARNING: 0.50" in r.text
    assert inj.goal == GOAL
    assert inj.total_reminders == 1
    with pytest.raises(InvalidInputError) as info:
        ReminderContext("g", drift_score=2.0)
    assert info.value.field == "drift_score"
    with pytest.raises(InvalidInputError) as info:
        ReminderContext("g", progress={"current_step": 1})  # type: ignore[arg-type]
    assert info.value.field == "progress"
    with pytest.raises(InvalidInputError):
        inj.build_from_context("g")  # type: ignore[arg-type]


def test_goal_progress_validation():
    for kwargs, name in (
        ({"progress_pct": 1.5}, "progress_pct"),
        ({"current_step": -1}, "current_step"),
        ({"total_steps": 2.0}, "total_steps"),
        ({"summary": None}, "summary"),
    ):
        with pytest.raises(InvalidInputError) as info:
            GoalProgress(**kwargs)
        assert info.value.field == name


def test_stats():
    inj = _injector()
    inj.build_reminder(drift_score=0.5, turn_number=1)
    inj.build_reminder(turn_number=10)
    stats = inj.get_stats()
    assert stats["reminders_by_mode"] == {"full": 1, "compact": 1, "ultra_compact": 0}
    assert {k: stats[k] for k in ("has_goal", "total_reminders", "history_size", "drift_warnings")} == {
        "has_goal": True,
        "total_reminders": 2,
        "history_size": 2,
        "drift_warnings": 1,
    }
    assert (stats["pitfall_count"], stats["tried_count"]) == (2, 1)
    assert stats["avg_token_estimate"] == sum(r.token_estimate for r in inj.history) / 2
    assert GoalReminderInjector().get_stats()["avg_token_estimate"] == 0.0


def test_injector_snapshot_errors():
    snap = _injector().snapshot()
    for data in (
        {**snap, "kind": "TaskState"},
        {**snap, "config": {**snap["config"], "max_tried": 0}},
        {**snap, "history": [{"text": "x"}]},
        {**snap, "by_mode": {"full": 1}},
        {k: v for k, v in snap.items() if k != "last_now"},
    ):
        with pytest.raises(SnapshotError):
            GoalReminderInjector.restore(data)


_rem_op = st.one_of(
    st.tuples(st.just("pitfall"), st.sampled_from(["a", "b", "c", "A", "d", "e", "f"])),
    st.tuples(st.just("tried"), st.sampled_from(["x", "y", "z", "w"])),
    st.tuples(
        st.just("build"),
        st.tuples(
            st.none() | st.builds(GoalProgress, st.integers(0, 9), st.integers(0, 9), st.floats(0.0, 1.0)),
            st.floats(0.0, 1.0),
            st.integers(0, 30),
            st.booleans(),
            st.none() | st.floats(0.0, 1e6),
        ),
    ),
    st.tuples(st.just("goal"), st.sampled_from(["", "goal one", "another goal"])),
)


def _rem_run(inj: GoalReminderInjector, op) -> object:
    kind, arg = op
    if kind == "pitfall":
        return inj.record_pitfall(arg)
    if kind == "tried":
        return inj.record_tried_approach(arg)
    if kind == "goal":
        return inj.set_goal(arg)
    progress, drift, turn, active, now = arg
    r = inj.build_reminder(progress, drift, turn, active, now=now)
    assert r.token_estimate == len(r.text) // 4
    return r


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(_rem_op, max_size=30), cut=st.integers(0, 30))
def test_injector_restore_and_continue(ops, cut):
    straight = GoalReminderInjector(max_pitfalls=2, max_tried=2)
    straight.set_goal("start")
    first = GoalReminderInjector.restore(straight.snapshot())
    out_straight = [_rem_run(straight, op) for op in ops]
    assert len(straight.pitfalls) < 4
    assert len(straight.tried_approaches) < 4
    cut = min(cut, len(ops))
    out = [_rem_run(first, op) for op in ops[:cut]]
    resumed = GoalReminderInjector.restore(json.loads(json.dumps(first.snapshot())))
    out += [_rem_run(resumed, op) for op in ops[cut:]]
    assert out == out_straight
    assert resumed.snapshot() == straight.snapshot()
