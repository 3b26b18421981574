"""Goal state that reaches the agent's prompt: :class:`TaskState` and :class:`GoalReminderInjector`.

* :class:`TaskState` is the structured record of a task (goal, sub-goals, decisions, errors, tool
  usage, progress on a **0-100** scale) that survives context compression; ``to_context_string``
  renders it as a compact block for an LLM prompt.
* :class:`GoalReminderInjector` builds a short goal reminder for every turn whose verbosity falls
  with the turn number: FULL for turns 1-5, COMPACT for 6-15, ULTRA_COMPACT from 16 on. It lives in
  :mod:`goalkeeper.core.goal_reminder` and is re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, Final, Self

from ..errors import InvalidInputError, SnapshotError
from ._checks import check_count, check_number, check_str
from ._snapshot import check_header, header, json_copy, scalar_fields
from ._snapshot import field as snap_field
from .goal_reminder import (
    GoalProgress,
    GoalReminder,
    GoalReminderInjector,
    ReminderContext,
    ReminderMode,
    _str_list,
    render_reminder,
)
from .text import mask_volatile

__all__ = [
    "STATUS_MARKS",
    "GoalProgress",
    "GoalReminder",
    "GoalReminderInjector",
    "ReminderContext",
    "ReminderMode",
    "SubGoalStatus",
    "TaskState",
    "render_reminder",
]


class SubGoalStatus(StrEnum):
    """Status of a sub-goal, in the wire vocabulary."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    BLOCKED = "blocked"
    FAILED = "failed"
    SKIPPED = "skipped"


#: How each sub-goal status is marked in :meth:`TaskState.to_context_string` (GoalTree's icons).
STATUS_MARKS: Final[Mapping[str, str]] = {
    "pending": "[ ]",
    "in_progress": "[>]",
    "done": "[x]",
    "blocked": "[B]",
    "failed": "[!]",
    "skipped": "[-]",
}
_SCALARS = (str, int, float, bool, type(None))


def _record(value: object, name: str, required: str) -> dict[str, Any]:
    """Validate a JSON-like record: string keys, scalar values, a string under ``required``."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError("must be an object with string keys", field=name)
    for k, v in value.items():
        if not isinstance(v, _SCALARS) or (isinstance(v, float) and not math.isfinite(v)):
            raise InvalidInputError("must be a string, finite number, bool or null", field=f"{name}.{k}")
    check_str(f"{name}.{required}", value.get(required))
    return dict(value)


@dataclass
class TaskState:
    """The structured state of a task, kept in warm memory and rendered first in the prompt.

    ``progress_percentage`` is on a 0-100 scale; any finite value is clamped into it (non-numbers and
    NaN/inf raise). Every field is validated on construction and by :meth:`from_dict`, which raise
    :class:`InvalidInputError` naming the field. The ``record_*`` helpers keep the lists bounded.

    Attributes:
        current_goal: the goal in words.
        sub_goals: ``{"goal": str, "status": pending|in_progress|done|blocked|failed|skipped}``.
        decisions_made: ``{"decision": str, "rationale": str, "step": int}``.
        active_entities: names the task works on, mapped to what they are.
        constraints: rules the task must respect.
        open_questions: what is still unknown.
        progress_percentage: 0-100 (``100 * current_progress``).
        error_patterns: ``{"error": str, "resolution": str | None, "count": int}``.
        tool_usage_summary: per tool ``{"calls": int, "successes": int, "success_rate": float}``.
        total_steps: steps taken.
        total_tokens_spent: tokens spent.
    """

    current_goal: str = ""
    sub_goals: list[dict[str, Any]] = field(default_factory=list)
    decisions_made: list[dict[str, Any]] = field(default_factory=list)
    active_entities: dict[str, str] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)
    progress_percentage: float = 0.0
    error_patterns: list[dict[str, Any]] = field(default_factory=list)
    tool_usage_summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    total_steps: int = 0
    total_tokens_spent: int = 0

    MAX_SUB_GOALS: ClassVar[int] = 100
    MAX_DECISIONS: ClassVar[int] = 50
    MAX_ERROR_PATTERNS: ClassVar[int] = 50
    MAX_TOOLS: ClassVar[int] = 100
    #: How many recent decisions, error patterns and tools the context string shows.
    SHOWN: ClassVar[int] = 5
    _KIND: ClassVar[str] = "TaskState"
    _SCHEMA: ClassVar[int] = 1

    def __post_init__(self) -> None:
        self.current_goal = check_str("current_goal", self.current_goal)
        self.sub_goals = [
            self._sub_goal(g, f"sub_goals[{i}]") for i, g in enumerate(_list(self.sub_goals, "sub_goals"))
        ]
        self.decisions_made = [
            _record(d, f"decisions_made[{i}]", "decision")
            for i, d in enumerate(_list(self.decisions_made, "decisions_made"))
        ]
        if not isinstance(self.active_entities, Mapping):
            raise InvalidInputError("must be an object", field="active_entities")
        self.active_entities = {
            check_str("active_entities", k): check_str(f"active_entities.{k}", v)
            for k, v in self.active_entities.items()
        }
        self.constraints = _str_list(self.constraints, "constraints")
        self.open_questions = _str_list(self.open_questions, "open_questions")
        pct = check_number("progress_percentage", self.progress_percentage)
        self.progress_percentage = min(100.0, max(0.0, pct))
        self.error_patterns = [
            self._error_entry(e, f"error_patterns[{i}]")
            for i, e in enumerate(_list(self.error_patterns, "error_patterns"))
        ]
        if not isinstance(self.tool_usage_summary, Mapping):
            raise InvalidInputError("must be an object", field="tool_usage_summary")
        self.tool_usage_summary = {
            check_str("tool_usage_summary", t): self._tool_entry(u, f"tool_usage_summary.{t}")
            for t, u in self.tool_usage_summary.items()
        }
        self.total_steps = check_count("total_steps", self.total_steps)
        self.total_tokens_spent = check_count("total_tokens_spent", self.total_tokens_spent)

    @staticmethod
    def _sub_goal(value: object, name: str) -> dict[str, Any]:
        goal = _record(value, name, "goal")
        status = goal.get("status")
        if status not in STATUS_MARKS:
            raise InvalidInputError(f"must be one of {', '.join(STATUS_MARKS)}", field=f"{name}.status")
        goal["status"] = str(status)
        return goal

    @staticmethod
    def _error_entry(value: object, name: str) -> dict[str, Any]:
        entry = _record(value, name, "error")
        entry["count"] = check_count(f"{name}.count", entry.get("count", 1))
        if entry["count"] < 1:
            raise InvalidInputError("must be at least 1", field=f"{name}.count")
        return entry

    @staticmethod
    def _tool_entry(value: object, name: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidInputError("must be an object", field=name)
        calls = check_count(f"{name}.calls", value.get("calls"))
        successes = check_count(f"{name}.successes", value.get("successes"))
        if successes > calls:
            raise InvalidInputError("must not exceed calls", field=f"{name}.successes")
        return {"calls": calls, "successes": successes, "success_rate": successes / calls if calls else 0.0}

    # -- updates -----------------------------------------------------------------------------

    def update_from_metrics(
        self,
        current_progress: float,
        *,
        total_steps: int | None = None,
        total_tokens_spent: int | None = None,
    ) -> None:
        """Mirror the tracker's metrics: ``progress_percentage = 100 * current_progress`` (in [0, 1])."""
        self.progress_percentage = 100.0 * check_number("current_progress", current_progress, 0.0, 1.0)
        if total_steps is not None:
            self.total_steps = check_count("total_steps", total_steps)
        if total_tokens_spent is not None:
            self.total_tokens_spent = check_count("total_tokens_spent", total_tokens_spent)

    def set_sub_goal(self, goal: str, status: SubGoalStatus | str = SubGoalStatus.PENDING) -> None:
        """Add a sub-goal, or change the status of the one with the same text."""
        entry = self._sub_goal({"goal": check_str("goal", goal), "status": status}, "sub_goal")
        for existing in self.sub_goals:
            if existing["goal"] == entry["goal"]:
                existing["status"] = entry["status"]
                return
        if len(self.sub_goals) >= self.MAX_SUB_GOALS:
            raise InvalidInputError(f"at most {self.MAX_SUB_GOALS} sub-goals", field="sub_goals")
        self.sub_goals.append(entry)

    def record_decision(self, decision: str, rationale: str = "", step: int | None = None) -> None:
        """Append a decision (at ``step``, default the current step count); keeps the last 50."""
        step = self.total_steps if step is None else check_count("step", step)
        entry = {"decision": check_str("decision", decision), "rationale": check_str("rationale", rationale)}
        self.decisions_made.append({**entry, "step": step})
        del self.decisions_made[: -self.MAX_DECISIONS]

    def record_error(self, error: str, resolution: str | None = None) -> None:
        """Count an error pattern (volatile details masked, so repeats merge); keeps the last 50."""
        text = mask_volatile(check_str("error", error))
        if resolution is not None:
            check_str("resolution", resolution)
        for i, e in enumerate(self.error_patterns):
            if e["error"] == text:
                entry = self.error_patterns.pop(i)
                entry["count"] += 1
                entry["resolution"] = resolution if resolution is not None else entry.get("resolution")
                break
        else:
            entry = {"error": text, "resolution": resolution, "count": 1}
        self.error_patterns.append(entry)
        del self.error_patterns[: -self.MAX_ERROR_PATTERNS]

    def record_tool_use(self, tool: str, success: bool, *, tokens: int = 0) -> None:
        """Count one step with ``tool``: calls, successes and success rate, steps and tokens."""
        name = check_str("tool", tool) or "(none)"
        if not isinstance(success, bool):
            raise InvalidInputError("must be a bool", field="success")
        self.total_tokens_spent += check_count("tokens", tokens)
        self.total_steps += 1
        usage = self.tool_usage_summary.pop(name, {"calls": 0, "successes": 0})
        # Least recently used tools are forgotten first, so the summary stays bounded.
        if len(self.tool_usage_summary) >= self.MAX_TOOLS:
            del self.tool_usage_summary[next(iter(self.tool_usage_summary))]
        calls, successes = usage["calls"] + 1, usage["successes"] + int(success)
        self.tool_usage_summary[name] = {
            "calls": calls,
            "successes": successes,
            "success_rate": successes / calls,
        }

    # -- rendering and persistence ----------------------------------------------------------

    def to_context_string(self) -> str:
        """A compact, readable block for an LLM prompt; empty sections are left out."""
        lines = [
            "[TASK STATE]",
            f"Goal: {self.current_goal or '(not set)'}",
            f"Progress: {self.progress_percentage:.1f}% ({self.total_steps} steps, "
            f"{self.total_tokens_spent} tokens)",
        ]
        if self.sub_goals:
            lines.append("Sub-goals:")
            lines.extend(f"  {STATUS_MARKS[g['status']]} {g['goal']}" for g in self.sub_goals)
        if self.constraints:
            lines.append("Constraints: " + "; ".join(self.constraints))
        if self.open_questions:
            lines.append("Open questions: " + "; ".join(self.open_questions))
        if self.active_entities:
            lines.append("Entities: " + "; ".join(f"{k} = {v}" for k, v in self.active_entities.items()))
        if self.decisions_made:
            lines.append("Recent decisions:")
            for d in self.decisions_made[-self.SHOWN :]:
                why = f" (why: {d['rationale']})" if d.get("rationale") else ""
                at = f" [step {d['step']}]" if d.get("step") is not None else ""
                lines.append(f"  - {d['decision']}{why}{at}")
        if self.error_patterns:
            lines.append("Error patterns:")
            for e in self.error_patterns[-self.SHOWN :]:
                fix = f" -> {e['resolution']}" if e.get("resolution") else ""
                lines.append(f"  - {e['error']}{fix} (x{e['count']})")
        if self.tool_usage_summary:
            top = sorted(self.tool_usage_summary.items(), key=lambda kv: (-kv[1]["calls"], kv[0]))
            usage = (
                f"{t} {u['calls']} call{'s' if u['calls'] != 1 else ''} {u['success_rate']:.0%} ok"
                for t, u in top[: self.SHOWN]
            )
            lines.append("Tool usage: " + "; ".join(usage))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """All 11 fields as a JSON-able dict (copies)."""
        return {name: json_copy(value) for name, value in scalar_fields(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build a TaskState from :meth:`to_dict` output; missing fields take their defaults.

        Raises:
            InvalidInputError: not a dict, an unknown field, or a malformed value; ``.field`` names it.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError("must be an object", field=None)
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidInputError("is not a TaskState field", field=str(key))
        return cls(**data)

    def snapshot(self) -> dict[str, Any]:
        """:meth:`to_dict` under the snapshot header."""
        return {**header(self._KIND, self._SCHEMA), "state": self.to_dict()}

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`snapshot`; raises :class:`SnapshotError` when it is malformed."""
        data = check_header(data, cls._KIND, (cls._SCHEMA,))
        try:
            return cls.from_dict(snap_field(data, "state", dict, cls._KIND))
        except InvalidInputError as exc:
            raise SnapshotError(f"{cls._KIND} snapshot is malformed: {exc}") from exc


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidInputError("must be a list", field=name)
    return list(value)
