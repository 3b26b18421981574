"""Helpers of the worker runtime tests: small deterministic workloads and a recording sink."""

from __future__ import annotations

from typing import Any

from goalkeeper.core.session import GoalSession
from goalkeeper.events import parse_event, suggestion_to_dict


def goal_events(
    goal_id: str, steps: int, *, start: int = 0, ts: float = 1_700_000_000.0
) -> list[dict[str, Any]]:
    """A goal event followed by ``steps`` identical tool calls (which make the loop detector speak)."""
    out: list[dict[str, Any]] = []
    if start == 0:
        out.append(
            {"type": "goal", "goal_id": goal_id, "event_id": f"{goal_id}-0", "ts": ts,
             "description": "fix the failing parser test", "goal_state": {"progress": 10}}
        )  # fmt: skip
    first = max(1, start)
    for i in range(first, first + steps):
        out.append(
            {"type": "step", "goal_id": goal_id, "event_id": f"{goal_id}-{i}", "ts": ts + i,
             "tool": "search", "args": {"q": "parser error"}, "output": "no results"}
        )  # fmt: skip
    return out


def clean_run(events: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Snapshots per goal and suggestions by id of applying ``events`` in order without a worker."""
    sessions: dict[str, GoalSession] = {}
    suggestions: dict[str, dict[str, Any]] = {}
    for raw in events:
        event = parse_event(raw)
        session = sessions.setdefault(event.goal_id, GoalSession(event.goal_id))
        for s in session.apply(event).suggestions:
            suggestions[s.suggestion_id] = suggestion_to_dict(s)
    return {g: s.snapshot() for g, s in sessions.items()}, suggestions


class Recorder:
    """A sink callback that records what it got and can be told to fail."""

    def __init__(self, fail: bool = False) -> None:
        self.got: list[dict[str, Any]] = []
        self.fail = fail
        self.calls = 0

    def __call__(self, suggestion: dict[str, Any]) -> None:
        """Record (or fail on) one suggestion."""
        self.calls += 1
        if self.fail:
            raise RuntimeError("sink is down")
        self.got.append(suggestion)

    @property
    def ids(self) -> list[str]:
        """The delivered suggestion ids, in delivery order."""
        return [s["suggestion_id"] for s in self.got]
