"""Tests for goalkeeper.core.routing."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.routing import DualProcessRouter, EscalationContext, ProcessType
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

S1, S2 = ProcessType.SYSTEM1, ProcessType.SYSTEM2


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def test_process_type_values():
    assert [p.value for p in ProcessType] == ["system1", "system2"]


def test_context_defaults():
    ctx = EscalationContext()
    assert (
        ctx.surprise_magnitude,
        ctx.population_agreement,
        ctx.task_novelty,
        ctx.enterprise_safety,
        ctx.user_explicit_request,
        ctx.error_in_last_step,
        ctx.goal_drift,
    ) == (0.0, 1.0, 0.0, 0.0, False, False, 0.0)
    assert DualProcessRouter().route(ctx) is S1


@pytest.mark.parametrize(
    "name", ["surprise_magnitude", "population_agreement", "task_novelty", "enterprise_safety", "goal_drift"]
)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.01, 1.01, True, "0.5", None])
def test_context_rejects_bad_floats(name, bad):
    with pytest.raises(InvalidInputError) as info:
        EscalationContext(**{name: bad})
    assert info.value.field == name


@pytest.mark.parametrize("name", ["user_explicit_request", "error_in_last_step"])
def test_context_rejects_non_bool_flags(name):
    with pytest.raises(InvalidInputError) as info:
        EscalationContext(**{name: 1})
    assert info.value.field == name


def test_default_thresholds():
    assert DualProcessRouter().thresholds() == {
        "surprise_threshold": 0.6,
        "agreement_threshold": 0.4,
        "novelty_threshold": 0.7,
        "safety_threshold": 0.8,
        "drift_threshold": 0.4,
    }


@pytest.mark.parametrize(
    ("name", "threshold"),
    [("surprise_magnitude", 0.6), ("task_novelty", 0.7), ("enterprise_safety", 0.8), ("goal_drift", 0.4)],
)
def test_strictly_greater_triggers_at_the_boundary(name, threshold):
    router = DualProcessRouter()
    assert router.route(EscalationContext(**{name: threshold})) is S1
    assert router.last_escalation_reasons == []
    assert router.route(EscalationContext(**{name: above(threshold)})) is S2
    assert len(router.last_escalation_reasons) == 1
    assert name in router.last_escalation_reasons[0]
    assert str(threshold) in router.last_escalation_reasons[0]


def test_agreement_is_strictly_less_at_the_boundary():
    router = DualProcessRouter()
    assert router.route(EscalationContext(population_agreement=0.4)) is S1
    assert router.route(EscalationContext(population_agreement=below(0.4))) is S2
    assert router.last_escalation_reasons[0].startswith("low agreement: population_agreement")


def test_boolean_triggers():
    router = DualProcessRouter()
    assert router.route(EscalationContext(user_explicit_request=True)) is S2
    assert router.last_escalation_reasons == ["user request: the user asked for careful reasoning"]
    assert router.route(EscalationContext(error_in_last_step=True)) is S2
    assert router.last_escalation_reasons == ["previous error: the last step failed"]


def test_reference_example_drift_escalates():
    router = DualProcessRouter(drift_threshold=0.4)
    assert router.route(EscalationContext(goal_drift=0.6)) is S2
    assert router.last_escalation_reasons == ["goal drift: goal_drift 0.6 > 0.4"]


def test_all_reasons_in_table_order():
    router = DualProcessRouter()
    ctx = EscalationContext(0.9, 0.1, 0.95, 0.85, True, True, 0.5)
    assert router.route(ctx) is S2
    assert router.last_escalation_reasons == [
        "high surprise: surprise_magnitude 0.9 > 0.6",
        "low agreement: population_agreement 0.1 < 0.4",
        "novel task: task_novelty 0.95 > 0.7",
        "safety: enterprise_safety 0.85 > 0.8",
        "user request: the user asked for careful reasoning",
        "previous error: the last step failed",
        "goal drift: goal_drift 0.5 > 0.4",
    ]
    assert router.escalation_reasons(ctx) == router.last_escalation_reasons
    router.route(EscalationContext())
    assert router.last_escalation_reasons == []  # cleared by a System 1 decision


def test_stats_and_ratio():
    router = DualProcessRouter()
    assert router.system2_ratio == 0.0
    assert router.get_stats() == {
        "system1_count": 0,
        "system2_count": 0,
        "system2_ratio": 0.0,
        "total_decisions": 0,
    }
    for drift in (0.0, 0.9, 0.1, 0.8):
        router.route(EscalationContext(goal_drift=drift))
    router.escalation_reasons(EscalationContext(goal_drift=0.9))  # does not count
    assert router.get_stats() == {
        "system1_count": 2,
        "system2_count": 2,
        "system2_ratio": 0.5,
        "total_decisions": 4,
    }
    assert router.to_dict() == {"thresholds": router.thresholds(), "stats": router.get_stats()}
    json.dumps(router.to_dict())
    # The copy returned by the property cannot change the router.
    router.last_escalation_reasons.append("x")
    assert "x" not in router.last_escalation_reasons


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan, math.inf, True, "0.5"])
@pytest.mark.parametrize(
    "name",
    ["surprise_threshold", "agreement_threshold", "novelty_threshold", "safety_threshold", "drift_threshold"],
)
def test_threshold_validation(name, bad):
    with pytest.raises(ConfigurationError):
        DualProcessRouter(**{name: bad})


def test_route_rejects_other_types():
    with pytest.raises(InvalidInputError) as info:
        DualProcessRouter().route({"goal_drift": 0.9})  # type: ignore[arg-type]
    assert info.value.field == "ctx"


def test_snapshot_roundtrip_and_errors():
    router = DualProcessRouter(drift_threshold=0.5)
    router.route(EscalationContext(goal_drift=0.9))
    snap = router.snapshot()
    restored = DualProcessRouter.restore(json.loads(json.dumps(snap)))
    assert restored.snapshot() == snap
    assert restored.last_escalation_reasons == router.last_escalation_reasons
    for data in (
        {**snap, "kind": "WeightEngine"},
        {**snap, "schema": 2},
        {**snap, "thresholds": {**snap["thresholds"], "drift_threshold": 2.0}},
        {**snap, "thresholds": {"drift_threshold": 0.4}},
        {**snap, "system1_count": -1},
        {**snap, "system2_count": "3"},
        {**snap, "last_escalation_reasons": [1]},
        {k: v for k, v in snap.items() if k != "system1_count"},
    ):
        with pytest.raises(SnapshotError):
            DualProcessRouter.restore(data)


_unit = st.floats(0.0, 1.0) | st.sampled_from([0.4, 0.6, 0.7, 0.8, above(0.4), below(0.4)])
_ctx = st.builds(EscalationContext, _unit, _unit, _unit, _unit, st.booleans(), st.booleans(), _unit)


@settings(max_examples=200, deadline=None)
@given(
    contexts=st.lists(_ctx, max_size=25),
    cut=st.integers(0, 25),
    thresholds=st.lists(_unit, min_size=5, max_size=5),
)
def test_any_trigger_escalates_and_restore_continues(contexts, cut, thresholds):
    straight = DualProcessRouter(*thresholds)
    s, a, n, f, d = thresholds
    decisions = []
    for ctx in contexts:
        expected = (
            ctx.surprise_magnitude > s
            or ctx.population_agreement < a
            or ctx.task_novelty > n
            or ctx.enterprise_safety > f
            or ctx.user_explicit_request
            or ctx.error_in_last_step
            or ctx.goal_drift > d
        )
        decisions.append(straight.route(ctx))
        assert (decisions[-1] is S2) == expected
        assert bool(straight.last_escalation_reasons) == expected
        assert 0.0 <= straight.system2_ratio <= 1.0
    cut = min(cut, len(contexts))
    first = DualProcessRouter(*thresholds)
    resumed_decisions = [first.route(c) for c in contexts[:cut]]
    resumed = DualProcessRouter.restore(json.loads(json.dumps(first.snapshot())))
    resumed_decisions += [resumed.route(c) for c in contexts[cut:]]
    assert resumed_decisions == decisions
    assert resumed.snapshot() == straight.snapshot()


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 1.0),
    st.booleans(),
    st.lists(st.floats(0.0, 1.0), min_size=5, max_size=5),
)
def test_trusted_route_equals_route_of_a_default_context(
    drift: float, error: bool, thresholds: list[float]
) -> None:
    a, b = DualProcessRouter(*thresholds), DualProcessRouter(*thresholds)
    expected = a.route(EscalationContext(goal_drift=drift, error_in_last_step=error))
    assert b._route(goal_drift=drift, error_in_last_step=error) is expected
    assert b.last_escalation_reasons == a.last_escalation_reasons
    assert b.snapshot() == a.snapshot()
