"""The domain events a goal's session consumes, and the suggestions it produces.

These are the typed form of DESIGN.md's wire schema v1. The core defines them (it is what the core
consumes); :mod:`goalkeeper.events` parses and validates the wire form (JSON objects, JSONL) into
them and encodes them back. Every event carries ``goal_id`` (which goal; also the partition key),
``event_id`` (the idempotency key) and ``ts`` (seconds since the epoch, or ``None`` if unknown).

Events are frozen value objects. Build them from untrusted input through
:func:`goalkeeper.events.parse_event`, which names the bad field; the constructors here only
check what would corrupt state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from .context import SubGoalStatus
from .feedback_strategies import FeedbackOutcome
from .steps import ContextCompressed, Message, Role, Step

__all__ = [
    "Budget",
    "ContextCompressedEvent",
    "Event",
    "EventType",
    "FeedbackEvent",
    "FeedbackOutcome",
    "GoalEvent",
    "MessageEvent",
    "MetricsEvent",
    "StepEvent",
    "SubGoalStatus",
    "SubgoalEvent",
    "Suggestion",
    "SuggestionKind",
]


class EventType(StrEnum):
    """The ``type`` field of the wire schema."""

    GOAL = "goal"
    STEP = "step"
    MESSAGE = "message"
    METRICS = "metrics"
    SUBGOAL = "subgoal"
    FEEDBACK = "feedback"
    CONTEXT_COMPRESSED = "context_compressed"


@dataclass(frozen=True, slots=True)
class Budget:
    """What a goal may spend: steps and/or tokens (``None`` = not limited)."""

    steps: int | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Envelope:
    """The fields every event carries: which goal, its idempotency key, and when (or ``None``)."""

    goal_id: str
    event_id: str = ""
    ts: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GoalEvent(_Envelope):
    """Sets or changes the goal: its text, numeric targets, plan, directions and budget.

    A later ``goal`` event for the same ``goal_id`` updates it: fields given replace the old ones
    (``description`` and ``plan`` re-anchor drift and progress; ``goal_state`` replaces the targets).
    """

    type: ClassVar[EventType] = EventType.GOAL
    description: str = ""
    goal_state: Mapping[str, Any] = field(default_factory=dict)
    plan: tuple[str, ...] | None = None
    directions: Mapping[str, Any] = field(default_factory=dict)
    budget: Budget | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepEvent(_Envelope):
    """One action of the agent and its result."""

    type: ClassVar[EventType] = EventType.STEP
    tool: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    tokens: int = 0
    thought: str = ""

    def to_step(self) -> Step:
        """The core :class:`~goalkeeper.core.steps.Step` this event describes."""
        return Step(
            self.tool,
            self.args,
            self.description,
            self.output,
            self.error,
            self.exit_code,
            self.tokens,
            self.thought,
            self.ts,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEvent(_Envelope):
    """A chat message (``role`` is ``user``, ``assistant`` or ``system``)."""

    type: ClassVar[EventType] = EventType.MESSAGE
    role: Role = "assistant"
    content: str = ""

    def to_message(self) -> Message:
        """The core :class:`~goalkeeper.core.steps.Message`."""
        return Message(self.role, self.content, self.ts)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsEvent(_Envelope):
    """Numeric readings of the goal's metrics (measurements, never proposed actions).

    Values are kept as given (numbers, booleans, ``None``, even strings); the feedback loop decides
    what counts as a numeric reading.
    """

    type: ClassVar[EventType] = EventType.METRICS
    values: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubgoalEvent(_Envelope):
    """A sub-goal was added or changed status. Identified by ``id``, else by ``description``."""

    type: ClassVar[EventType] = EventType.SUBGOAL
    id: str | None = None
    description: str | None = None
    status: SubGoalStatus = SubGoalStatus.PENDING


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackEvent(_Envelope):
    """How a suggestion worked out: ``accepted``, ``rejected``, ``helped`` or ``hurt``."""

    type: ClassVar[EventType] = EventType.FEEDBACK
    suggestion_id: str = ""
    outcome: FeedbackOutcome = FeedbackOutcome.ACCEPTED


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextCompressedEvent(_Envelope):
    """Marker: the agent condensed its context."""

    type: ClassVar[EventType] = EventType.CONTEXT_COMPRESSED

    def to_marker(self) -> ContextCompressed:
        """The core :class:`~goalkeeper.core.steps.ContextCompressed` marker."""
        return ContextCompressed(self.ts)


#: Any event of the wire schema v1.
Event = (
    GoalEvent
    | StepEvent
    | MessageEvent
    | MetricsEvent
    | SubgoalEvent
    | FeedbackEvent
    | ContextCompressedEvent
)


class SuggestionKind(StrEnum):
    """What a suggestion asks of the agent (or its operator)."""

    NUDGE = "nudge"  # move numeric goal state (feedback loop) or a text nudge (loop, drift)
    ADJUST = "adjust"  # small course correction
    REPLAN = "replan"  # make a new plan
    ABORT = "abort"  # stop the run
    ESCALATE = "escalate"  # hand over to a human / System 2
    GOAL_REACHED = "goal_reached"  # a target was reached


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Something goalkeeper suggests to the agent.

    Attributes:
        suggestion_id: deterministic id derived from goal id, state version and rule, so a replay
            produces the same id (sinks can de-duplicate on it).
        goal_id: the goal it belongs to.
        kind: see :class:`SuggestionKind`.
        message: text for the agent.
        actions: suggested numeric moves, e.g. ``[{"progress": 7.0}]`` (feedback-loop nudges).
        metrics: the metrics that led to it (``progress``, ``drift_score``, ``loop_risk``, ...).
        rule: the rule that produced it (for humans and dashboards).
        version: the session's state version when it was produced.
    """

    suggestion_id: str
    goal_id: str
    kind: SuggestionKind
    message: str
    actions: tuple[Mapping[str, Any], ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    rule: str = ""
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the suggestion in its wire form (a JSON-able dict)."""
        return {
            "suggestion_id": self.suggestion_id,
            "goal_id": self.goal_id,
            "kind": self.kind.value,
            "message": self.message,
            "actions": [dict(a) for a in self.actions],
            "metrics": dict(self.metrics),
            "rule": self.rule,
            "version": self.version,
        }
