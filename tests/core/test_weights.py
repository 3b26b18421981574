"""Tests for goalkeeper.core.weights (and the vocabulary in weight_types)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.weight_types import (
    CONSOLIDATE_BELOW,
    CONSOLIDATE_MOMENTUM,
    HOMEOSTATIC_PULL,
    MOMENTUM,
)
from goalkeeper.core.weights import (
    BEHAVIORAL_DEFAULTS,
    DYNAMIC_DEFAULT,
    ENTERPRISE_DEFAULTS,
    GOAL_ALIGNMENT_KEYS,
    MAX_KEY_LENGTH,
    MODEL_TASK_TYPES,
    TOPIC_PREFIX,
    USER_INSIGHT_DEFAULTS,
    LearningRates,
    UpdateMode,
    WeightCategory,
    WeightEngine,
    WeightUpdate,
)
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

GA = WeightCategory.GOAL_ALIGNMENT


def upd(category, key, delta, **kw):
    return WeightUpdate(category, key, delta, kw.pop("reason", "test"), **kw)


def roundtrip(engine: WeightEngine) -> WeightEngine:
    return WeightEngine.restore(json.loads(json.dumps(engine.snapshot())))


# -- vocabulary --------------------------------------------------------------------------------


def test_category_values():
    assert [c.value for c in WeightCategory] == [
        "behavioral",
        "tool_preference",
        "model_selection",
        "goal_alignment",
        "user_insights",
        "enterprise",
        "global",
    ]


def test_dynamics_constants():
    assert (MOMENTUM, HOMEOSTATIC_PULL, CONSOLIDATE_BELOW, CONSOLIDATE_MOMENTUM) == (0.7, 0.01, 0.05, 0.5)
    assert (DYNAMIC_DEFAULT, MAX_KEY_LENGTH, TOPIC_PREFIX) == (0.5, 256, "topic:")
    assert WeightEngine().max_history == 1000


def test_learning_rate_defaults():
    rates = LearningRates()
    expected = {
        "behavioral": 0.12,
        "tool_preference": 0.08,
        "model_selection": 0.04,
        "goal_alignment": 0.15,
        "user_insights": 0.03,
        "enterprise": 0.0,
        "global": 0.01,
    }
    assert {c.value: rates.get(c) for c in WeightCategory} == expected
    assert rates.get("global") == rates.global_ == 0.01
    assert rates.to_dict()["global_"] == 0.01


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf, True, "0.1"])
def test_learning_rates_reject_bad_values(bad):
    with pytest.raises(ConfigurationError):
        LearningRates(behavioral=bad)


def test_defaults_of_every_category():
    e = WeightEngine()
    assert dict(BEHAVIORAL_DEFAULTS) == {
        "verbosity": 0.0,
        "formality": 0.0,
        "initiative": 0.3,
        "detail_level": 0.3,
        "creativity": 0.0,
        "speed_vs_quality": 0.0,
        "autonomy": 0.5,
        "explanation_depth": 0.3,
        "code_density": 0.0,
        "risk_tolerance": 0.0,
    }
    assert e.values("behavioral") == dict(BEHAVIORAL_DEFAULTS)
    assert GOAL_ALIGNMENT_KEYS == ("current_progress", "drift_score", "loop_risk")
    assert e.goal_alignment == {"current_progress": 0.0, "drift_score": 0.0, "loop_risk": 0.0}
    assert dict(ENTERPRISE_DEFAULTS) == {
        "safety_strictness": 0.5,
        "data_sensitivity": 0.5,
        "max_autonomy_level": 1.0,
        "feedback_collection": 1.0,
    }
    assert dict(USER_INSIGHT_DEFAULTS) == {
        "preferred_response_length": 0.5,
        "domain_expertise": 0.5,
        "frustration_level": 0.0,
        "engagement_level": 0.5,
        "correction_frequency": 0.0,
        "time_sensitivity": 0.5,
        "technical_depth": 0.5,
    }
    assert MODEL_TASK_TYPES == (
        "planning",
        "coding",
        "summarization",
        "validation",
        "conversation",
        "tool_use",
        "reasoning",
    )
    # Dynamic keys read as the neutral 0.5 before they are written, and are not stored by a read.
    assert e.get("tool_preference", "search") == 0.5
    assert e.get("model_selection", "coding/gpt-x") == 0.5
    assert e.get("user_insights", "topic:databases") == 0.5
    assert e.get("global", "pattern") == 0.5
    assert e.values("tool_preference") == {}
    assert e.global_enabled is False


def test_weight_update_accepts_category_string_and_validates():
    u = WeightUpdate("goal_alignment", "current_progress", 0.15, "Sub-goal completed", 3.0, "tracker")
    assert u.category is GA
    assert (u.delta, u.timestamp, u.source) == (0.15, 3.0, "tracker")
    cases = [
        (("nope", "k", 0.1), "category"),
        ((GA, "", 0.1), "key"),
        ((GA, "progress", 0.1), "key"),
        (("behavioral", "mood", 0.1), "key"),
        (("enterprise", "brand_voice", 0.1), "key"),
        (("model_selection", "coding", 0.1), "key"),
        (("model_selection", "poetry/gpt", 0.1), "key"),
        (("model_selection", "coding/", 0.1), "key"),
        (("user_insights", "topic:", 0.1), "key"),
        (("tool_preference", "x" * 257, 0.1), "key"),
        ((GA, "loop_risk", math.nan), "delta"),
        ((GA, "loop_risk", math.inf), "delta"),
        ((GA, "loop_risk", True), "delta"),
        ((GA, "loop_risk", "0.1"), "delta"),
    ]
    for args, name in cases:
        with pytest.raises(InvalidInputError) as info:
            WeightUpdate(*args)
        assert info.value.field == name, args
    with pytest.raises(InvalidInputError) as info:
        WeightUpdate(GA, "loop_risk", 0.1, reason=None)  # type: ignore[arg-type]
    assert info.value.field == "reason"
    with pytest.raises(InvalidInputError) as info:
        WeightUpdate(GA, "loop_risk", 0.1, timestamp=math.nan)
    assert info.value.field == "timestamp"
    assert WeightUpdate("user_insights", "topic:databases", 0.1).key == "topic:databases"
    assert WeightUpdate("model_selection", "coding/gpt-4o", 0.1).key == "coding/gpt-4o"


# -- arithmetic --------------------------------------------------------------------------------


def test_goal_alignment_deltas_are_unscaled_and_clamped():
    e = WeightEngine()
    # The reference example: delta 0.15 for "sub-goal completed" moves progress by 0.15, not 0.0225.
    assert e.apply_update(upd(GA, "current_progress", 0.15)) == pytest.approx(0.15)
    assert e.goal_alignment["current_progress"] == pytest.approx(0.15)
    e.apply_update(upd(GA, "drift_score", 0.9))
    assert e.apply_update(upd(GA, "drift_score", 0.3)) == pytest.approx(0.1)
    assert e.goal_alignment["drift_score"] == 1.0
    assert e.apply_update(upd(GA, "loop_risk", -0.5)) == 0.0
    assert e.get_recent_changes(1)[0].mode is UpdateMode.DIRECT


def test_behavioral_momentum_and_homeostatic_pull():
    e = WeightEngine()
    # m = 0.7*0 + 0.12*(-0.15) = -0.018; new = 0.5 - 0.018 - 0.01*0.5 = 0.477.
    applied = e.apply_update(upd("behavioral", "autonomy", -0.15))
    assert e.get("behavioral", "autonomy") == pytest.approx(0.477)
    assert applied == pytest.approx(-0.023)
    # Second update: m = 0.7*(-0.018) + 0.12*(-0.15) = -0.0306; new = 0.477 - 0.0306 - 0.00477.
    e.apply_update(upd("behavioral", "autonomy", -0.15))
    assert e.get("behavioral", "autonomy") == pytest.approx(0.477 - 0.0306 - 0.00477)
    assert e.snapshot()["momentum"]["autonomy"] == pytest.approx(-0.0306)
    # A zero delta still carries momentum: m = 0.7*(-0.0306).
    before = e.get("behavioral", "autonomy")
    e.apply_update(upd("behavioral", "autonomy", 0.0))
    assert e.get("behavioral", "autonomy") == pytest.approx(before - 0.02142 - 0.01 * before)
    assert e.get_recent_changes(1)[0].mode is UpdateMode.LEARNED


def test_behavioral_clamps_to_minus_one_one_and_survives_huge_deltas():
    e = WeightEngine()
    for _ in range(5):
        e.apply_update(upd("behavioral", "verbosity", 1e308))
    assert e.get("behavioral", "verbosity") == 1.0
    for _ in range(5):
        e.apply_update(upd("behavioral", "verbosity", -1e308))
    assert e.get("behavioral", "verbosity") == -1.0
    assert all(math.isfinite(v) for v in e.snapshot()["momentum"].values())


@pytest.mark.parametrize(
    ("category", "key", "rate"),
    [
        ("tool_preference", "search", 0.08),
        ("model_selection", "coding/gpt-x", 0.04),
        ("user_insights", "technical_depth", 0.03),
        ("user_insights", "topic:sql", 0.03),
    ],
)
def test_learned_categories_scale_by_learning_rate(category, key, rate):
    e = WeightEngine()
    before = e.get(category, key)
    assert e.apply_update(upd(category, key, 1.0)) == pytest.approx(rate)
    assert e.get(category, key) == pytest.approx(before + rate)
    e.apply_update(upd(category, key, 1000.0))
    assert e.get(category, key) == 1.0
    e.apply_update(upd(category, key, -1000.0))
    assert e.get(category, key) == 0.0


def test_enterprise_is_set_not_learned():
    e = WeightEngine()
    assert e.apply_update(upd("enterprise", "safety_strictness", 0.9)) == 0.0
    assert e.get("enterprise", "safety_strictness") == 0.5
    assert len(e.get_recent_changes()) == 1  # recorded even though nothing moved
    assert e.set_weight(
        "enterprise", "safety_strictness", 0.9, reason="admin", source="admin"
    ) == pytest.approx(0.4)
    assert e.get("enterprise", "safety_strictness") == 0.9
    assert e.get_recent_changes(1)[0].mode is UpdateMode.SET
    # A configured rate (the behavior-loop page's 0.02) makes it learned like the others.
    e2 = WeightEngine(LearningRates(enterprise=0.02))
    assert e2.apply_update(upd("enterprise", "data_sensitivity", 1.0)) == pytest.approx(0.02)


def test_global_is_opt_in():
    e = WeightEngine()
    assert e.apply_update(upd("global", "routing", 1.0)) == 0.0
    assert e.set_weight("global", "routing", 0.9, reason="x") == 0.0
    assert e.values("global") == {}
    assert e.total_updates == 2
    e.set_global_enabled(True)
    assert e.apply_update(upd("global", "routing", 1.0)) == pytest.approx(0.01)
    assert WeightEngine(global_enabled=True).global_enabled
    with pytest.raises(InvalidInputError):
        e.set_global_enabled("yes")  # type: ignore[arg-type]


def test_set_goal_metric_writes_exact_values():
    e = WeightEngine()
    e.set_goal_metric("current_progress", 0.1, reason="r")
    applied = e.set_goal_metric("current_progress", 0.3, reason="plan step 3/10", timestamp=5.0)
    assert e.goal_alignment["current_progress"] == 0.3  # exactly, not 0.1 + 0.2
    assert applied == pytest.approx(0.2)
    change = e.get_recent_changes(1)[0]
    assert change.update.source == "goal_tracker"
    assert change.update.delta == pytest.approx(0.2)
    assert (change.value, change.mode, change.update.timestamp) == (0.3, UpdateMode.SET, 5.0)
    for bad in (1.01, -0.01, math.nan, None):
        with pytest.raises(InvalidInputError) as info:
            e.set_goal_metric("drift_score", bad, reason="r")  # type: ignore[arg-type]
        assert info.value.field == "value"
    with pytest.raises(InvalidInputError) as info:
        e.set_goal_metric("progress", 0.5, reason="r")
    assert info.value.field == "key"
    assert e.set_weight("behavioral", "verbosity", -0.7, reason="r") == pytest.approx(-0.7)


def test_learn_toward_uses_the_learning_rate():
    e = WeightEngine()
    assert e.learn_toward(GA, "current_progress", 1.0, reason="r") == pytest.approx(0.15)
    assert e.learn_toward(GA, "current_progress", 1.0, reason="r") == pytest.approx(0.85 * 0.15)
    assert e.goal_alignment["current_progress"] == pytest.approx(0.2775)
    assert e.get_recent_changes(1)[0].mode is UpdateMode.DIRECT
    # Behavioral: no momentum involved.
    assert e.learn_toward("behavioral", "verbosity", -1.0, reason="r") == pytest.approx(-0.12)
    assert e.snapshot()["momentum"]["verbosity"] == 0.0
    assert e.learn_toward("enterprise", "safety_strictness", 1.0, reason="r") == 0.0
    with pytest.raises(InvalidInputError) as info:
        e.learn_toward(GA, "loop_risk", 2.0, reason="r")
    assert info.value.field == "target"


def test_effective_autonomy():
    e = WeightEngine()
    assert e.get_effective_autonomy() == 0.5
    e.set_weight("enterprise", "max_autonomy_level", 0.3, reason="admin")
    assert e.get_effective_autonomy() == 0.3
    e.set_weight("behavioral", "autonomy", -0.4, reason="r")
    assert e.get_effective_autonomy() == 0.0  # floored: range is [0, 1]


# -- history, batches, consolidation --------------------------------------------------------------


def test_history_records_request_and_applied_and_is_capped():
    e = WeightEngine()
    assert e.max_history == 1000
    for i in range(1005):
        e.apply_update(upd("tool_preference", f"t{i % 3}", 0.01, timestamp=float(i)))
    assert e.total_updates == 1005
    assert len(e.get_recent_changes(5000)) == 1000
    recent = e.get_recent_updates(3)
    assert [u.timestamp for u in recent] == [1002.0, 1003.0, 1004.0]  # newest last
    assert len(e.get_recent_updates()) == 10
    assert e.get_recent_updates(0) == []
    change = e.get_recent_changes(1)[0]
    assert change.update.delta == 0.01
    assert change.applied == pytest.approx(0.0008)
    with pytest.raises(InvalidInputError):
        e.get_recent_updates(-1)
    small = WeightEngine(max_history=2)
    for _ in range(3):
        small.apply_update(upd(GA, "loop_risk", 0.1))
    assert len(small.get_recent_changes(10)) == 2


def test_batch_update_sums_and_is_atomic():
    e = WeightEngine()
    result = e.batch_update(
        [upd(GA, "current_progress", 0.2), upd(GA, "current_progress", 0.1), upd("tool_preference", "s", 1.0)]
    )
    assert result == pytest.approx({"goal_alignment.current_progress": 0.3, "tool_preference.s": 0.08})
    before = e.snapshot()
    with pytest.raises(InvalidInputError) as info:
        e.batch_update([upd(GA, "loop_risk", 0.5), {"category": "goal_alignment"}])  # type: ignore[list-item]
    assert info.value.field == "updates[1]"
    assert e.snapshot() == before
    with pytest.raises(InvalidInputError):
        e.apply_update("x")  # type: ignore[arg-type]


def test_consolidate():
    e = WeightEngine()
    e.set_weight("behavioral", "verbosity", 0.04, reason="r")
    e.set_weight("behavioral", "formality", -0.049, reason="r")
    e.set_weight("behavioral", "creativity", 0.05, reason="r")  # not strictly below 0.05
    e.apply_update(upd("behavioral", "risk_tolerance", 0.1))  # m = 0.012, w = 0.012
    momentum = e.snapshot()["momentum"]["risk_tolerance"]
    assert e.consolidate(timestamp=9.0) == 3  # verbosity, formality, risk_tolerance
    values = e.values("behavioral")
    assert (values["verbosity"], values["formality"], values["risk_tolerance"]) == (0.0, 0.0, 0.0)
    assert values["creativity"] == 0.05
    assert e.snapshot()["momentum"]["risk_tolerance"] == momentum * 0.5
    assert {c.update.source for c in e.get_recent_changes(3)} == {"consolidate"}
    assert e.consolidate() == 0  # zeros are not counted again


def test_dynamic_keys_are_bounded_least_recently_written_first():
    e = WeightEngine(max_dynamic_keys=2)
    for name in ("a", "b", "a", "c"):
        e.apply_update(upd("tool_preference", name, 1.0))
    assert list(e.values("tool_preference")) == ["a", "c"]
    assert e.get("tool_preference", "b") == 0.5
    # Fixed keys of user_insights are never evicted; only topics are.
    e.apply_update(upd("user_insights", "topic:x", 1.0))
    e.apply_update(upd("user_insights", "topic:y", 1.0))
    e.apply_update(upd("user_insights", "topic:z", 1.0))
    assert [k for k in e.values("user_insights") if k.startswith("topic:")] == ["topic:y", "topic:z"]
    assert len(e.values("user_insights")) == len(USER_INSIGHT_DEFAULTS) + 2


def test_get_validates():
    e = WeightEngine()
    with pytest.raises(InvalidInputError) as info:
        e.get("weird", "x")
    assert info.value.field == "category"
    with pytest.raises(InvalidInputError) as info:
        e.get("behavioral", "mood")
    assert info.value.field == "key"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_history": 0},
        {"max_history": True},
        {"max_dynamic_keys": 0},
        {"global_enabled": 1},
        {"learning_rates": {"behavioral": 0.1}},
    ],
)
def test_constructor_validation(kwargs):
    with pytest.raises(ConfigurationError):
        WeightEngine(**kwargs)


# -- snapshots -----------------------------------------------------------------------------------


def test_snapshot_roundtrip_and_errors():
    e = WeightEngine(LearningRates(behavioral=0.2), max_history=50, max_dynamic_keys=7, global_enabled=True)
    e.apply_update(upd("behavioral", "autonomy", 0.3))
    e.apply_update(upd("tool_preference", "search", 1.0))
    e.set_goal_metric("loop_risk", 0.4, reason="r")
    snap = e.snapshot()
    assert snap["kind"] == "WeightEngine"
    assert snap["schema"] == 2
    restored = roundtrip(e)
    assert restored.snapshot() == snap
    assert restored.learning_rates.behavioral == 0.2
    assert restored.get_recent_updates(3) == e.get_recent_updates(3)

    def broken(**changes):
        data = json.loads(json.dumps(snap))
        data.update(changes)
        return data

    bad_fixed = json.loads(json.dumps(snap["fixed"]))
    bad_fixed["goal_alignment"]["loop_risk"] = 1.5
    bad_history = [[*snap["history"][0][:-1], "weird"]]  # mode is the last field
    for data in (
        None,
        broken(kind="DualProcessRouter"),
        broken(schema=99),
        broken(fixed=bad_fixed),
        broken(history=bad_history),
        broken(momentum={}),
        broken(dynamic={"tool_preference": [["search", "x"]]}),
        broken(learning_rates={"behavioral": 7}),
        {k: v for k, v in snap.items() if k != "history"},
    ):
        with pytest.raises(SnapshotError):
            WeightEngine.restore(data)  # type: ignore[arg-type]


_KEYS = {
    "behavioral": list(BEHAVIORAL_DEFAULTS)[:4],
    "tool_preference": ["search", "bash", "edit"],
    "model_selection": ["coding/a", "planning/b"],
    "goal_alignment": list(GOAL_ALIGNMENT_KEYS),
    "user_insights": ["technical_depth", "topic:a", "topic:b"],
    "enterprise": ["max_autonomy_level", "safety_strictness"],
    "global": ["g1", "g2"],
}
_deltas = st.floats(-3.0, 3.0, allow_nan=False) | st.sampled_from([0.0, 1e300, -1e300])
_address = st.sampled_from([(c, k) for c, keys in _KEYS.items() for k in keys])
_op = st.one_of(
    st.tuples(st.just("apply"), _address, _deltas),
    st.tuples(st.just("set"), _address, st.floats(0.0, 1.0)),
    st.tuples(st.just("learn"), _address, st.floats(0.0, 1.0)),
    st.tuples(st.just("batch"), st.lists(st.tuples(_address, _deltas), max_size=3), st.none()),
    st.tuples(st.just("consolidate"), st.none(), st.none()),
    st.tuples(st.just("global"), st.none(), st.booleans()),
)


def _run(engine: WeightEngine, op) -> object:
    kind, address, arg = op
    if kind == "apply":
        return engine.apply_update(upd(*address, arg))
    if kind == "set":
        return engine.set_weight(*address, arg, reason="s")
    if kind == "learn":
        return engine.learn_toward(*address, arg, reason="l")
    if kind == "batch":
        return engine.batch_update([upd(*a, d) for a, d in address])
    if kind == "consolidate":
        return engine.consolidate()
    engine.set_global_enabled(arg)
    return None


def _check_ranges(engine: WeightEngine) -> None:
    for cat in WeightCategory:
        low = -1.0 if cat is WeightCategory.BEHAVIORAL else 0.0
        assert all(low <= v <= 1.0 for v in engine.values(cat).values())
    assert all(0.0 <= v <= 1.0 for v in engine.goal_alignment.values())
    assert 0.0 <= engine.get_effective_autonomy() <= 1.0


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(_op, max_size=30), cut=st.integers(0, 30))
def test_restore_and_continue_matches_uninterrupted_run(ops, cut):
    cut = min(cut, len(ops))
    straight = WeightEngine(max_history=20, max_dynamic_keys=2)
    out_straight = [_run(straight, op) for op in ops]
    _check_ranges(straight)
    first = WeightEngine(max_history=20, max_dynamic_keys=2)
    out = [_run(first, op) for op in ops[:cut]]
    resumed = roundtrip(first)
    out += [_run(resumed, op) for op in ops[cut:]]
    assert out == out_straight
    assert resumed.snapshot() == straight.snapshot()
    json.dumps(straight.snapshot())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(GOAL_ALIGNMENT_KEYS), st.floats(0.0, 1.0), st.floats(-1e9, 1e9)),
        max_size=12,
    )
)
def test_trusted_goal_metric_write_records_what_set_goal_metric_records(
    writes: list[tuple[str, float, float]],
) -> None:
    a, b = WeightEngine(max_history=5), WeightEngine(max_history=5)
    for i, (key, value, ts) in enumerate(writes):
        a.set_goal_metric(key, value, reason=f"r{i}", source="goal_tracker", timestamp=ts)
        b._write_goal_metric(key, value, f"r{i}", "goal_tracker", ts)
    assert b.snapshot() == a.snapshot()
    assert b.get_recent_changes(5) == a.get_recent_changes(5)
    assert [type(c.update.delta) for c in b.get_recent_changes(5)] == [float] * min(5, len(writes))
