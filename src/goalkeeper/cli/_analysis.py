"""Offline analysis of one trajectory: feed its events through a GoalSession and record, per step,
where the goal stood. No presentation here (the ``analyze`` command renders these reports) and no
third-party import, so the analysis can be reused and tested without the CLI extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..core.loops import Escalation
from ..core.model import StepEvent
from ..core.session import GoalSession
from ..importers import Trajectory

__all__ = ["Profile", "StepRow", "TrajectoryReport", "analyze_trajectory"]

Profile = Literal["goalkeeper", "reference"]


@dataclass(frozen=True, slots=True)
class StepRow:
    """Where the goal stood right after one step of the agent."""

    step: int
    """1-based step number (steps only; messages and other events are not counted)."""
    tool: str
    """The step's tool."""
    progress: float
    """``current_progress`` after the step."""
    drift: float
    """``drift_score`` after the step."""
    loop_risk: float
    """``loop_risk`` after the step."""
    action: str
    """The recommended action after the step: continue, adjust, replan or abort."""
    rule: str
    """The rule that chose the action (empty before a goal is set)."""
    loop: bool
    """A loop was flagged on this step (a loop event, or the loop ladder is above ``none``)."""
    suggestions: tuple[str, ...]
    """Kinds of the suggestions this step produced (``nudge``, ``replan``...)."""

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-able dict."""
        return {
            "step": self.step,
            "tool": self.tool,
            "progress": self.progress,
            "drift": self.drift,
            "loop_risk": self.loop_risk,
            "action": self.action,
            "rule": self.rule,
            "loop": self.loop,
            "suggestions": list(self.suggestions),
        }


@dataclass(frozen=True, slots=True)
class TrajectoryReport:
    """The analysis of one trajectory: its per-step rows and their summary."""

    file: str
    """The file (or directory) it was read from."""
    id: str
    """The trajectory id (its goal id)."""
    source: str
    """The format it was read from."""
    events: int
    """Events applied (all types)."""
    rows: tuple[StepRow, ...]
    """One row per step."""
    final_action: str
    """The recommended action after the last event."""
    suggestions: int
    """Suggestions produced over the whole run."""
    metadata: Mapping[str, Any]
    """What the source said about the run (``reward``, ``task_id``...)."""

    @property
    def steps(self) -> int:
        """Number of steps."""
        return len(self.rows)

    @property
    def final_progress(self) -> float:
        """``current_progress`` after the last step (0.0 without steps)."""
        return self.rows[-1].progress if self.rows else 0.0

    @property
    def max_drift(self) -> float:
        """The highest ``drift_score`` over the steps."""
        return max((r.drift for r in self.rows), default=0.0)

    @property
    def max_loop_risk(self) -> float:
        """The highest ``loop_risk`` over the steps."""
        return max((r.loop_risk for r in self.rows), default=0.0)

    @property
    def loops(self) -> int:
        """Steps on which a loop was flagged."""
        return sum(r.loop for r in self.rows)

    def first(self, action: str) -> int | None:
        """The first step after which ``action`` was recommended, or ``None``."""
        return next((r.step for r in self.rows if r.action == action), None)

    @property
    def reward(self) -> float | None:
        """The source's reward for the run (1.0 = success), when it has one."""
        value = self.metadata.get("reward")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def summary(self) -> dict[str, Any]:
        """The summary line as a JSON-able dict."""
        return {
            "file": self.file,
            "id": self.id,
            "source": self.source,
            "events": self.events,
            "steps": self.steps,
            "final_progress": self.final_progress,
            "max_drift": self.max_drift,
            "max_loop_risk": self.max_loop_risk,
            "loops": self.loops,
            "first_replan": self.first("replan"),
            "first_abort": self.first("abort"),
            "final_action": self.final_action,
            "suggestions": self.suggestions,
            "reward": self.reward,
        }

    def to_dict(self, *, steps: bool = False) -> dict[str, Any]:
        """The summary, plus the per-step rows when ``steps`` is true."""
        out = self.summary()
        if steps:
            out["steps_detail"] = [r.to_dict() for r in self.rows]
        return out


def analyze_trajectory(
    trajectory: Trajectory, *, file: str, profile: Profile = "goalkeeper"
) -> TrajectoryReport:
    """Apply every event of ``trajectory`` to a fresh GoalSession and report step by step.

    Raises:
        InvalidInputError: an event the session refuses (it belongs to another goal, or a field is
            out of range); ``.field`` names the field.
    """
    session = GoalSession(trajectory.id, profile=profile)
    rows: list[StepRow] = []
    suggestions = 0
    for event in trajectory.events:
        outcome = session.apply(event)
        suggestions += len(outcome.suggestions)
        if not outcome.applied or not isinstance(event, StepEvent):  # a repeated event_id changes nothing
            continue
        m = outcome.metrics
        verdict = outcome.verification
        loop = (verdict is not None and verdict.loop_event is not None) or m.escalation is not Escalation.NONE
        rows.append(
            StepRow(
                step=len(rows) + 1,
                tool=event.tool,
                progress=m.current_progress,
                drift=m.drift_score,
                loop_risk=m.loop_risk,
                action=outcome.recommended_action,
                rule=verdict.rule if verdict is not None else "",
                loop=loop,
                suggestions=tuple(s.kind.value for s in outcome.suggestions),
            )
        )
    return TrajectoryReport(
        file=file,
        id=trajectory.id,
        source=trajectory.source,
        events=len(trajectory.events),
        rows=tuple(rows),
        final_action=session.recommended_action,
        suggestions=suggestions,
        metadata=dict(trajectory.metadata),
    )
