"""Pydantic models of the API's request and response bodies, for the OpenAPI document.

Responses are serialised through these models. Request bodies are validated by the wire schema
(:mod:`goalkeeper.events`), the single source of truth; the request models here only describe
them in ``/openapi.json``. Models allow extra keys so that fields added by newer workers (a
metric point's extras, say) pass through unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERRORS",
    "Accepted",
    "EventsBody",
    "FeedbackAccepted",
    "FeedbackBody",
    "Goal",
    "GoalCreate",
    "GoalList",
    "GoalUpdate",
    "MetricsPage",
    "Pending",
    "SuggestionList",
    "Task",
    "body",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Error(BaseModel):
    """Every error response."""

    error: str = Field(
        description="Stable code: validation_error, malformed_json, unauthorized, not_found, ..."
    )
    message: str = Field(description="What went wrong, for humans.")
    field: str | None = Field(None, description="The offending input field (dotted path), if any.")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text}
    for code, text in (
        (400, "Malformed JSON"),
        (401, "Missing or invalid bearer token"),
        (404, "Unknown goal or suggestion"),
        (409, "Conflict (goal exists / goal closed)"),
        (413, "Body or batch too large"),
        (415, "Not JSON"),
        (422, "Validation error; `field` names the field"),
        (503, "Store or bus unavailable"),
    )
}


class GoalUpdate(BaseModel):
    """Fields of a wire ``goal`` event; those given replace the goal's current ones."""

    description: str | None = Field(None, description="The goal in words.")
    goal_state: dict[str, Any] | None = Field(None, description='Numeric targets, e.g. {"progress": 10}.')
    plan: list[str] | None = Field(None, description="The plan's steps, in order.")
    directions: dict[str, Any] | None = Field(None, description="Per metric: increase, decrease or range.")
    budget: dict[str, int | None] | None = Field(None, description='{"steps": N, "tokens": N}')
    event_id: str | None = Field(None, description="Idempotency key (assigned when absent).")


class GoalCreate(GoalUpdate):
    """A new goal: the fields of a ``goal`` event plus an optional id (assigned when absent)."""

    goal_id: str | None = Field(None, description="The goal's id (no '/'); a random hex id when absent.")


class EventsBody(BaseModel):
    """One wire event object (see docs/events.md) or a batch ``{"events": [...]}``."""

    events: list[dict[str, Any]] = Field(
        description="Wire events: each has type, goal_id, optional event_id, ..."
    )


class FeedbackBody(BaseModel):
    """Feedback on a suggestion."""

    outcome: Literal["accepted", "rejected", "helped", "hurt"]
    event_id: str | None = None


class Metrics(_Open):
    """Where a goal stands."""

    current_progress: float
    drift_score: float
    loop_risk: float
    progress_percentage: float
    stall_turns: int
    steps: int
    tokens: int
    velocity: float
    escalation: str
    progress_source: str


class Goal(_Open):
    """A goal's state."""

    goal_id: str
    status: str
    version: int
    updated_at: float
    description: str | None = None
    plan: list[str] = []
    goal_state: dict[str, Any] = {}
    metrics: Metrics | None = None
    recommended_action: str | None = None
    routing: str | None = None


class GoalSummary(_Open):
    """A goal in a list."""

    goal_id: str
    status: str
    version: int
    updated_at: float
    description: str | None = None
    recommended_action: str | None = None
    metrics: Metrics | None = None


class GoalList(BaseModel):
    """A page of goals."""

    goals: list[GoalSummary]
    next: str | None = Field(description="Pass as ?after= for the next page; null on the last page.")


class Pending(BaseModel):
    """The goal was accepted but the worker has not committed it yet."""

    goal_id: str
    status: Literal["pending"]
    event_ids: list[str]


class Accepted(_Open):
    """Events accepted for processing."""

    accepted: int = Field(description="Events seen for the first time.")
    duplicates: int = Field(description="Events whose event_id was received before (skipped).")
    event_ids: list[str] = Field(description="Every event's id, in input order.")


class FeedbackAccepted(Accepted):
    """Feedback accepted for processing."""

    goal_id: str
    suggestion_id: str


class MetricsPage(BaseModel):
    """Metric points, one per applied event."""

    goal_id: str
    points: list[dict[str, Any]]
    next_after_seq: int


class EventLog(BaseModel):
    """Events of a goal's log."""

    goal_id: str
    events: list[dict[str, Any]]
    next_after_seq: int


class Task(_Open):
    """TaskState-like summary of a goal."""

    goal_id: str
    goal: str | None = None
    progress_percentage: float = 0.0
    subgoals: list[dict[str, Any]] = []
    steps: int = 0
    tokens: int = 0
    budget: dict[str, Any] | None = None


class SuggestionList(BaseModel):
    """A goal's suggestions."""

    goal_id: str
    suggestions: list[dict[str, Any]]


def body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON request body by ``model``'s schema."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }
