"""Tests for core/goal_tree.py: GoalTree, GoalNode, effort-weighted progress (reference 2.11)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import goal_tree as gt
from goalkeeper.core.goal_tree import GoalNode, GoalTree, NodeLevel, NodeStatus
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError


def reference_shape() -> tuple[GoalTree, str, str, list[str]]:
    """The reference example's shape: auth (effort 3) with three steps, two done; other (effort 2)."""
    t = GoalTree("Ship the login feature")
    auth = t.add_subgoal("auth", effort=3)
    other = t.add_subgoal("docs", effort=2)
    steps = [t.add_step(auth, f"step {i}") for i in range(3)]
    t.complete_node(steps[0])
    t.complete_node(steps[1])
    return t, auth, other, steps


def test_enums_and_constants() -> None:
    assert [s.value for s in NodeStatus] == ["pending", "active", "complete", "blocked", "failed", "skipped"]
    assert [lv.value for lv in NodeLevel] == ["goal", "subgoal", "step"]
    assert gt.STUCK_PROGRESS == 0.8
    assert (gt.MIN_EFFORT, gt.MAX_EFFORT) == (1, 5)
    t = GoalTree("g")
    assert t.root.step_budget == 20
    assert t.snapshot()["stuck_threshold"] == 5


def test_effort_weighted_progress_follows_the_formula_not_the_display_examples() -> None:
    # Reference 4.3 item 6: its display shows 50% / 33%; the formula gives 2/3 and 0.4.
    t, auth, other, _steps = reference_shape()
    assert t.get_node(auth).progress == pytest.approx(2 / 3)  # type: ignore[union-attr]
    assert t.progress == pytest.approx((2 / 3 * 3 + 0 * 2) / 5) == pytest.approx(0.4)
    assert t.to_display().splitlines() == [
        "[ ] Ship the login feature (40%)",
        "  [ ] auth (67%)",
        "    [x] step 0 (100%)",
        "    [x] step 1 (100%)",
        "    [ ] step 2 (0%)",
        "  [ ] docs (0%)",
    ]
    t.skip_node(other)
    assert t.progress == pytest.approx((2 / 3 * 3 + 1 * 2) / 5)


def test_leaf_progress_and_auto_completion() -> None:
    t, auth, other, steps = reference_shape()
    t.fail_node(steps[2], "timeout", now=5.0)
    node = t.get_node(auth)
    assert node is not None
    # All children terminal and at least one COMPLETE: the parent completes (and counts 1.0).
    assert node.status is NodeStatus.COMPLETE
    assert node.completed_at == 5.0
    assert t.get_node(steps[2]).error == "timeout"  # type: ignore[union-attr]
    assert t.progress == pytest.approx(3 / 5)
    t.complete_node(other, artifact="README")
    assert t.root.status is NodeStatus.COMPLETE
    assert t.progress == 1.0
    assert t.get_node(other).artifacts == ["README"]  # type: ignore[union-attr]


def test_all_failed_children_do_not_complete_the_parent() -> None:
    t = GoalTree("g")
    sg = t.add_subgoal("s")
    a, b = t.add_step(sg, "a"), t.add_step(sg, "b")
    t.fail_node(a)
    t.skip_node(b)
    assert t.get_node(sg).status is NodeStatus.PENDING  # type: ignore[union-attr]
    assert t.get_node(sg).progress == 0.5  # type: ignore[union-attr]


def test_effort_is_clamped() -> None:
    t = GoalTree("g")
    assert t.get_node(t.add_subgoal("big", effort=9)).estimated_effort == 5  # type: ignore[union-attr]
    assert t.get_node(t.add_subgoal("tiny", effort=-2)).estimated_effort == 1  # type: ignore[union-attr]


def test_ids_are_deterministic() -> None:
    t = GoalTree("g")
    assert t.root.node_id == "root"
    assert [t.add_subgoal("a"), t.add_subgoal("b"), t.add_step("n1", "c")] == ["n1", "n2", "n3"]
    assert t.total_nodes == 4
    assert t.get_node("n3").level is NodeLevel.STEP  # type: ignore[union-attr]
    assert t.get_node("missing") is None


def test_unknown_parent_or_dependency_is_an_input_error() -> None:
    t = GoalTree("g")
    with pytest.raises(InvalidInputError) as e1:
        t.add_step("n99", "x")
    assert e1.value.field == "parent_id"
    with pytest.raises(InvalidInputError) as e2:
        t.add_subgoal("x", dependencies=["n42"])
    assert e2.value.field == "dependencies"
    with pytest.raises(InvalidInputError) as e3:
        t.complete_node("nope")
    assert e3.value.field == "node_id"
    assert t.total_nodes == 1


def test_dependencies_block_and_unblock() -> None:
    t = GoalTree("g")
    a = t.add_subgoal("a")
    b = t.add_subgoal("b", dependencies=[a])
    assert t.activate_node(b) is NodeStatus.BLOCKED
    assert [n.node_id for n in t.get_blocked_nodes()] == [b]
    t.complete_node(a)
    # Completing the last dependency puts a blocked node back to PENDING.
    assert t.get_node(b).status is NodeStatus.PENDING  # type: ignore[union-attr]
    assert t.activate_node(b) is NodeStatus.ACTIVE
    assert t.activate_node(a) is NodeStatus.COMPLETE  # done nodes stay done
    t.fail_node(b)
    assert t.activate_node(b) is NodeStatus.ACTIVE  # retry after failure


def test_active_subgoal_and_next_pending_step() -> None:
    t = GoalTree("g")
    low = t.add_subgoal("low", priority=1)
    high = t.add_subgoal("high", priority=5)
    s_low = t.add_step(low, "l1")
    s_high1 = t.add_step(high, "h1")
    s_high2 = t.add_step(high, "h2", dependencies=[s_high1])
    assert t.get_active_subgoal().node_id == low  # type: ignore[union-attr]
    t.activate_node(high)
    assert t.get_active_subgoal().node_id == high  # type: ignore[union-attr]
    assert t.get_next_pending_step().node_id == s_high1  # type: ignore[union-attr]
    t.complete_node(s_high1)
    assert t.get_next_pending_step().node_id == s_high2  # type: ignore[union-attr]
    t.complete_node(s_high2)
    assert t.get_next_pending_step().node_id == s_low  # type: ignore[union-attr]
    t.complete_node(s_low)
    assert t.get_next_pending_step() is None
    assert t.get_active_subgoal() is None


def test_stuck_by_budget_and_by_threshold() -> None:
    t = GoalTree("g", stuck_threshold=3)
    sg = t.add_subgoal("s", step_budget=4)
    st1 = t.add_step(sg, "a")
    t.add_step(sg, "b")
    for _ in range(2):
        t.record_step(st1)
    assert t.get_stuck_nodes() == []
    t.record_step(st1)
    # Three steps without progress: the step, its sub-goal and the root are all stuck.
    assert [n.node_id for n in t.get_stuck_nodes()] == ["root", sg, st1]
    t.complete_node(st1)
    assert t.get_node(sg).steps_since_progress == 0  # type: ignore[union-attr]
    assert t.get_node(sg).progress == 0.5  # type: ignore[union-attr]
    t.record_step(sg)
    node = t.get_node(sg)
    assert node is not None
    assert node.steps_taken == 4
    assert node.is_stuck  # over budget and below 0.8
    assert t.root.steps_taken == 4
    assert [n.node_id for n in t.get_stuck_nodes()] == [sg]


def test_is_stuck_needs_progress_below_08() -> None:
    node = GoalNode("x", "d", NodeLevel.STEP, step_budget=1, steps_taken=1)
    assert node.is_stuck
    node._progress = Fraction(4, 5)
    assert not node.is_stuck
    assert node.is_leaf
    assert not node.is_terminal


def test_summary_and_to_dict() -> None:
    t, auth, _other, steps = reference_shape()
    s = t.get_summary()
    assert s["progress"] == pytest.approx(0.4)
    assert s["status_counts"]["complete"] == 2
    assert s["status_counts"]["pending"] == 4
    assert s["total_nodes"] == 6
    assert s["active_subgoal"] == auth
    d = t.get_node(auth).to_dict()  # type: ignore[union-attr]
    assert d["children"] == steps
    assert d["progress"] == pytest.approx(2 / 3)
    assert json.dumps(d)
    assert len({k for k in d if k != "progress"}) == 18


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"description": ""}, "description"),
        ({"description": 3}, "description"),
        ({"effort": 1.5}, "effort"),
        ({"priority": "high"}, "priority"),
        ({"step_budget": 0}, "step_budget"),
        ({"dependencies": "n1"}, "dependencies"),
        ({"now": float("nan")}, "now"),
    ],
)
def test_bad_node_fields(kwargs: dict[str, object], field: str) -> None:
    t = GoalTree("g")
    args: dict[str, object] = {"description": "x", **kwargs}
    with pytest.raises(InvalidInputError) as exc:
        t.add_subgoal(**args)  # type: ignore[arg-type]
    assert exc.value.field == field
    assert t.total_nodes == 1


@pytest.mark.parametrize(
    "kwargs", [{"goal": ""}, {"success_criteria": 1}, {"step_budget": 0}, {"stuck_threshold": 0}]
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        GoalTree(**{"goal": "g", **kwargs})  # type: ignore[arg-type]


def test_snapshot_errors() -> None:
    t, *_ = reference_shape()
    snap = t.snapshot()
    nodes = snap["nodes"]
    for bad in (
        {**snap, "kind": "X"},
        {**snap, "schema": 0},
        {**snap, "nodes": []},
        {**snap, "nodes": nodes[1:]},
        {**snap, "nodes": [*nodes[:-1], {**nodes[-1], "status": "weird"}]},
        {**snap, "nodes": [*nodes[:-1], {**nodes[-1], "dependencies": ["zz"]}]},
        {**snap, "nodes": [{**nodes[0], "children": ["n1", "n3"]}, *nodes[1:]]},
        {k: v for k, v in snap.items() if k != "counter"},
    ):
        with pytest.raises(SnapshotError):
            GoalTree.restore(bad)


# -- properties ---------------------------------------------------------------------------------

node_ref = st.integers(0, 12)
ops = st.one_of(
    st.tuples(st.just("sub"), st.integers(-1, 7), st.integers(0, 3), st.lists(node_ref, max_size=2)),
    st.tuples(st.just("step"), node_ref, st.integers(1, 5), st.lists(node_ref, max_size=2)),
    st.tuples(st.sampled_from(["activate", "complete", "fail", "skip", "record"]), node_ref),
)


def apply(t: GoalTree, op: tuple[object, ...], now: float) -> object:
    ids = [t.root.node_id, *(f"n{i}" for i in range(1, t.total_nodes))]

    def pick(i: object) -> str:
        return ids[int(i) % len(ids)]  # type: ignore[call-overload]

    if op[0] == "sub":
        deps = [pick(i) for i in op[3]]  # type: ignore[attr-defined]
        return t.add_subgoal("sub", effort=op[1], priority=op[2], dependencies=deps, now=now)  # type: ignore[arg-type]
    if op[0] == "step":
        deps = [pick(i) for i in op[3]]  # type: ignore[attr-defined]
        return t.add_step(pick(op[1]), "step", effort=op[2], dependencies=deps, now=now)  # type: ignore[arg-type]
    target = pick(op[1])
    if op[0] == "activate":
        return t.activate_node(target, now=now)
    if op[0] == "complete":
        t.complete_node(target, artifact="a", now=now)
    elif op[0] == "fail":
        t.fail_node(target, "e", now=now)
    elif op[0] == "skip":
        t.skip_node(target, now=now)
    else:
        return t.record_step(target).node_id
    return t.get_node(target).status  # type: ignore[union-attr]


def full_recompute(t: GoalTree, node: GoalNode) -> Fraction:
    if node.status in (NodeStatus.COMPLETE, NodeStatus.SKIPPED):
        return Fraction(1)
    if not node.children:
        return Fraction(0)
    kids = [t.get_node(c) for c in node.children]
    return sum((full_recompute(t, k) * k.estimated_effort for k in kids if k), Fraction(0)) / sum(
        k.estimated_effort for k in kids if k
    )


@settings(max_examples=150, deadline=None)
@given(seq=st.lists(ops, max_size=30))
def test_cached_progress_equals_full_recomputation_and_stays_in_range(seq: list[tuple[object, ...]]) -> None:
    t = GoalTree("g", stuck_threshold=2)
    for i, op in enumerate(seq):
        apply(t, op, float(i))
        assert 0.0 <= t.progress <= 1.0
    for nid in [t.root.node_id, *(f"n{i}" for i in range(1, t.total_nodes))]:
        node = t.get_node(nid)
        assert node is not None
        assert node._progress == full_recompute(t, node)
        assert 0.0 <= node.progress <= 1.0


@settings(max_examples=120, deadline=None)
@given(seq=st.lists(ops, max_size=30), cut=st.integers(0, 30))
def test_restore_and_continue_matches_uninterrupted(seq: list[tuple[object, ...]], cut: int) -> None:
    a, b = GoalTree("g", stuck_threshold=2), GoalTree("g", stuck_threshold=2)
    out_a = [apply(a, op, float(i)) for i, op in enumerate(seq)]
    cut = min(cut, len(seq))
    out_b = [apply(b, op, float(i)) for i, op in enumerate(seq[:cut])]
    b = GoalTree.restore(json.loads(json.dumps(b.snapshot())))
    out_b += [apply(b, op, float(i)) for i, op in enumerate(seq) if i >= cut]
    assert out_a == out_b
    assert a.snapshot() == b.snapshot()
    assert a.get_summary() == b.get_summary()
    assert a.to_display() == b.to_display()
