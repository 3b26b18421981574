"""The ``/v1`` REST routes: goals, events, metrics history, task state, suggestions, feedback.

Request bodies are read and validated by :mod:`goalkeeper.api.ingest` with the wire schema's own
validator (so a bad field is reported exactly as ``goalkeeper.events`` names it) rather than by a
parallel pydantic model that could drift from it; their JSON schema is still published in the
OpenAPI document through ``openapi_extra``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ..ports.store import GoalRecord, GoalStatus
from . import schemas
from .auth import tenant_dependency
from .config import Tenant
from .ingest import check_goal_id, find_goal, goal_status, parse_events, read_json, submit
from .problems import ApiError
from .runtime import Runtime
from .views import metric_point, suggestion_view

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["goals"])

TenantDep = Annotated[Tenant, Depends(tenant_dependency)]
_GOAL_FIELDS = ("description", "goal_state", "plan", "directions", "budget", "event_id", "ts", "meta")


def runtime(request: Request) -> Runtime:
    """The app's :class:`Runtime`."""
    rt: Runtime = request.app.state.runtime
    return rt


async def _load(rt: Runtime, tenant: Tenant, goal_id: str) -> GoalRecord:
    check_goal_id(goal_id, tenant)
    record = await rt.store.load(tenant.store_id(goal_id))
    if record is None:
        raise ApiError(404, f"no goal with id {goal_id!r}")
    return record


async def _exists(rt: Runtime, tenant: Tenant, goal_id: str) -> None:
    check_goal_id(goal_id, tenant)
    if await goal_status(rt, tenant.store_id(goal_id)) is None:
        raise ApiError(404, f"no goal with id {goal_id!r}")


def _goal_body(body: Any, *, creating: bool) -> dict[str, Any]:
    """Check the envelope of a goal body; the wire validator checks the field values."""
    if not isinstance(body, dict):
        raise ApiError(422, "expected a JSON object with the goal's fields", field=None)
    allowed = (*_GOAL_FIELDS, "goal_id") if creating else _GOAL_FIELDS
    for key in body:
        if key not in allowed:
            raise ApiError(422, f"{key}: unknown field; expected one of {', '.join(allowed)}", field=str(key))
    if not creating and not any(
        k in body for k in ("description", "goal_state", "plan", "directions", "budget")
    ):
        raise ApiError(
            422, "expected at least one of description, goal_state, plan, directions, budget", field=None
        )
    return body


async def _wait_committed(rt: Runtime, stored_id: str, event_id: str) -> GoalRecord | None:
    """Wait up to ``commit_wait`` seconds for the worker to apply ``event_id``; the record or None."""
    assert rt.hub is not None
    deadline = time.monotonic() + rt.config.commit_wait
    with rt.hub.watch_goal(stored_id) as changed:
        while True:
            if await rt.store.applied_event_ids(stored_id, [event_id]):
                return await rt.store.load(stored_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            changed.clear()
            # Woken by the embedded worker's commit; the short timeout covers external workers.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(remaining, 0.1))


@router.post(
    "/goals",
    status_code=201,
    response_model=schemas.Goal,
    responses={202: {"model": schemas.Pending}, **schemas.ERRORS},
    openapi_extra=schemas.body(schemas.GoalCreate),
    summary="Create a goal",
)
async def create_goal(request: Request, tenant: TenantDep) -> Any:
    """Create a goal from the fields of a wire ``goal`` event (plus an optional ``goal_id``).

    Answers 201 with the goal once the worker has committed it (within ``commit_wait`` seconds),
    else 202 with ``status: "pending"``. 409 if the goal already exists.
    """
    rt = runtime(request)
    body = _goal_body(await read_json(request), creating=True)
    given = body.get("goal_id")
    goal_id = check_goal_id(uuid.uuid4().hex if given is None else given, tenant)
    stored_id = tenant.store_id(goal_id)
    if await find_goal(rt, stored_id) is not None:
        raise ApiError(
            409, f"a goal with id {goal_id!r} already exists; PATCH it to change it", code="goal_exists"
        )
    wires = parse_events({**body, "type": "goal", "goal_id": goal_id}, tenant, max_events=1)
    done = await submit(rt, wires)
    record = await _wait_committed(rt, stored_id, wires[0]["event_id"])
    if record is None:
        pending = {"goal_id": goal_id, "status": "pending", "event_ids": done.event_ids}
        return JSONResponse(pending, status_code=202)
    return rt.views.goal(record, tenant)


@router.get("/goals", response_model=schemas.GoalList, responses=schemas.ERRORS, summary="List goals")
async def list_goals(
    request: Request,
    tenant: TenantDep,
    status: Annotated[GoalStatus | None, Query(description="Only goals with this status.")] = None,
    after: Annotated[str | None, Query(description="Cursor: the last goal_id of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """The tenant's goals ordered by id, ``limit`` at a time (``next`` is the cursor of the next page)."""
    rt = runtime(request)
    limit = min(limit, rt.config.list_limit)
    cursor = None if after is None else tenant.store_id(check_goal_id(after, tenant, "after"))
    rows = await rt.store.list_goals(prefix=tenant.prefix, after=cursor, limit=limit, status=status)
    goals = []
    for row in rows:
        # A view is cached per (goal, version): only goals that changed since are loaded.
        summary = rt.views.cached_summary(row, tenant)
        if summary is None:
            record = await rt.store.load(row.goal_id)
            if record is None:
                continue
            summary = rt.views.summary(record, tenant)
        goals.append(summary)
    more = len(rows) == limit
    return {"goals": goals, "next": tenant.client_id(rows[-1].goal_id) if more and rows else None}


@router.get("/goals/{goal_id}", response_model=schemas.Goal, responses=schemas.ERRORS, summary="Goal state")
async def get_goal(request: Request, goal_id: str, tenant: TenantDep) -> Any:
    """The goal's state: metrics, recommended action, version and status."""
    rt = runtime(request)
    return rt.views.goal(await _load(rt, tenant, goal_id), tenant)


@router.patch(
    "/goals/{goal_id}",
    status_code=202,
    response_model=schemas.Accepted,
    responses=schemas.ERRORS,
    openapi_extra=schemas.body(schemas.GoalUpdate),
    summary="Update a goal",
)
async def update_goal(request: Request, goal_id: str, tenant: TenantDep) -> Any:
    """Change the goal's description, targets, plan, directions or budget (a new ``goal`` event).

    Fields given replace the old ones; the worker applies the change asynchronously.
    """
    rt = runtime(request)
    await _exists(rt, tenant, goal_id)
    body = _goal_body(await read_json(request), creating=False)
    wires = parse_events({**body, "type": "goal", "goal_id": goal_id}, tenant, max_events=1)
    done = await submit(rt, wires)
    return {
        "goal_id": goal_id,
        "accepted": done.accepted,
        "duplicates": done.duplicates,
        "event_ids": done.event_ids,
    }


@router.post(
    "/goals/{goal_id}/close", response_model=schemas.Goal, responses=schemas.ERRORS, summary="Close a goal"
)
async def close_goal(request: Request, goal_id: str, tenant: TenantDep) -> Any:
    """Mark the goal closed: it accepts no more events. Closing a closed goal changes nothing."""
    rt = runtime(request)
    record = await _load(rt, tenant, goal_id)
    if record.status != GoalStatus.CLOSED:
        await rt.store.set_goal_status(record.goal_id, GoalStatus.CLOSED)
        rt.statuses.put(record.goal_id, GoalStatus.CLOSED.value)
        record = await _load(rt, tenant, goal_id)
        assert rt.hub is not None
        rt.hub.notify(record.goal_id)
    return rt.views.goal(record, tenant)


@router.post(
    "/events",
    status_code=202,
    response_model=schemas.Accepted,
    responses=schemas.ERRORS,
    openapi_extra=schemas.body(schemas.EventsBody),
    tags=["events"],
    summary="Post events",
)
async def post_events(request: Request, tenant: TenantDep) -> Any:
    """Post one wire event or ``{"events": [...]}``; idempotent on ``event_id`` (per goal).

    Every event is validated before any is stored. A goal that does not exist yet is created by
    its first event.
    """
    rt = runtime(request)
    body = await read_json(request)
    wires = parse_events(body, tenant, max_events=rt.config.max_batch_events)
    done = await submit(rt, wires)
    return {"accepted": done.accepted, "duplicates": done.duplicates, "event_ids": done.event_ids}


@router.post(
    "/goals/{goal_id}/events",
    status_code=202,
    response_model=schemas.Accepted,
    responses=schemas.ERRORS,
    openapi_extra=schemas.body(schemas.EventsBody),
    tags=["events"],
    summary="Post events to a goal",
)
async def post_goal_events(request: Request, goal_id: str, tenant: TenantDep) -> Any:
    """Like ``POST /v1/events`` for one existing goal; events may omit ``goal_id``."""
    rt = runtime(request)
    await _exists(rt, tenant, goal_id)
    body = await read_json(request)
    wires = parse_events(body, tenant, max_events=rt.config.max_batch_events, implied_goal=goal_id)
    done = await submit(rt, wires)
    return {
        "goal_id": goal_id,
        "accepted": done.accepted,
        "duplicates": done.duplicates,
        "event_ids": done.event_ids,
    }


@router.get(
    "/goals/{goal_id}/events", response_model=schemas.EventLog, responses=schemas.ERRORS, tags=["events"],
    summary="Event log",
)  # fmt: skip
async def read_goal_events(
    request: Request,
    goal_id: str,
    tenant: TenantDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Any:
    """The events received for the goal over HTTP, in order (``seq`` is the log position)."""
    rt = runtime(request)
    await _exists(rt, tenant, goal_id)
    rows = await rt.store.read_events(tenant.store_id(goal_id), from_seq=after_seq + 1, limit=limit)
    events = [{**row.event, "goal_id": goal_id, "seq": row.seq} for row in rows]
    return {"goal_id": goal_id, "events": events, "next_after_seq": rows[-1].seq if rows else after_seq}


@router.get("/goals/{goal_id}/metrics", response_model=schemas.MetricsPage, responses=schemas.ERRORS,
            summary="Metrics history")  # fmt: skip
async def metrics_history(
    request: Request,
    goal_id: str,
    tenant: TenantDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """One point per applied event (progress, drift, loop risk, action, flags), ascending ``seq``."""
    rt = runtime(request)
    await _exists(rt, tenant, goal_id)
    rows = await rt.store.metrics_history(tenant.store_id(goal_id), after_seq=after_seq, limit=limit)
    points = [metric_point(p, tenant) for p in rows]
    return {"goal_id": goal_id, "points": points, "next_after_seq": rows[-1].seq if rows else after_seq}


@router.get(
    "/goals/{goal_id}/task", response_model=schemas.Task, responses=schemas.ERRORS, summary="Task state"
)
async def task_state(request: Request, goal_id: str, tenant: TenantDep) -> Any:
    """The structured task record: progress percentage, sub-goals, budget, errors, tool usage."""
    rt = runtime(request)
    return rt.views.task(await _load(rt, tenant, goal_id), tenant)


@router.get("/goals/{goal_id}/suggestions", response_model=schemas.SuggestionList, responses=schemas.ERRORS,
            summary="Suggestions")  # fmt: skip
async def suggestions(
    request: Request,
    goal_id: str,
    tenant: TenantDep,
    after_version: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """The goal's suggestions (delivered or not), oldest first, after the goal version ``after_version``."""
    rt = runtime(request)
    await _exists(rt, tenant, goal_id)
    rows = await rt.store.suggestions(tenant.store_id(goal_id), after_version=after_version, limit=limit)
    return {"goal_id": goal_id, "suggestions": [suggestion_view(s, tenant) for s in rows]}


@router.post(
    "/suggestions/{suggestion_id}/feedback",
    status_code=202,
    response_model=schemas.FeedbackAccepted,
    responses=schemas.ERRORS,
    openapi_extra=schemas.body(schemas.FeedbackBody),
    summary="Feedback on a suggestion",
)
async def feedback(request: Request, suggestion_id: str, tenant: TenantDep) -> Any:
    """Record whether a suggestion was accepted, rejected, helped or hurt (a ``feedback`` event)."""
    rt = runtime(request)
    stored = await rt.store.get_suggestion(suggestion_id)
    if stored is None or not tenant.owns(stored.goal_id):
        # Another tenant's suggestion is reported exactly like a missing one: ids leak nothing.
        raise ApiError(404, f"no suggestion with id {suggestion_id!r}")
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(422, 'expected {"outcome": "accepted|rejected|helped|hurt"}', field=None)
    for key in body:
        if key not in ("outcome", "event_id", "ts", "meta"):
            raise ApiError(422, f"{key}: unknown field; expected outcome, event_id, ts, meta", field=str(key))
    goal_id = tenant.client_id(stored.goal_id)
    event = {**body, "type": "feedback", "goal_id": goal_id, "suggestion_id": suggestion_id}
    wires = parse_events(event, tenant, max_events=1)
    done = await submit(rt, wires)
    return {
        "goal_id": goal_id,
        "suggestion_id": suggestion_id,
        "accepted": done.accepted,
        "duplicates": done.duplicates,
        "event_ids": done.event_ids,
    }
