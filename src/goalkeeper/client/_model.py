"""What the client's calls return: :class:`GoalView`, :class:`Receipt` and :class:`Decision`.

The HTTP and the in-process client return the same types with the same meaning, so an integration
written against one runs unchanged on the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.model import Suggestion, SuggestionKind

__all__ = ["ACTIONS", "Action", "Decision", "GoalView", "Receipt"]

#: The recommended actions, mildest first.
Action = Literal["continue", "adjust", "replan", "abort"]
ACTIONS: tuple[Action, ...] = ("continue", "adjust", "replan", "abort")

#: Which suggestion explains an action best: the one of the same kind, then the loop/drift nudges.
_EXPLAINS: dict[str, tuple[SuggestionKind, ...]] = {
    "abort": (SuggestionKind.ABORT, SuggestionKind.REPLAN, SuggestionKind.ADJUST),
    "replan": (SuggestionKind.REPLAN, SuggestionKind.ADJUST, SuggestionKind.NUDGE),
    "adjust": (SuggestionKind.ADJUST, SuggestionKind.NUDGE),
    "continue": (SuggestionKind.NUDGE,),
}


@dataclass(frozen=True, slots=True)
class GoalView:
    """A goal as the client sees it.

    Attributes:
        goal_id: the goal's id.
        status: ``active``, ``closed`` or ``archived``.
        version: events applied to the goal.
        description: the goal text (empty before a goal event gave one).
        plan: the plan's steps (empty without a plan).
        goal_state: the numeric targets in wire form (``{"progress": 10}``).
        metrics: where the goal stands (``current_progress``, ``drift_score``, ``loop_risk``,
            ``progress_percentage``, ``stall_turns``, ``steps``, ``tokens``, ``velocity``,
            ``escalation``, ``progress_source``; see :class:`goalkeeper.SessionMetrics`).
        recommended_action: ``continue``, ``adjust``, ``replan`` or ``abort``.
        routing: ``system1`` or ``system2`` for the next step.
    """

    goal_id: str
    status: str
    version: int
    description: str = ""
    plan: tuple[str, ...] = ()
    goal_state: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    recommended_action: Action = "continue"
    routing: str = "system1"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What sending events did.

    Attributes:
        accepted: events taken for the first time.
        duplicates: events whose ``event_id`` had been taken before (nothing changed for them).
        event_ids: the id of every event sent, in input order (assigned when absent).
    """

    accepted: int
    duplicates: int
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """goalkeeper's answer to one event: what the agent should do next, and why.

    Attributes:
        goal_id: the goal.
        event_id: the event the decision answers.
        version: the goal's state version after the event.
        action: the standing advice, ``continue``, ``adjust``, ``replan`` or ``abort``. It holds
            until the state changes, so it may repeat over many events.
        metrics: ``current_progress``, ``drift_score`` and ``loop_risk`` after the event, in [0, 1].
        suggestions: what this event warrants, new with it (goalkeeper announces a transition once;
            an unchanged state repeats no suggestion).
        duplicate: the event had been applied before; nothing changed.
    """

    goal_id: str
    event_id: str
    version: int
    action: Action
    metrics: Mapping[str, float]
    suggestions: tuple[Suggestion, ...] = ()
    duplicate: bool = False

    @property
    def suggestion(self) -> Suggestion | None:
        """The new suggestion that explains :attr:`action` best, or ``None``."""
        for kind in _EXPLAINS[self.action]:
            for suggestion in self.suggestions:
                if suggestion.kind is kind:
                    return suggestion
        return None

    @property
    def nudge(self) -> str | None:
        """The text to show the agent for this decision (the explaining suggestion's message)."""
        suggestion = self.suggestion
        return None if suggestion is None else suggestion.message

    def describe(self) -> str:
        """A one-line human reason: the nudge text if there is one, else the action and the metrics."""
        text = self.nudge
        if text:
            return text
        m = self.metrics
        return (
            f"goalkeeper recommends {self.action} (progress {m.get('current_progress', 0.0):.2f}, "
            f"drift {m.get('drift_score', 0.0):.2f}, loop risk {m.get('loop_risk', 0.0):.2f})"
        )
