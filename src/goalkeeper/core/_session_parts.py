"""Value types and helpers of :mod:`goalkeeper.core.session`: the outcome of an event, event checks,
metric readings and the duplicate-event window.

Nothing here changes a session; :class:`~goalkeeper.core.session.GoalSession` composes these.
"""

from __future__ import annotations

import base64
import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from ..errors import InvalidInputError, SnapshotError
from ._checks import check_count, check_str, clip01
from ._snapshot import field
from .budget import BudgetDecision, BudgetState
from .decision import PRECEDENCE, REFERENCE_PRECEDENCE, Action
from .feedback_strategies import FEEDBACK_KEY, GoalTarget, as_number, parse_outcome
from .loops import Escalation
from .model import (
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
    SubGoalStatus,
    Suggestion,
    SuggestionKind,
)
from .routing import ProcessType
from .text import stable_hash
from .tracker import StepVerification

__all__ = [
    "DEDUP_WINDOW",
    "ERROR_TEXT_LIMIT",
    "ESTIMATOR_WINDOW",
    "LOOP_RULES",
    "MAX_SUBGOALS",
    "METRIC_HISTORY",
    "SYSTEM2_ESCALATE_AFTER",
    "UNLIMITED_STEPS",
    "UNLIMITED_TOKENS",
    "Announcer",
    "EventIdWindow",
    "GoalChange",
    "MetricReadings",
    "Outcome",
    "Pending",
    "ProgressSource",
    "SessionMetrics",
    "SubgoalChange",
    "check_event",
    "check_feedback",
    "check_goal",
    "check_subgoal",
]

#: Event ids remembered for duplicate detection (0 turns it off). The durable inbox of a store is the
#: real guard; this window catches an immediate redelivery without a store round trip.
DEDUP_WINDOW = 64
#: Measurements the feedback loop retains (its trend needs two; progress uses our own baselines).
METRIC_HISTORY = 32
#: Records a session keeps of its audit trails: the weight engine's metric changes and the drift
#: engine's assessments (the reference sizes are 1,000 and 100). Each step writes three metric
#: changes and one assessment; at the reference sizes a long-lived goal's snapshot grows past 250 KB
#: and a worker pays for encoding it on every commit. The per-event record of a served goal is the
#: store's metrics history, so the snapshot only needs the recent tail.
AUDIT_HISTORY = 24
#: Steps the progress estimator's velocity is averaged over.
ESTIMATOR_WINDOW = 10
#: Consecutive System 2 routings after which the session escalates (once per streak).
SYSTEM2_ESCALATE_AFTER = 5
#: Sub-goals one session tracks (the TaskState limit, so the two never disagree).
MAX_SUBGOALS = 100
#: Characters of a step's error text kept in the TaskState's error patterns.
ERROR_TEXT_LIMIT = 200
#: Stand-ins for "not limited" in an AdaptiveBudget, which needs numbers: never reached in practice.
UNLIMITED_STEPS = 10**9
UNLIMITED_TOKENS = 10**15
#: Precedence rules that a loop fires. While the loop ladder is up these rules are one state per
#: escalation level (``loop:<level>``), so a loop is announced again only when it escalates.
LOOP_RULES: frozenset[str] = frozenset(
    {PRECEDENCE[0][1], PRECEDENCE[1][1], PRECEDENCE[7][1], REFERENCE_PRECEDENCE[0][1]}
)


class ProgressSource(StrEnum):
    """Where ``current_progress`` comes from, best first."""

    METRICS = "metrics"  #: the goal's numeric/boolean targets and the readings of metrics events
    SUBGOALS = "subgoals"  #: the share of sub-goals done or skipped
    STEPS = "steps"  #: the tracker's own estimate (plan steps or velocity)


@dataclass(frozen=True, slots=True)
class SessionMetrics:
    """Where a goal stands after an event.

    Attributes:
        current_progress: in [0, 1], from :attr:`progress_source`.
        drift_score: in [0, 1] (0.0 until a goal is set: nothing to drift from).
        loop_risk: in [0, 1].
        progress_percentage: ``100 * current_progress`` (the TaskState scale).
        stall_turns: consecutive steps without progress (tracker).
        steps: steps applied so far.
        tokens: tokens the steps reported.
        velocity: progress per step over the last :data:`ESTIMATOR_WINDOW` steps, >= 0.
        escalation: the loop ladder's level.
        progress_source: see :class:`ProgressSource`.
        budget: the last budget decision, or ``None`` without a budget.
        failure_risk: in [0, 1], how likely the run is to end without reaching its goal: the goal's
            complexity prior and the peak drift and loop risk so far, combined as a noisy-OR (see
            :mod:`~goalkeeper.core.failure_risk`). A ranking signal for triage; it does not change
            the recommended action. 0.0 before a goal is set.
    """

    current_progress: float
    drift_score: float
    loop_risk: float
    progress_percentage: float
    stall_turns: int
    steps: int
    tokens: int
    velocity: float
    escalation: Escalation
    progress_source: ProgressSource
    budget: BudgetDecision | None = None
    failure_risk: float = 0.0

    def alignment(self) -> dict[str, float]:
        """The goal-alignment metrics a suggestion carries."""
        return {
            "current_progress": self.current_progress,
            "drift_score": self.drift_score,
            "loop_risk": self.loop_risk,
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-able dict (enums as their values)."""
        values = ((name, getattr(self, name)) for name in self.__dataclass_fields__)
        return {name: v.value if isinstance(v, StrEnum) else v for name, v in values}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What applying one event did.

    Attributes:
        goal_id: the goal.
        event_id: the event's id (may be empty when the event had none).
        event_type: the event's type.
        version: the session's state version after the event (unchanged for a duplicate).
        applied: the event changed the state (False for a duplicate).
        duplicate: the event id was applied before; nothing changed.
        metrics: where the goal stands now.
        recommended_action: ``continue``, ``adjust``, ``replan`` or ``abort`` (the standing advice).
        routing: System 1 or System 2 for the next step.
        suggestions: what the event warrants, in rule order (empty when nothing changed).
        verification: the tracker's verdict when the event was a step after a goal was set.
    """

    goal_id: str
    event_id: str
    event_type: EventType
    version: int
    applied: bool
    duplicate: bool
    metrics: SessionMetrics
    recommended_action: Action
    routing: ProcessType
    suggestions: tuple[Suggestion, ...] = ()
    verification: StepVerification | None = None

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-able dict."""
        return {
            "goal_id": self.goal_id,
            "event_id": self.event_id,
            "event_type": self.event_type.value,
            "version": self.version,
            "applied": self.applied,
            "duplicate": self.duplicate,
            "metrics": self.metrics.to_dict(),
            "recommended_action": self.recommended_action,
            "routing": self.routing.value,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "verification": None if self.verification is None else self.verification.to_dict(),
        }


# -- event checks -----------------------------------------------------------------------------------

_EVENTS = (
    GoalEvent,
    StepEvent,
    MessageEvent,
    MetricsEvent,
    SubgoalEvent,
    FeedbackEvent,
    ContextCompressedEvent,
)


def check_event(event: object, goal_id: str) -> EventType:
    """Check the fields every event has and return its type.

    Raises:
        InvalidInputError: not a core event (``type``), another goal's event (``goal_id``), a
            non-string ``event_id``, or a ``ts`` that is not a finite number or None.
    """
    if not isinstance(event, _EVENTS):
        names = ", ".join(t.__name__ for t in _EVENTS)
        raise InvalidInputError(f"must be one of {names}, got {type(event).__name__}", field="type")
    gid = getattr(event, "goal_id", None)
    if gid != goal_id:
        raise InvalidInputError(f"event for goal {gid!r} sent to the session of {goal_id!r}", field="goal_id")
    check_str("event_id", getattr(event, "event_id", None))
    ts = getattr(event, "ts", None)
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts)):
        raise InvalidInputError(f"must be a finite number of seconds or null, got {ts!r}", field="ts")
    return event.type


@dataclass(frozen=True, slots=True)
class GoalChange:
    """A validated goal event: ``None`` (or an empty value) means "not given, keep what is there"."""

    description: str | None
    plan: list[str] | None
    targets_given: bool
    budget: tuple[int | None, int | None] | None


def check_goal(event: GoalEvent) -> GoalChange:
    """Validate the goal event's own fields (``goal_state``/``directions`` are parsed by the caller).

    Raises:
        InvalidInputError: naming ``description``, ``goal_state``, ``directions``, ``plan``,
            ``plan[i]``, ``budget``, ``budget.steps`` or ``budget.tokens``.
    """
    desc = check_str("description", event.description).strip()
    for name in ("goal_state", "directions"):
        value = getattr(event, name)
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"must be an object, got {type(value).__name__}", field=name)
    plan: list[str] | None = None
    if event.plan is not None:
        if isinstance(event.plan, str) or not isinstance(event.plan, Sequence):
            raise InvalidInputError("must be a list of step texts", field="plan")
        plan = [check_str(f"plan[{i}]", s) for i, s in enumerate(event.plan)]
    budget = event.budget
    spec: tuple[int | None, int | None] | None = None
    if budget is not None:
        if not isinstance(budget, Budget):
            raise InvalidInputError(f"must be a Budget, got {type(budget).__name__}", field="budget")
        steps = None if budget.steps is None else check_count("budget.steps", budget.steps, 1)
        tokens = None if budget.tokens is None else check_count("budget.tokens", budget.tokens, 1)
        spec = (steps, tokens)
    return GoalChange(desc or None, plan, bool(event.goal_state or event.directions), spec)


@dataclass(frozen=True, slots=True)
class SubgoalChange:
    """A validated sub-goal event: its key (id, else description), its label and its status."""

    key: str
    label: str
    status: SubGoalStatus


def check_subgoal(event: SubgoalEvent) -> SubgoalChange:
    """Validate a sub-goal event.

    Raises:
        InvalidInputError: ``id``/``description`` not strings or both empty (``id``), or an unknown
            ``status``.
    """
    sid = "" if event.id is None else check_str("id", event.id).strip()
    desc = "" if event.description is None else check_str("description", event.description).strip()
    if not sid and not desc:
        raise InvalidInputError("a sub-goal needs an id or a description", field="id")
    status = event.status
    if not isinstance(status, str) or status not in SubGoalStatus.__members__.values():
        known = ", ".join(s.value for s in SubGoalStatus)
        raise InvalidInputError(f"must be one of {known}, got {status!r}", field="status")
    return SubgoalChange(sid or desc, desc or sid, SubGoalStatus(status))


def check_feedback(event: FeedbackEvent) -> tuple[str, FeedbackOutcome]:
    """Validate a feedback event; raises InvalidInputError naming ``suggestion_id`` or ``outcome``."""
    sid = check_str("suggestion_id", event.suggestion_id)
    if not sid:
        raise InvalidInputError("must not be empty", field="suggestion_id")
    return sid, parse_outcome(event.outcome)


# -- metric readings --------------------------------------------------------------------------------


class MetricReadings:
    """The goal's targets, and the first and latest reading of each: progress is measured from where
    a metric started.

    The feedback loop's own baseline is its oldest *retained* reading, which slides once its bounded
    history is full; progress toward a goal must not shrink just because old readings were dropped.
    """

    def __init__(
        self,
        targets: Mapping[str, GoalTarget] | None = None,
        readings: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.targets: dict[str, GoalTarget] = dict(targets or {})
        self._readings: dict[str, list[float]] = {m: [r[0], r[1]] for m, r in (readings or {}).items()}
        # Targets with their direction resolved from the first reading (derived, so not persisted).
        self._resolved: dict[str, GoalTarget] = {}

    @staticmethod
    def _reading(target: GoalTarget, value: object) -> float | None:
        # The feedback loop's rule: a boolean goal reads booleans only, a numeric goal numbers only.
        if target.boolean:
            return (1.0 if value else 0.0) if isinstance(value, bool) else None
        return as_number(value)

    def record(self, values: Mapping[str, Any]) -> None:
        """Take the readings of goal metrics from one (already validated) metrics event."""
        for metric, target in self.targets.items():
            if metric in values and (reading := self._reading(target, values[metric])) is not None:
                entry = self._readings.get(metric)
                if entry is None:
                    self._readings[metric] = [reading, reading]
                    self._resolved.pop(metric, None)
                else:
                    entry[1] = reading

    def retarget(self, new: Mapping[str, GoalTarget], analysis: Mapping[str, Mapping[str, Any]]) -> None:
        """Follow a change of targets: drop readings of metrics no longer targeted or whose kind
        (number vs boolean) changed; seed new targets from the loop's retained readings."""
        kept: dict[str, list[float]] = {}
        for metric, target in new.items():
            before = self.targets.get(metric)
            if metric in self._readings and before is not None and before.boolean == target.boolean:
                kept[metric] = self._readings[metric]
            elif metric in analysis and analysis[metric].get("baseline") is not None:
                kept[metric] = [float(analysis[metric]["baseline"]), float(analysis[metric]["current"])]
        self.targets = dict(new)
        self._readings = kept
        self._resolved.clear()

    def progress(self) -> float:
        """Mean progress over the targets, in [0, 1]; a target without a reading counts 0.

        A numeric target contributes ``1 - distance(latest) / distance(first)`` (its direction
        resolved from the first reading), a boolean target 1 when reached, else 0.
        """
        if not self.targets:
            return 0.0
        total = 0.0
        for metric, target in self.targets.items():
            entry = self._readings.get(metric)
            if entry is None:
                continue
            first, latest = entry
            if target.boolean:
                total += 1.0 if target.is_reached(latest) else 0.0
                continue
            resolved = self._resolved.get(metric)
            if resolved is None:
                resolved = self._resolved[metric] = target.resolve(first)
            total += resolved.progress(first, latest) or 0.0
        return clip01(total / len(self.targets))

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able readings: ``{metric: [first, latest]}`` (the targets belong to the loop)."""
        return {m: list(r) for m, r in self._readings.items()}

    @classmethod
    def from_dict(cls, targets: Mapping[str, GoalTarget], data: object) -> MetricReadings:
        """Inverse of :meth:`to_dict`, with the loop's targets; raises SnapshotError on malformed data."""
        if not isinstance(data, Mapping):
            raise SnapshotError("GoalSession snapshot: readings must be a dict")
        out: dict[str, list[float]] = {}
        for metric, pair in data.items():
            numbers = [as_number(x) for x in pair] if isinstance(pair, list) else []
            if (
                len(numbers) != 2
                or any(x is None or not math.isfinite(x) for x in numbers)
                or metric not in targets
            ):
                raise SnapshotError(f"GoalSession snapshot: malformed readings of {metric!r}")
            out[str(metric)] = [float(x) for x in numbers if x is not None]
        return cls(targets, out)


# -- announcements ---------------------------------------------------------------------------------

#: A suggestion before it gets its id: kind, rule, message, actions, and the loop's id for nudges.
Pending = tuple[SuggestionKind, str, str, tuple[dict[str, float], ...], str | None]
_ALERT_DECISIONS = (BudgetDecision.STUCK, BudgetDecision.HARD_CAP)
_LADDER = tuple(Escalation)  # none < nudge < replan < stop


class Announcer:
    """The no-duplicate rules: what was last announced, per family, so an unchanged state is quiet.

    Each method takes the new state of one family and returns a suggestion to emit (or ``None``):

    * :meth:`advise`: the tracker's action. The state is ``action:rule`` (or ``loop`` while the loop
      ladder is up and a loop rule fired) plus the ladder's level; a new state or a higher level is
      announced, a lower level alone is not; ``continue`` clears it.
    * :meth:`budget`: a STUCK or HARD_CAP decision, once until the budget leaves that decision.
    * :meth:`routed`: the :data:`SYSTEM2_ESCALATE_AFTER`-th System 2 routing in a row.
    * :meth:`progress`: the rising edge of "the goal is reached".
    * :meth:`nudge`: a feedback-loop nudge whose moves differ from the last one announced.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        d = data or {}
        self.action_key: str | None = d.get("action_key")
        self.level: int = d.get("level", 0)
        self.budget_alert: str | None = d.get("budget_alert")
        self.s2_streak: int = d.get("s2_streak", 0)
        self.reached: bool = d.get("reached", False)
        self.last_nudge: str | None = d.get("last_nudge")
        self.replans: deque[str] = deque(d.get("replans", ()), maxlen=8)

    def advise(self, action: str, rule: str, escalation: Escalation, message: str | None) -> Pending | None:
        """The tracker's advice, if its state changed: a new action or rule, or a loop escalating."""
        if action == "continue":
            self.reset_advice()
            return None
        looping = escalation is not Escalation.NONE and rule in LOOP_RULES
        key = "loop" if looping else f"{action}:{rule}"
        level = _LADDER.index(escalation)
        rising, self.level = level > self.level, level
        if key == self.action_key and not rising:
            return None
        self.action_key = key
        return (
            SuggestionKind(action),
            f"loop:{escalation.value}" if looping else key,
            message or key,
            (),
            None,
        )

    def reset_advice(self) -> None:
        """Forget the last advice (after ``continue``, or when the agent accepted a replan)."""
        self.action_key = None
        self.level = 0

    def budget(self, state: BudgetState) -> Pending | None:
        """An escalation when the budget turns STUCK or HARD_CAP."""
        decision = state.decision
        if decision not in _ALERT_DECISIONS:
            self.budget_alert = None
            return None
        if self.budget_alert == decision.value:
            return None
        self.budget_alert = decision.value
        used = f"{state.steps_taken} steps"
        if state.step_budget < UNLIMITED_STEPS:
            used += f" of {state.step_budget}"
        if state.token_budget < UNLIMITED_TOKENS:
            used += f", {state.tokens_consumed} of {state.token_budget} tokens"
        why = "no progress for several steps" if decision is BudgetDecision.STUCK else "the budget is used up"
        message = f"Escalate: {why} ({used}, progress {state.progress:.0%})."
        return SuggestionKind.ESCALATE, f"budget:{decision.value}", message, (), None

    def routed(self, process: ProcessType, reasons: Sequence[str]) -> Pending | None:
        """An escalation on the :data:`SYSTEM2_ESCALATE_AFTER`-th System 2 routing in a row."""
        self.s2_streak = self.s2_streak + 1 if process is ProcessType.SYSTEM2 else 0
        if self.s2_streak != SYSTEM2_ESCALATE_AFTER:
            return None
        message = (
            f"The last {SYSTEM2_ESCALATE_AFTER} steps all needed System 2 reasoning "
            f"({'; '.join(reasons)}); hand over to a stronger model or a human."
        )
        return SuggestionKind.ESCALATE, "router:system2", message, (), None

    def progress(self, value: float, source: ProgressSource) -> Pending | None:
        """``goal_reached`` when measured progress (metrics or sub-goals) rises to 1."""
        reached = value >= 1.0
        rising = reached and not self.reached
        self.reached = reached
        if not rising:
            return None
        what = "every metric target is met" if source is ProgressSource.METRICS else "all sub-goals are done"
        return SuggestionKind.GOAL_REACHED, "goal_reached", f"The goal is reached: {what}.", (), None

    def nudge(self, suggestion: Mapping[str, Any]) -> Pending | None:
        """A feedback-loop suggestion as a nudge, if it moves something and differs from the last."""
        feedback = suggestion[FEEDBACK_KEY]
        nudges = feedback.get("nudges") or {}
        if feedback["kind"] != "nudge" or not nudges:
            if feedback["kind"] != "goal_reached":
                self.last_nudge = None  # holding: the same nudge later is news again
            return None
        moves = {m: float(n["to"]) for m, n in nudges.items()}
        key = json.dumps(moves, sort_keys=True)
        if key == self.last_nudge:
            return None
        self.last_nudge = key
        analysis = feedback["analysis"]
        text = "; ".join(
            f"move {m} from {n['from']:g} to {n['to']:g}"
            + (f" (goal {analysis[m]['goal']:g})" if m in analysis else "")
            for m, n in nudges.items()
        )
        return (
            SuggestionKind.NUDGE,
            "feedback:nudge",
            text[:1].upper() + text[1:] + ".",
            (moves,),
            suggestion["suggestion_id"],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "action_key": self.action_key,
            "level": self.level,
            "budget_alert": self.budget_alert,
            "s2_streak": self.s2_streak,
            "reached": self.reached,
            "last_nudge": self.last_nudge,
            "replans": list(self.replans),
        }

    @classmethod
    def from_dict(cls, data: object) -> Announcer:
        """Inverse of :meth:`to_dict`; raises SnapshotError on malformed data."""
        k = "GoalSession"
        if not isinstance(data, Mapping):
            raise SnapshotError(f"{k} snapshot: announcer must be a dict")
        optional = (str, type(None))
        for name, types in (("action_key", optional), ("level", int), ("budget_alert", optional),
                            ("s2_streak", int), ("reached", bool), ("last_nudge", optional)):  # fmt: skip
            field(data, name, types, k)
        replans = field(data, "replans", list, k)
        if not all(isinstance(r, str) for r in replans):
            raise SnapshotError(f"{k} snapshot: replans must be strings")
        return cls(data)


# -- duplicate events -------------------------------------------------------------------------------


class EventIdWindow:
    """The last ``size`` applied event ids, as 8-byte digests (a snapshot stays small whatever the
    ids look like; a false match needs a 64-bit collision within the window)."""

    DIGEST_BYTES: ClassVar[int] = 8

    def __init__(self, size: int, digests: Sequence[bytes] = ()) -> None:
        self.size = size
        self._ring: deque[bytes] = deque(digests, maxlen=size)
        self._set = set(self._ring)

    @classmethod
    def digest(cls, event_id: str) -> bytes:
        """The digest of an event id."""
        return bytes.fromhex(stable_hash(event_id, 2 * cls.DIGEST_BYTES))

    def __contains__(self, digest: object) -> bool:
        return digest in self._set

    def add(self, digest: bytes) -> None:
        """Remember a digest, forgetting the oldest one when the window is full."""
        if self.size == 0:
            return
        if len(self._ring) == self.size:
            self._set.discard(self._ring[0])
        self._ring.append(digest)
        self._set.add(digest)

    def to_str(self) -> str:
        """The digests, oldest first, concatenated and base64-encoded."""
        return base64.b64encode(b"".join(self._ring)).decode("ascii")

    @classmethod
    def from_str(cls, size: int, data: object) -> EventIdWindow:
        """Inverse of :meth:`to_str`; raises SnapshotError on malformed data."""
        try:
            raw = base64.b64decode(str(data), validate=True) if isinstance(data, str) else None
        except ValueError as exc:
            raise SnapshotError(f"GoalSession snapshot: malformed event id window: {exc}") from exc
        n = cls.DIGEST_BYTES
        if raw is None or len(raw) % n or len(raw) // n > size:
            raise SnapshotError("GoalSession snapshot: malformed event id window")
        return cls(size, [raw[i : i + n] for i in range(0, len(raw), n)])
