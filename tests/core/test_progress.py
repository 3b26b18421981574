"""Tests for core/progress.py: ProgressEstimator (reference 2.12) and the module's re-exports."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import progress as pr
from goalkeeper.core._checks import WindowSum
from goalkeeper.core.progress import (
    AdaptiveBudget,
    GoalTree,
    ProgressEstimator,
    ProgressStatus,
    ProgressTrend,
    ceil_steps,
)
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError


def fed(deltas: list[float], tokens: int = 0, **kw: int) -> ProgressEstimator:
    e = ProgressEstimator(**kw)
    for i, d in enumerate(deltas):
        e.record_step(i, d, tokens)
    return e


def test_constants_and_enums() -> None:
    assert pr.VELOCITY_EPSILON == 1e-4
    assert pr.TREND_ACCELERATION == 0.005
    assert (pr.AHEAD_RATIO, pr.ON_TRACK_RATIO) == (0.7, 1.2)
    assert pr.CI_Z == 1.96
    assert [s.value for s in ProgressStatus] == [
        "on_track",
        "at_risk",
        "stalled",
        "ahead_of_schedule",
        "just_started",
        "complete",
    ]
    assert [t.value for t in ProgressTrend] == ["improving", "stable", "declining"]
    snap = ProgressEstimator().snapshot()
    assert (snap["velocity_window"], snap["max_history"]) == (20, 500)
    assert GoalTree.__module__ == "goalkeeper.core.goal_tree"  # re-exported
    assert AdaptiveBudget.__module__ == "goalkeeper.core.budget"


def test_velocity_token_velocity_and_remaining() -> None:
    e = fed([0.1, 0.2, 0.3], tokens=500)
    assert e.velocity == pytest.approx(0.2)
    assert e.token_velocity == pytest.approx(0.6 / 1.5)
    est = e.estimate()
    assert est.current_progress == pytest.approx(0.6)
    assert est.estimated_steps_remaining == 2  # ceil(0.4 / 0.2), not 3 from float noise
    assert est.estimated_tokens_remaining == 1000  # 0.4 / 0.4 per 1000
    assert est.steps_taken == 3
    assert est.tokens_used == 1500
    assert ceil_steps(0.30000000000000004 / 0.1) == 3


def test_window_limits_velocity() -> None:
    e = fed([1.0, 0.0, 0.0], velocity_window=2)
    assert e.velocity == 0.0
    assert e.progress == 1.0


def test_deltas_are_clamped() -> None:
    e = fed([-0.5, 2.0])
    assert e.get_stats()["total_progress"] == 1.0
    assert e.velocity == pytest.approx(0.5)


def test_acceleration_halves_and_trend() -> None:
    e = fed([0.0, 0.0, 0.1, 0.1], velocity_window=4)
    # Velocities after each step: 0, 0, 1/30, 0.05; later half minus earlier half.
    assert e.acceleration == pytest.approx((1 / 30 + 0.05) / 2)
    assert e.get_trend() is ProgressTrend.IMPROVING
    assert fed([0.1, 0.1, 0.0, 0.0], velocity_window=4).get_trend() is ProgressTrend.DECLINING
    assert fed([0.1] * 6).get_trend() is ProgressTrend.STABLE
    assert fed([0.1]).acceleration == 0.0


def test_trend_band_is_0005() -> None:
    # Velocities 0.0 then 0.0051 / 0.0049 (window 1 is not allowed; window 2, two steps: v = d/1, d/2).
    e = fed([0.0, 0.0102])
    assert e.acceleration == pytest.approx(0.0051)
    assert e.get_trend() is ProgressTrend.IMPROVING
    assert fed([0.0, 0.0098]).get_trend() is ProgressTrend.STABLE


@pytest.mark.parametrize(
    ("deltas", "kwargs", "status"),
    [
        ([], {}, ProgressStatus.JUST_STARTED),
        ([], {"current_progress": 1.0}, ProgressStatus.COMPLETE),  # COMPLETE is checked first
        ([0.5, 0.5], {}, ProgressStatus.COMPLETE),
        ([0.0, 0.0], {}, ProgressStatus.STALLED),
        ([0.00005] * 3, {}, ProgressStatus.STALLED),  # at or below 1e-4 is "near zero"
        # 2 taken + 8 left = 10 of 50 -> 20% -> ahead.
        ([0.1, 0.1], {"total_steps_budget": 50}, ProgressStatus.AHEAD_OF_SCHEDULE),
        # 10 of 14 = 71% -> on track; 10 of 9 = 111% -> on track; 10 of 8 = 125% -> at risk.
        ([0.1, 0.1], {"total_steps_budget": 14}, ProgressStatus.ON_TRACK),
        ([0.1, 0.1], {"total_steps_budget": 9}, ProgressStatus.ON_TRACK),
        ([0.1, 0.1], {"total_steps_budget": 8}, ProgressStatus.AT_RISK),
    ],
)
def test_status_rules(deltas: list[float], kwargs: dict[str, object], status: ProgressStatus) -> None:
    assert fed(deltas).estimate(**kwargs).status is status  # type: ignore[arg-type]


def test_status_uses_the_worse_of_steps_and_tokens() -> None:
    e = fed([0.1, 0.1], tokens=1000)  # 0.1 per 1000 tokens: 8000 more, 10000 in all
    assert (
        e.estimate(total_steps_budget=50, total_tokens_budget=100000).status
        is ProgressStatus.AHEAD_OF_SCHEDULE
    )
    assert e.estimate(total_steps_budget=50, total_tokens_budget=8000).status is ProgressStatus.AT_RISK


def test_confidence_interval() -> None:
    e = fed([0.1, 0.3])
    est = e.estimate()
    v, sd, n = 0.2, 0.1, 2
    margin = 1.96 * sd / math.sqrt(n)
    assert est.confidence_interval == (math.ceil(0.6 / (v + margin)), math.ceil(0.6 / (v - margin)))
    assert est.confidence_interval == (2, 10)
    # The slow end at or below zero: unbounded.
    assert fed([0.0, 0.4]).estimate().confidence_interval == (2, None)
    steady = fed([0.1] * 4).estimate()
    assert steady.confidence_interval == (6, 6)
    assert fed([0.0, 0.0]).estimate().confidence_interval is None
    assert fed([0.5, 0.5]).estimate().confidence_interval == (0, 0)


def test_predict_completion() -> None:
    e = fed([0.2, 0.2])
    assert e.predict_completion() == 3
    assert e.predict_completion(0.3) == 2
    assert e.predict_completion(0.0) is None
    assert fed([1.0]).predict_completion() == 0


def test_stats_and_reset() -> None:
    e = fed([0.1] * 3, tokens=10, max_history=2)
    s = e.get_stats()
    assert s["steps_recorded"] == 3
    assert s["history_size"] == 2
    assert s["total_tokens"] == 30
    assert set(s) == {
        "steps_recorded",
        "total_progress",
        "total_tokens",
        "velocity",
        "token_velocity",
        "acceleration",
        "trend",
        "history_size",
    }
    e.reset()
    assert e.get_stats()["steps_recorded"] == 0
    assert e.estimate().status is ProgressStatus.JUST_STARTED


def test_bad_inputs_and_configuration() -> None:
    e = ProgressEstimator()
    for args, field in (
        ((-1, 0.1), "step_number"),
        ((1, math.nan), "progress_delta"),
        ((1, "x"), "progress_delta"),
        ((1, 0.1, -5), "tokens_used"),
    ):
        with pytest.raises(InvalidInputError) as exc:
            e.record_step(*args)
        assert exc.value.field == field
    with pytest.raises(InvalidInputError):
        e.estimate(current_progress=1.5)
    with pytest.raises(InvalidInputError):
        e.estimate(total_steps_budget=0)
    with pytest.raises(InvalidInputError):
        e.predict_completion(math.inf)
    assert e.get_stats()["steps_recorded"] == 0
    for kw in ({"velocity_window": 1}, {"max_history": 0}, {"velocity_window": 2.5}):
        with pytest.raises(ConfigurationError):
            ProgressEstimator(**kw)


def test_snapshot_errors() -> None:
    snap = fed([0.1, 0.2]).snapshot()
    for bad in (
        {**snap, "kind": "X"},
        {**snap, "schema": 9},
        {**snap, "history": [[1, 2]]},
        {**snap, "deltas": {"values": ["a"], "total": 0.0, "pushes": 1}},
        {**snap, "velocities": [math.nan]},
        {k: v for k, v in snap.items() if k != "count"},
    ):
        with pytest.raises(SnapshotError):
            ProgressEstimator.restore(bad)


def test_window_sum_resums_exactly() -> None:
    w = WindowSum(3)
    for x in [0.1] * 10:
        w.push(x)
    assert w.total == math.fsum([0.1] * 3)
    assert len(w) == 3
    assert w.values() == [0.1] * 3
    assert WindowSum.from_dict(3, w.to_dict()).to_dict() == w.to_dict()


# -- properties ---------------------------------------------------------------------------------

steps = st.lists(st.tuples(st.floats(-0.5, 1.5), st.integers(0, 5000)), max_size=40)


@settings(max_examples=120, deadline=None)
@given(seq=steps, cut=st.integers(0, 40))
def test_restore_and_continue_matches_uninterrupted(seq: list[tuple[float, int]], cut: int) -> None:
    a, b = ProgressEstimator(4, 10), ProgressEstimator(4, 10)
    cut = min(cut, len(seq))
    for i, (d, t) in enumerate(seq):
        a.record_step(i, d, t)
    for i, (d, t) in enumerate(seq[:cut]):
        b.record_step(i, d, t)
    b = ProgressEstimator.restore(json.loads(json.dumps(b.snapshot())))
    for i, (d, t) in enumerate(seq):
        if i >= cut:
            b.record_step(i, d, t)
    assert a.snapshot() == b.snapshot()
    assert a.estimate() == b.estimate()
    assert a.get_stats() == b.get_stats()


@settings(max_examples=150, deadline=None)
@given(seq=steps, p=st.none() | st.floats(0, 1), budget=st.integers(1, 100))
def test_estimates_stay_in_range(seq: list[tuple[float, int]], p: float | None, budget: int) -> None:
    e = ProgressEstimator(velocity_window=5)
    for i, (d, t) in enumerate(seq):
        e.record_step(i, d, t)
    est = e.estimate(p, budget)
    assert 0.0 <= est.current_progress <= 1.0
    assert 0.0 <= est.velocity <= 1.0
    assert est.token_velocity >= 0.0
    assert -1.0 <= est.acceleration <= 1.0
    if est.estimated_steps_remaining is not None:
        assert est.estimated_steps_remaining >= 0
    if est.confidence_interval is not None:
        low, high = est.confidence_interval
        assert 0 <= low <= (est.estimated_steps_remaining or 0)
        assert high is None or high >= (est.estimated_steps_remaining or 0)


# -- snapshot fuzzing for every stateful class of the drift / progress modules --------------------


def _samples() -> list[tuple[object, dict[str, object]]]:
    from goalkeeper.core.drift import DriftEngine, GoalDNA

    dna = GoalDNA("deploy the billing service")
    dna.check_drift(1, "zzz")
    engine = DriftEngine("deploy the billing service")
    engine.assess_step("deploy billing", "ok")
    tree = GoalTree("g")
    tree.complete_node(tree.add_step(tree.add_subgoal("s"), "a"), artifact="x")
    budget = AdaptiveBudget()
    budget.update(0.2, 10)
    budget.record_task_completion()
    return [(cls, obj.snapshot()) for cls, obj in (  # type: ignore[attr-defined]
        (GoalDNA, dna), (DriftEngine, engine), (GoalTree, tree), (ProgressEstimator, fed([0.1, 0.2])),
        (AdaptiveBudget, budget),
    )]  # fmt: skip


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupted_snapshots_raise_only_snapshot_error(data: st.DataObject) -> None:
    cls, snap = data.draw(st.sampled_from(_samples()))

    def corrupt(value: object) -> object:
        if isinstance(value, dict) and value and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(value)))
            return {**value, key: corrupt(value[key])}
        if isinstance(value, list) and value and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(value) - 1))
            return [*value[:i], corrupt(value[i]), *value[i + 1 :]]
        return data.draw(json_values)

    bad = corrupt({k: v for k, v in snap.items() if k not in ("kind", "schema")})
    if isinstance(bad, dict):
        bad = {"kind": snap["kind"], "schema": snap["schema"], **bad}
    with contextlib.suppress(SnapshotError):
        cls.restore(bad)  # type: ignore[attr-defined]
