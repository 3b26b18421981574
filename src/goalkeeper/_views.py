"""Wire views of one goal's state, shared by every edge that shows them.

The worker stores a metric point per applied event, the HTTP API serves points and task records,
and the in-process client answers with the same shapes, so code written against one runs on the
others. These functions are the one definition of those shapes (pure: core objects in, JSON-able
dicts out).
"""

from __future__ import annotations

from typing import Any

from .core.session import GoalSession, Outcome

__all__ = ["metric_point", "task_view"]


def metric_point(outcome: Outcome, ts: float | None) -> dict[str, Any]:
    """The metric point of one applied event, as stored in the goal's metrics history.

    Flags name what stood out after the event: a loop escalation (``escalation:replan``), System 2
    routing (``system2``), a budget decision other than hold/extend (``budget:stuck``) and the kinds
    of the suggestions it produced (``suggestion:nudge``).
    """
    m = outcome.metrics
    flags: list[str] = []
    if m.escalation.value != "none":
        flags.append(f"escalation:{m.escalation.value}")
    if outcome.routing.value == "system2":
        flags.append("system2")
    if m.budget is not None and m.budget.value not in ("hold", "extend"):
        flags.append(f"budget:{m.budget.value}")
    flags.extend(sorted({f"suggestion:{s.kind.value}" for s in outcome.suggestions}))
    return {
        "event_id": outcome.event_id,
        "event_type": outcome.event_type.value,
        "ts": ts,
        "version": outcome.version,
        "progress": m.current_progress,
        "drift_score": m.drift_score,
        "loop_risk": m.loop_risk,
        "action": outcome.recommended_action,
        "routing": outcome.routing.value,
        "flags": flags,
    }


def task_view(session: GoalSession) -> dict[str, Any]:
    """The goal's task record (``GET /v1/goals/{id}/task`` without the id): progress, sub-goals,
    budget, errors, tools, decisions, constraints and the context string an agent can re-read."""
    task, budget = session.task_state(), session.budget
    return {
        "goal": session.goal,
        "progress_percentage": task.progress_percentage,
        "subgoals": [dict(s) for s in task.sub_goals],
        "steps": task.total_steps,
        "tokens": task.total_tokens_spent,
        "budget": None if budget is None else budget.get_stats(),
        "errors": list(task.error_patterns),
        "tools": dict(task.tool_usage_summary),
        "decisions": list(task.decisions_made),
        "constraints": list(task.constraints),
        "context": session.context_string(),
    }
