"""Tests for core/budget.py: AdaptiveBudget and TaskProfiles (reference 2.8)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import budget as bu
from goalkeeper.core.budget import AdaptiveBudget, BudgetDecision, BudgetState, TaskProfiles, TaskTypeProfile
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError


def test_constants_and_enum() -> None:
    assert [d.value for d in BudgetDecision] == ["extend", "hold", "tighten", "stuck", "soft_cap", "hard_cap"]
    assert (bu.MIN_STEP_BUDGET, bu.MIN_TOKEN_BUDGET, bu.SOFT_CAP_RANGE) == (5, 1000, (0.5, 0.95))
    assert bu.DEFAULT_EXPECTED_VELOCITY == 0.03
    assert (bu.EXTEND_FACTOR, bu.TIGHTEN_FACTOR, bu.EXTEND_STEPS, bu.TIGHTEN_STEPS) == (1.5, 0.3, 3, 2)
    assert (bu.EXTEND_TOKEN_DIVISOR, bu.MAX_BUDGET_FACTOR, bu.TIGHTEN_FLOOR) == (10, 3, 2)
    assert (bu.DECISION_HISTORY, bu.PROFILE_EMA, bu.PROFILE_MIN_SAMPLES, bu.PROFILE_MARGIN) == (
        200,
        0.2,
        3,
        1.3,
    )
    b = AdaptiveBudget()
    s = b.get_stats()
    assert (s["step_budget"], s["token_budget"], s["task_type"]) == (50, 100000, "general")
    snap = b.snapshot()
    assert snap["config"] == [50, 100000, 0.8, 10]
    assert snap["stuck_threshold"] == 5


def test_reference_example_hold_then_extend_to_33() -> None:
    b = AdaptiveBudget(step_budget=30)
    first = b.update(0.1)
    assert first.decision is BudgetDecision.HOLD  # one velocity point is not enough
    assert first.step_budget == 30
    second = b.update(0.25)
    assert second.decision is BudgetDecision.EXTEND
    assert (second.step_budget, second.token_budget) == (33, 110000)
    assert second.velocity == pytest.approx(0.125)


def test_minimums_and_clamps() -> None:
    b = AdaptiveBudget(step_budget=2, token_budget=10, soft_cap_ratio=0.99)
    assert b.get_stats()["step_budget"] == 5
    assert b.snapshot()["config"][:3] == [5, 1000, 0.95]
    assert AdaptiveBudget(soft_cap_ratio=0.1).snapshot()["config"][2] == 0.5


def test_extend_is_capped_at_three_times_initial() -> None:
    b = AdaptiveBudget(step_budget=5, token_budget=1000)
    budgets = []
    for i in range(1, 20):
        s = b.update(min(1.0, 0.05 * i), force_decision="extend")
        budgets.append((s.step_budget, s.token_budget))
    assert budgets[0] == (8, 1100)
    assert budgets[1] == (11, 1210)
    assert max(b for b, _ in budgets) == 15
    assert max(t for _, t in budgets) == 3000


def test_tighten_floor_and_never_grows() -> None:
    b = AdaptiveBudget(step_budget=10)
    b.update(0.0)
    b.update(0.001)  # velocity 0.0005 < 0.3 * 0.03 -> TIGHTEN: 10 - 2 = 8 (floor 2 + 2 = 4)
    assert b.get_stats()["step_budget"] == 8
    assert b.get_stats()["decision_history"] == ["hold", "tighten"]
    for _ in range(3):
        b.update(0.001, force_decision=BudgetDecision.TIGHTEN)
    s = b.get_stats()
    # 8 -> 6 (floor 3 + 2 = 5); then the floor (6, 7) would exceed the budget, which never grows.
    assert s["step_budget"] == 6
    assert s["steps_taken"] == 5


def test_stuck_after_zero_progress_streak() -> None:
    b = AdaptiveBudget(step_budget=100, stuck_threshold=5)
    b.update(0.1)
    decisions = [b.update(0.1).decision for _ in range(5)]
    assert decisions[-1] is BudgetDecision.STUCK
    assert BudgetDecision.STUCK not in decisions[:-1]
    assert b.get_stats()["zero_velocity_streak"] == 5
    # Progress going backwards is no progress either.
    assert b.update(0.05).decision is BudgetDecision.STUCK
    assert b.update(0.2).decision is not BudgetDecision.STUCK


def test_soft_cap_only_when_too_slow_to_finish() -> None:
    profiles = TaskProfiles([TaskTypeProfile("t", 0.1, 0.0, 3, 0, 0, 10.0)])
    fast = AdaptiveBudget(step_budget=10, task_type="t", profiles=profiles)
    states = [fast.update(0.1 * i) for i in range(1, 9)]
    # At 8/10 steps with 0.1 per step, 2 steps finish the job: no soft cap.
    assert states[-1].is_near_soft_cap
    assert [s.decision for s in states] == [BudgetDecision.HOLD] * 8
    slow = AdaptiveBudget(step_budget=10)
    states = [slow.update(0.04 * i) for i in range(1, 9)]
    assert [s.decision for s in states] == [BudgetDecision.HOLD] * 7 + [BudgetDecision.SOFT_CAP]
    assert states[-1].estimated_steps_to_finish == 17  # 0.68 left at 0.04/step > 2 steps left


def test_hard_cap_first_on_steps_or_tokens() -> None:
    b = AdaptiveBudget(step_budget=5)
    assert [b.update(0.04 * i).decision for i in range(1, 5)][-1] is BudgetDecision.SOFT_CAP
    s = b.update(0.2)
    assert s.decision is BudgetDecision.HARD_CAP
    assert s.is_at_hard_cap
    assert s.steps_remaining == 0
    t = AdaptiveBudget(token_budget=1000)
    assert t.update(0.1, tokens_used=1000).decision is BudgetDecision.HARD_CAP
    assert t.update(0.2).tokens_remaining == 0


def test_expected_velocity_comes_from_the_profile() -> None:
    profiles = TaskProfiles([TaskTypeProfile("code", 0.2, 0.1, 3, 30, 3000, 10.0)])
    b = AdaptiveBudget(task_type="code", profiles=profiles)
    assert b.expected_velocity == 0.2
    b.update(0.1)
    # 0.1 per step is fast against 0.03 but only half the learned 0.2: not EXTEND.
    assert b.update(0.2).decision is BudgetDecision.HOLD
    assert AdaptiveBudget(task_type="other", profiles=profiles).expected_velocity == 0.03


def test_record_completion_ema_and_estimate() -> None:
    profiles = TaskProfiles()
    runs = [(10, 0.1), (20, 0.05), (30, 1 / 30)]
    for steps, per_step in runs:
        b = AdaptiveBudget(step_budget=100, task_type="t", profiles=profiles)
        for i in range(1, steps + 1):
            b.update(min(1.0, per_step * i), tokens_used=100)
        assert b.estimate_budget(default_steps=50) == 50 or profiles.get("t").sample_count == 3  # type: ignore[union-attr]
        b.record_task_completion()
    p = profiles.get("t")
    assert p is not None
    assert p.sample_count == 3
    assert (p.total_steps, p.total_tokens) == (60, 6000)
    avg = 10.0
    for steps in (20, 30):
        avg = 0.8 * avg + 0.2 * steps
    assert p.avg_completion_steps == pytest.approx(avg)
    assert p.avg_velocity == pytest.approx(0.8 * (0.8 * 0.1 + 0.2 * 0.05) + 0.2 * (1 / 30))
    assert profiles.estimate_budget("t") == math.ceil(avg * 1.3)
    assert profiles.estimate_budget("unknown", default_steps=42) == 42
    assert AdaptiveBudget().record_task_completion() is None


def test_profiles_are_not_shared_by_default_and_export_import() -> None:
    a, b = AdaptiveBudget(), AdaptiveBudget()
    a.update(0.5)
    a.record_task_completion()
    assert a.get_stats()["task_profile_exists"]
    assert not b.get_stats()["task_profile_exists"]
    exported = json.loads(json.dumps(a.profiles.export_profiles()))
    fresh = TaskProfiles()
    fresh.import_profiles(exported)
    assert fresh.get("general") == a.profiles.get("general")
    with pytest.raises(SnapshotError):
        fresh.import_profiles({"x": {"task_type": "x"}})
    assert len(fresh) == 1


def test_reset_keeps_profiles() -> None:
    b = AdaptiveBudget(step_budget=30)
    b.update(0.1)
    b.update(0.25)
    b.record_task_completion()
    b.reset()
    s = b.get_stats()
    assert (s["step_budget"], s["steps_taken"], s["decision_history"]) == (30, 0, [])
    assert s["task_profile_exists"]


def test_stats_keys_and_decision_pruning() -> None:
    b = AdaptiveBudget(step_budget=1000, token_budget=10**7)
    for _ in range(250):
        b.update(0.0, force_decision="hold")
    s = b.get_stats()
    assert set(s) == {
        "step_budget",
        "initial_step_budget",
        "token_budget",
        "steps_taken",
        "tokens_consumed",
        "progress",
        "current_velocity",
        "zero_velocity_streak",
        "budget_utilization",
        "decision_history",
        "task_type",
        "task_profile_exists",
    }
    assert len(s["decision_history"]) == 10
    assert len(b.snapshot()["decisions"]) == 200
    assert s["budget_utilization"] == 0.25


def test_bad_inputs_leave_state_unchanged() -> None:
    b = AdaptiveBudget()
    b.update(0.1)
    before = b.snapshot()
    for kwargs, field in (
        ({"progress": 1.5}, "progress"),
        ({"progress": math.nan}, "progress"),
        ({"progress": 0.2, "tokens_used": -1}, "tokens_used"),
        ({"progress": 0.2, "force_decision": "panic"}, "force_decision"),
        ({"progress": 0.2, "now": math.inf}, "now"),
    ):
        with pytest.raises(InvalidInputError) as exc:
            b.update(**kwargs)
        assert exc.value.field == field
    assert b.snapshot() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"step_budget": "50"},
        {"token_budget": 1.5},
        {"soft_cap_ratio": math.nan},
        {"velocity_window": 1},
        {"stuck_threshold": 0},
        {"task_type": ""},
        {"profiles": {}},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        AdaptiveBudget(**kwargs)  # type: ignore[arg-type]


def test_snapshot_errors() -> None:
    b = AdaptiveBudget()
    b.update(0.3, now=1.0)
    snap = b.snapshot()
    for bad in (
        {**snap, "kind": "X"},
        {**snap, "schema": 2},
        {**snap, "config": [50]},
        {**snap, "decisions": ["panic"]},
        {**snap, "records": [{"progress_delta": 0.1}]},
        {**snap, "budgets": [0, 10]},
        {k: v for k, v in snap.items() if k != "progress"},
    ):
        with pytest.raises(SnapshotError):
            AdaptiveBudget.restore(bad)
    shared = TaskProfiles()
    assert AdaptiveBudget.restore(snap, profiles=shared).profiles is shared


# -- properties ---------------------------------------------------------------------------------

updates = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.integers(0, 3000),
        st.none() | st.sampled_from(list(BudgetDecision)),
        st.none() | st.floats(0, 1e6),
        st.booleans(),
    ),
    max_size=40,
)


def run(
    b: AdaptiveBudget, seq: list[tuple[float, int, BudgetDecision | None, float | None, bool]]
) -> list[object]:
    out: list[object] = []
    for p, t, force, now, complete in seq:
        out.append(b.update(p, t, force, now=now))
        if complete:
            out.append(b.record_task_completion())
    return out


@settings(max_examples=120, deadline=None)
@given(seq=updates, cut=st.integers(0, 40))
def test_restore_and_continue_matches_uninterrupted(
    seq: list[tuple[float, int, BudgetDecision | None, float | None, bool]], cut: int
) -> None:
    def make() -> AdaptiveBudget:
        return AdaptiveBudget(step_budget=20, token_budget=20000, velocity_window=4, stuck_threshold=3)

    a, b = make(), make()
    cut = min(cut, len(seq))
    out_a = run(a, seq)
    out_b = run(b, seq[:cut])
    b = AdaptiveBudget.restore(json.loads(json.dumps(b.snapshot())))
    out_b += run(b, seq[cut:])
    assert out_a == out_b
    assert a.snapshot() == b.snapshot()
    assert a.get_stats() == b.get_stats()


@settings(max_examples=150, deadline=None)
@given(seq=updates)
def test_budget_invariants(seq: list[tuple[float, int, BudgetDecision | None, float | None, bool]]) -> None:
    b = AdaptiveBudget(step_budget=10, token_budget=5000, velocity_window=3)
    for s in run(b, seq):
        if not isinstance(s, BudgetState):
            continue
        assert 5 <= s.step_budget <= 30
        assert 1000 <= s.token_budget <= 15000
        assert 0.0 <= s.progress <= 1.0
        assert -1.0 <= s.velocity <= 1.0
        assert s.steps_remaining >= 0
        assert s.tokens_remaining >= 0
