"""GoalTree: goal -> sub-goals -> steps, with effort-weighted progress (reference section 2.11).

Progress of a node: 1.0 when it is COMPLETE or SKIPPED; else, for a node with children,
``sum(child.progress * child.estimated_effort) / sum(child.estimated_effort)``; else 0.0. The root's
progress is what goalkeeper reports as ``current_progress`` when a tree is in use.

Every node caches its progress as an exact fraction together with the two sums over its children, so
a status change updates its ancestors in O(depth) (each ancestor adjusts its sums by the child's
change) and reading any node's progress, including the root's, is O(1). Exact fractions make the
incremental sums equal to a full recomputation, so a restored tree (which recomputes them) continues
exactly like the original.

Node ids are deterministic: ``"root"`` and then ``"n1"``, ``"n2"``, ... in creation order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from fractions import Fraction
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_count, check_now, check_str, config_int, snapshot_number
from ._snapshot import check_header, header
from ._snapshot import field as snap_field

__all__ = ["GoalNode", "GoalTree", "NodeLevel", "NodeStatus"]

#: A node over its step budget is stuck only while its progress is below this.
STUCK_PROGRESS = 0.8
#: Effort is clamped to this range.
MIN_EFFORT, MAX_EFFORT = 1, 5
ROOT_ID = "root"


class NodeStatus(StrEnum):
    """Lifecycle of a node. COMPLETE, FAILED and SKIPPED are terminal."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETE = "complete"
    BLOCKED = "blocked"
    FAILED = "failed"
    SKIPPED = "skipped"


class NodeLevel(StrEnum):
    """Where a node sits: the goal itself, a sub-goal, or a concrete step."""

    GOAL = "goal"
    SUBGOAL = "subgoal"
    STEP = "step"


_TERMINAL = frozenset({NodeStatus.COMPLETE, NodeStatus.FAILED, NodeStatus.SKIPPED})
_DONE = frozenset({NodeStatus.COMPLETE, NodeStatus.SKIPPED})
_ICONS: Mapping[NodeStatus, str] = {
    NodeStatus.PENDING: "[ ]",
    NodeStatus.ACTIVE: "[>]",
    NodeStatus.COMPLETE: "[x]",
    NodeStatus.BLOCKED: "[B]",
    NodeStatus.FAILED: "[!]",
    NodeStatus.SKIPPED: "[-]",
}


@dataclass(eq=False)
class GoalNode:
    """One node of a :class:`GoalTree`. The tree owns and mutates it; treat it as read-only.

    Attributes:
        node_id: deterministic id (``"root"``, ``"n1"``, ...).
        description: what the node is about.
        level: GOAL, SUBGOAL or STEP.
        success_criteria: how to tell it is done (free text).
        estimated_effort: relative effort 1-5 (its weight in the parent's progress).
        priority: higher first when choosing the next step.
        status: lifecycle status.
        children: ids of the child nodes, in creation order.
        dependencies: ids of nodes that must be COMPLETE before this one can be active.
        step_budget: steps this node may take before it counts as stuck.
        steps_taken: steps recorded on this node or any descendant.
        budget_tokens: token budget of the node (informational; 0 = none).
        artifacts: results attached when completing it.
        created_at: time of creation (seconds).
        completed_at: time it became terminal, if it did.
        error: why it failed, if it did.
        parent_id: id of the parent (``None`` for the root).
        steps_since_progress: steps recorded since its progress last changed.
    """

    node_id: str
    description: str
    level: NodeLevel
    success_criteria: str = ""
    estimated_effort: int = 1
    priority: int = 1
    status: NodeStatus = NodeStatus.PENDING
    children: list[str] = field(default_factory=list)
    dependencies: list[str] = field(default_factory=list)
    step_budget: int = 20
    steps_taken: int = 0
    budget_tokens: int = 0
    artifacts: list[str] = field(default_factory=list)
    created_at: float = 0.0
    completed_at: float | None = None
    error: str | None = None
    parent_id: str | None = None
    steps_since_progress: int = 0
    # Exact caches kept by the tree: sum(child.progress * effort), sum(effort), own progress.
    _weighted: Fraction = field(default=Fraction(0), repr=False)
    _effort: int = field(default=0, repr=False)
    _progress: Fraction = field(default=Fraction(0), repr=False)

    @property
    def progress(self) -> float:
        """Effort-weighted progress in [0, 1] (see the module docstring)."""
        return float(self._progress)

    @property
    def is_leaf(self) -> bool:
        """True when the node has no children."""
        return not self.children

    @property
    def is_terminal(self) -> bool:
        """True when COMPLETE, FAILED or SKIPPED."""
        return self.status in _TERMINAL

    @property
    def is_stuck(self) -> bool:
        """True when it used its step budget (``steps_taken >= step_budget``) with progress < 0.8."""
        return self.steps_taken >= self.step_budget and self.progress < STUCK_PROGRESS

    def _own_progress(self) -> Fraction:
        if self.status in _DONE:
            return Fraction(1)
        return self._weighted / self._effort if self.children else Fraction(0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form with every public field and ``progress``."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        for name in ("children", "dependencies", "artifacts"):
            d[name] = list(d[name])
        return {**d, "level": self.level.value, "status": self.status.value, "progress": self.progress}


def _effort(value: object) -> int:
    n = check_count("effort", value, None)
    return min(MAX_EFFORT, max(MIN_EFFORT, n))


class GoalTree:
    """A goal broken into sub-goals and steps.

    Args:
        goal: the goal text (the root's description).
        success_criteria: how to tell the goal is reached.
        step_budget: the root's step budget (>= 1).
        stuck_threshold: a non-terminal node that took this many steps without its progress changing
            is reported by :meth:`get_stuck_nodes` (>= 1), besides nodes that are :attr:`GoalNode.is_stuck`.

    Raises:
        ConfigurationError: an argument is out of range or of the wrong type.
    """

    KIND = "GoalTree"
    SCHEMA = 1

    def __init__(
        self, goal: str, success_criteria: str = "", step_budget: int = 20, stuck_threshold: int = 5
    ) -> None:
        if not isinstance(goal, str) or not goal.strip():
            raise ConfigurationError("goal must be a non-empty string")
        if not isinstance(success_criteria, str):
            raise ConfigurationError("success_criteria must be a string")
        self._stuck_threshold = config_int("stuck_threshold", stuck_threshold, 1)
        root = GoalNode(ROOT_ID, goal, NodeLevel.GOAL, success_criteria)
        root.step_budget = config_int("step_budget", step_budget, 1)
        self._nodes: dict[str, GoalNode] = {ROOT_ID: root}
        self._counter = 0
        self._last_ts = 0.0
        # Reverse dependency index, so completing a node unblocks its dependents without a scan.
        self._dependents: dict[str, list[str]] = {}

    # -- reading ------------------------------------------------------------------------------

    @property
    def root(self) -> GoalNode:
        """The goal node."""
        return self._nodes[ROOT_ID]

    @property
    def progress(self) -> float:
        """The root's progress (O(1))."""
        return self.root.progress

    @property
    def total_nodes(self) -> int:
        """Number of nodes, the root included."""
        return len(self._nodes)

    def get_node(self, node_id: str) -> GoalNode | None:
        """The node with this id, or ``None``."""
        return self._nodes.get(node_id)

    def _node(self, node_id: object, name: str = "node_id") -> GoalNode:
        node = self._nodes.get(node_id) if isinstance(node_id, str) else None
        if node is None:
            raise InvalidInputError(f"no node with id {node_id!r}", field=name)
        return node

    # -- building -----------------------------------------------------------------------------

    def add_subgoal(
        self,
        description: str,
        success_criteria: str = "",
        effort: int = 1,
        priority: int = 1,
        step_budget: int = 20,
        dependencies: Sequence[str] | None = None,
        *,
        now: float | None = None,
    ) -> str:
        """Add a sub-goal under the root and return its id (effort is clamped to 1-5).

        Raises:
            InvalidInputError: a bad field, or a dependency id that does not exist (``dependencies``).
        """
        return self._add(
            self.root, NodeLevel.SUBGOAL, description, success_criteria, effort, priority, step_budget,
            dependencies, now,
        )  # fmt: skip

    def add_step(
        self,
        parent_id: str,
        description: str,
        success_criteria: str = "",
        effort: int = 1,
        dependencies: Sequence[str] | None = None,
        *,
        priority: int = 1,
        step_budget: int = 20,
        now: float | None = None,
    ) -> str:
        """Add a step under ``parent_id`` and return its id.

        Raises:
            InvalidInputError: ``parent_id`` does not exist (``.field == "parent_id"``), or another
                field is bad.
        """
        parent = self._node(parent_id, "parent_id")
        return self._add(
            parent, NodeLevel.STEP, description, success_criteria, effort, priority, step_budget,
            dependencies, now,
        )  # fmt: skip

    def _add(
        self,
        parent: GoalNode,
        level: NodeLevel,
        description: object,
        success_criteria: object,
        effort: object,
        priority: object,
        step_budget: object,
        dependencies: Sequence[str] | None,
        now: object,
    ) -> str:
        desc = check_str("description", description)
        if not desc.strip():
            raise InvalidInputError("must not be empty", field="description")
        crit = check_str("success_criteria", success_criteria)
        eff = _effort(effort)
        prio = check_count("priority", priority, None)
        budget = check_count("step_budget", step_budget, 1)
        deps = [] if dependencies is None else list(dependencies)
        if isinstance(dependencies, str):
            raise InvalidInputError("must be a list of node ids", field="dependencies")
        for dep in deps:
            self._node(dep, "dependencies")
        ts = self._clock(check_now(now))
        self._counter += 1
        node = GoalNode(
            f"n{self._counter}", desc, level, crit, eff, prio, step_budget=budget, created_at=ts,
            dependencies=deps, parent_id=parent.node_id,
        )  # fmt: skip
        self._nodes[node.node_id] = node
        for dep in deps:
            self._dependents.setdefault(dep, []).append(node.node_id)
        parent.children.append(node.node_id)
        parent._effort += eff
        self._refresh(parent)
        return node.node_id

    # -- lifecycle ----------------------------------------------------------------------------

    def activate_node(self, node_id: str, *, now: float | None = None) -> NodeStatus:
        """Make a node ACTIVE, or BLOCKED when a dependency is not COMPLETE; return the new status.

        COMPLETE and SKIPPED nodes are left as they are; a FAILED node can be activated again (retry).
        """
        node = self._node(node_id)
        self._clock(check_now(now))
        if node.status not in _DONE:
            ready = all(self._nodes[d].status is NodeStatus.COMPLETE for d in node.dependencies)
            self._set_status(node, NodeStatus.ACTIVE if ready else NodeStatus.BLOCKED)
        return node.status

    def complete_node(self, node_id: str, artifact: str | None = None, *, now: float | None = None) -> None:
        """Mark a node COMPLETE (attaching ``artifact``), unblock its dependents, and complete each
        ancestor whose children are then all terminal with at least one COMPLETE."""
        node = self._node(node_id)
        if artifact is not None:
            node.artifacts.append(check_str("artifact", artifact))
        self._finish(node, NodeStatus.COMPLETE, check_now(now))

    def fail_node(self, node_id: str, error: str = "", *, now: float | None = None) -> None:
        """Mark a node FAILED with an error message."""
        node = self._node(node_id)
        node.error = check_str("error", error)
        self._finish(node, NodeStatus.FAILED, check_now(now))

    def skip_node(self, node_id: str, *, now: float | None = None) -> None:
        """Mark a node SKIPPED (it counts as done for progress)."""
        self._finish(self._node(node_id), NodeStatus.SKIPPED, check_now(now))

    def record_step(self, node_id: str) -> GoalNode:
        """Count one step spent on a node; it is also spent on every ancestor (O(depth))."""
        first = self._node(node_id)
        node: GoalNode | None = first
        while node is not None:
            node.steps_taken += 1
            node.steps_since_progress += 1
            node = self._nodes.get(node.parent_id) if node.parent_id else None
        return first

    def _finish(self, node: GoalNode, status: NodeStatus, now: float | None) -> None:
        ts = self._clock(now)
        self._set_status(node, status)
        node.completed_at = ts
        if status is NodeStatus.COMPLETE:
            for dep_id in self._dependents.get(node.node_id, ()):
                dep = self._nodes[dep_id]
                if dep.status is NodeStatus.BLOCKED and all(
                    self._nodes[d].status is NodeStatus.COMPLETE for d in dep.dependencies
                ):
                    self._set_status(dep, NodeStatus.PENDING)
        parent = self._nodes.get(node.parent_id) if node.parent_id else None
        if parent is not None and not parent.is_terminal:
            kids = [self._nodes[c] for c in parent.children]
            if all(k.is_terminal for k in kids) and any(k.status is NodeStatus.COMPLETE for k in kids):
                self._finish(parent, NodeStatus.COMPLETE, ts)

    def _set_status(self, node: GoalNode, status: NodeStatus) -> None:
        node.status = status
        self._refresh(node)

    def _refresh(self, node: GoalNode | None) -> None:
        """Recompute a node's progress and push the change up its ancestors."""
        while node is not None:
            new = node._own_progress()
            delta = new - node._progress
            if not delta:
                return
            node._progress = new
            if delta > 0:  # added work lowers progress; that is no reason to call a node unstuck
                node.steps_since_progress = 0
            parent = self._nodes.get(node.parent_id) if node.parent_id else None
            if parent is not None:
                parent._weighted += delta * node.estimated_effort
            node = parent

    def _clock(self, now: float | None) -> float:
        if now is not None:
            self._last_ts = now
        return self._last_ts

    # -- queries ------------------------------------------------------------------------------

    def _walk(self) -> Iterable[tuple[int, GoalNode]]:
        stack = [(0, self.root)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, self._nodes[c]) for c in reversed(node.children))

    def get_active_subgoal(self) -> GoalNode | None:
        """The first ACTIVE child of the root, else the first PENDING one, else ``None``."""
        kids = [self._nodes[c] for c in self.root.children]
        for status in (NodeStatus.ACTIVE, NodeStatus.PENDING):
            for k in kids:
                if k.status is status:
                    return k
        return None

    def get_next_pending_step(self) -> GoalNode | None:
        """The first PENDING step whose dependencies are all COMPLETE, visiting parents by priority
        (highest first; creation order among equals) and steps in creation order."""

        def visit(node: GoalNode) -> GoalNode | None:
            kids = [self._nodes[c] for c in node.children]
            for k in kids:
                if (
                    k.level is NodeLevel.STEP
                    and k.status is NodeStatus.PENDING
                    and all(self._nodes[d].status is NodeStatus.COMPLETE for d in k.dependencies)
                ):
                    return k
            for k in sorted((k for k in kids if k.children), key=lambda n: -n.priority):
                found = visit(k)
                if found is not None:
                    return found
            return None

        return visit(self.root)

    def get_stuck_nodes(self) -> list[GoalNode]:
        """Non-terminal nodes that are :attr:`~GoalNode.is_stuck` or took ``stuck_threshold`` steps
        without their progress changing."""
        return [
            n
            for _, n in self._walk()
            if not n.is_terminal and (n.is_stuck or n.steps_since_progress >= self._stuck_threshold)
        ]

    def get_blocked_nodes(self) -> list[GoalNode]:
        """Nodes whose status is BLOCKED."""
        return [n for _, n in self._walk() if n.status is NodeStatus.BLOCKED]

    def get_summary(self) -> dict[str, Any]:
        """Goal, progress, node counts by status, stuck and blocked node ids, active sub-goal id."""
        counts = {s.value: 0 for s in NodeStatus}
        for n in self._nodes.values():
            counts[n.status.value] += 1
        active = self.get_active_subgoal()
        return {
            "goal": self.root.description,
            "progress": self.progress,
            "total_nodes": self.total_nodes,
            "status_counts": counts,
            "stuck": [n.node_id for n in self.get_stuck_nodes()],
            "blocked": [n.node_id for n in self.get_blocked_nodes()],
            "active_subgoal": active.node_id if active else None,
        }

    def to_display(self) -> str:
        """The tree as indented lines: ``[x] description (67%)`` with icons [ ] [>] [x] [B] [!] [-]."""
        return "\n".join(
            f"{'  ' * depth}{_ICONS[n.status]} {n.description} ({n.progress:.0%})"
            for depth, n in self._walk()
        )

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state (nodes in creation order; cached progress is recomputed on restore)."""
        nodes = []
        for n in self._nodes.values():
            d = n.to_dict()
            del d["progress"]
            nodes.append(d)
        return {
            **header(self.KIND, self.SCHEMA),
            "stuck_threshold": self._stuck_threshold,
            "counter": self._counter,
            "last_ts": self._last_ts,
            "nodes": nodes,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a tree from :meth:`snapshot` output.

        Raises:
            SnapshotError: wrong kind or schema, or a missing, malformed or inconsistent field.
        """
        k = cls.KIND
        d = check_header(data, k, (cls.SCHEMA,))
        raw = snap_field(d, "nodes", list, k)
        try:
            nodes = [_node_from_dict(x) for x in raw]
            if not nodes or nodes[0].node_id != ROOT_ID:
                raise SnapshotError(f"{k} snapshot must start with the root node")
            obj = cls(nodes[0].description, nodes[0].success_criteria, nodes[0].step_budget,
                      snap_field(d, "stuck_threshold", int, k))  # fmt: skip
            obj._nodes = {n.node_id: n for n in nodes}
            index = {n.node_id: i for i, n in enumerate(nodes)}
            for i, n in enumerate(nodes):
                for ref in (*n.children, *n.dependencies, *([n.parent_id] if n.parent_id else [])):
                    if ref not in obj._nodes:
                        raise SnapshotError(f"{k} snapshot: node {n.node_id} refers to unknown {ref!r}")
                if any(index[c] <= i or obj._nodes[c].parent_id != n.node_id for c in n.children):
                    raise SnapshotError(f"{k} snapshot: children of {n.node_id} are inconsistent")
                for dep in n.dependencies:
                    obj._dependents.setdefault(dep, []).append(n.node_id)
            # Children are created after their parents, so a reverse pass computes every cache
            # from already-final children.
            for n in reversed(nodes):
                kids = [obj._nodes[c] for c in n.children]
                n._effort = sum(c.estimated_effort for c in kids)
                n._weighted = sum((c._progress * c.estimated_effort for c in kids), Fraction(0))
                n._progress = n._own_progress()
            obj._counter = snap_field(d, "counter", int, k)
            obj._last_ts = snapshot_number(snap_field(d, "last_ts", float, k))
        except SnapshotError:
            raise
        except (InvalidInputError, ValueError, TypeError, AttributeError, KeyError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc}") from exc
        return obj


_NODE_SCALARS = (
    ("node_id", str), ("description", str), ("success_criteria", str), ("priority", int),
    ("step_budget", int), ("steps_taken", int), ("budget_tokens", int), ("steps_since_progress", int),
)  # fmt: skip


def _node_from_dict(x: Mapping[str, Any]) -> GoalNode:
    k = "GoalNode"
    kw: dict[str, Any] = {name: snap_field(x, name, typ, k) for name, typ in _NODE_SCALARS}
    for name in ("children", "dependencies", "artifacts"):
        kw[name] = [check_str(name, v) for v in snap_field(x, name, list, k)]
    for name in ("error", "parent_id"):
        v = x.get(name)
        kw[name] = None if v is None else check_str(name, v)
    done = x.get("completed_at")
    return GoalNode(
        **kw,
        level=NodeLevel(snap_field(x, "level", str, k)),
        status=NodeStatus(snap_field(x, "status", str, k)),
        estimated_effort=_effort(snap_field(x, "estimated_effort", int, k)),
        created_at=snapshot_number(snap_field(x, "created_at", float, k)),
        completed_at=None if done is None else snapshot_number(done),
    )
