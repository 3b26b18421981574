"""Turning request bodies into events on the bus: parse, validate, namespace, log, publish.

The order matters for "nothing stored on bad input" and "nothing lost on failure":

1. the whole body is decoded and every event validated (:func:`goalkeeper.events.parse_event`)
   before anything is written, so one bad event in a batch stores none of them;
2. the events are appended to the store's per-goal event log, which says exactly which ones were
   seen before (the duplicate count of the response);
3. the new ones, and the old ones the worker has not applied yet (a retry after a failed publish),
   are published to the bus; the worker applies each exactly once (inbox + compare-and-set).

A failure at 2 or 3 answers 503 and the client retries the same request: event ids make that safe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..errors import ValidationError
from ..events import event_to_dict, parse_event
from ..ports.store import GoalSummary, StoredEvent
from .config import Tenant
from .problems import ApiError, invalid
from .runtime import Runtime

__all__ = ["Submitted", "find_goal", "goal_status", "parse_events", "read_json", "submit"]

_JSON_TYPES = ("application/json",)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def read_json(request: Request) -> Any:
    """Decode the request body as JSON.

    Raises:
        ApiError: 415 for a non-JSON ``Content-Type``, 400 for malformed JSON (with the position).
    """
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in _JSON_TYPES and not ctype.endswith("+json"):
        raise ApiError(415, f"expected Content-Type: application/json, got {ctype!r}", field=None)
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "the request body is empty; expected a JSON object")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN/Infinity, absurd nesting
        raise ApiError(400, f"malformed JSON: {exc}") from None


def check_goal_id(goal_id: object, tenant: Tenant, field: str = "goal_id") -> str:
    """Validate a client goal id (path or body) and return it.

    Raises:
        ApiError: 422 naming ``field``: not an identifier, contains ``/`` (ids appear in URL
            paths), or too long once namespaced by the tenant.
    """
    if (
        not isinstance(goal_id, str)
        or not goal_id
        or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in goal_id)
    ):
        raise ApiError(422, f"{field}: expected a non-empty string without control characters", field=field)
    if "/" in goal_id:
        raise ApiError(422, f"{field}: must not contain '/' (goal ids appear in URL paths)", field=field)
    if len(goal_id) > tenant.max_goal_id:
        raise ApiError(
            422, f"{field}: must be at most {tenant.max_goal_id} characters, got {len(goal_id)}", field=field
        )
    return goal_id


def parse_events(
    body: Any,
    tenant: Tenant,
    *,
    max_events: int,
    implied_goal: str | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Validate a body (one event object or ``{"events": [...]}``) into namespaced wire dicts.

    Args:
        body: the decoded JSON body.
        tenant: the caller; goal ids are namespaced with its prefix.
        max_events: the batch limit (more: 413).
        implied_goal: the goal of a ``/v1/goals/{goal_id}/events`` path: events may omit
            ``goal_id`` and must not name another goal.
        now: receipt time for events without ``ts`` (default: the clock).

    Raises:
        ApiError: 422 naming the field (``events[2].args``), 413 for too many events.
    """
    received = time.time() if now is None else now
    if isinstance(body, Mapping) and "events" in body and "type" not in body:
        extra = sorted(str(k) for k in body if k != "events")
        if extra:
            raise ApiError(422, f'{extra[0]}: unknown field; a batch is {{"events": [...]}}', field=extra[0])
        items = body["events"]
        if not isinstance(items, list):
            raise ApiError(422, "events: expected an array of event objects", field="events")
        if not items:
            raise ApiError(422, "events: expected at least one event", field="events")
        prefixes = [f"events[{i}]" for i in range(len(items))]
    elif isinstance(body, Mapping):
        items, prefixes = [body], [""]
    else:
        raise ApiError(422, 'expected an event object or {"events": [...]}', field=None)
    if len(items) > max_events:
        raise ApiError(
            413, f"events: at most {max_events} events per request, got {len(items)}", field="events"
        )
    wires: list[dict[str, Any]] = []
    for item, prefix in zip(items, prefixes, strict=True):
        obj = item
        if implied_goal is not None and isinstance(item, Mapping):
            given = item.get("goal_id")
            if given is None:
                obj = {**item, "goal_id": implied_goal}
            elif given != implied_goal:
                field = f"{prefix}.goal_id" if prefix else "goal_id"
                raise ApiError(
                    422, f"{field}: must be {implied_goal!r} (the goal in the path) or omitted", field=field
                )
        try:
            event = parse_event(obj, received_at=received)
        except ValidationError as exc:
            raise invalid(exc, prefix) from None
        check_goal_id(event.goal_id, tenant, f"{prefix}.goal_id" if prefix else "goal_id")
        wire = event_to_dict(event)
        wire["goal_id"] = tenant.store_id(event.goal_id)
        wires.append(wire)
    return wires


async def find_goal(rt: Runtime, stored_id: str) -> GoalSummary | None:
    """The stored goal's summary (status, version) without loading its snapshot; ``None`` if absent."""
    rows = await rt.store.list_goals(prefix=stored_id, limit=1)
    found = rows[0] if rows and rows[0].goal_id == stored_id else None
    if found is not None:
        rt.statuses.put(stored_id, str(found.status))
    return found


async def goal_status(rt: Runtime, stored_id: str) -> str | None:
    """The goal's status (``active``, ``closed``, ...) or None if it does not exist; cached briefly."""
    cached = rt.statuses.get(stored_id)
    if cached is not None:
        return cached
    found = await find_goal(rt, stored_id)
    return None if found is None else str(found.status)


_TRIM_EVERY = 1000


async def _trim_logs(rt: Runtime, appended: Sequence[StoredEvent]) -> None:
    """Keep the newest ``event_log_retention`` events per goal, trimming in steps of up to 1,000."""
    keep = rt.config.event_log_retention
    step = min(_TRIM_EVERY, keep)
    last: dict[str, tuple[int, int]] = {}
    for row in appended:
        low, _ = last.get(row.goal_id, (row.seq, row.seq))
        last[row.goal_id] = (min(low, row.seq), row.seq)
    for goal_id, (low, high) in last.items():
        # Trim only when the log crosses a multiple of the step: one cheap DELETE per 1,000
        # events instead of one per request.
        if high > keep and (high // step) != ((low - 1) // step):
            await rt.store.trim_events(goal_id, before_seq=high - keep + 1)


@dataclass(frozen=True, slots=True)
class Submitted:
    """What :func:`submit` did with a list of events."""

    accepted: int
    """Events seen for the first time."""
    duplicates: int
    """Events whose ``event_id`` had been received before for the same goal (or repeated in the request)."""
    event_ids: list[str]
    """Every event's id, in input order (assigned by the server when the client gave none)."""


async def submit(rt: Runtime, wires: Sequence[dict[str, Any]]) -> Submitted:
    """Log and publish validated wire events (see the module docstring).

    Raises:
        ApiError: 409 when an event targets a closed or archived goal (nothing is written).
        BackendError: the store or bus failed (answered 503 by the app).
    """
    event_ids = [w["event_id"] for w in wires]
    unique: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for wire in wires:
        key = (wire["goal_id"], wire["event_id"])
        if key not in seen:
            seen.add(key)
            unique.append(wire)
    for goal_id in {w["goal_id"] for w in unique}:
        status = await goal_status(rt, goal_id)
        if status is not None and status != "active":
            raise ApiError(409, f"goal is {status}; it accepts no more events", code="goal_closed")
    result = await rt.store.append_events(unique)
    fresh = {(e.goal_id, e.event_id) for e in result.appended}
    await _trim_logs(rt, result.appended)
    again = [w for w in unique if (w["goal_id"], w["event_id"]) not in fresh]
    # An event already in the log may still be unpublished (an earlier publish failed) or in flight:
    # republish those the worker has not applied; the bus and the worker's inbox drop any repeat.
    pending: set[tuple[str, str]] = set()
    by_goal: dict[str, list[str]] = {}
    for wire in again:
        by_goal.setdefault(wire["goal_id"], []).append(wire["event_id"])
    for goal_id, ids in by_goal.items():
        applied = await rt.store.applied_event_ids(goal_id, ids)
        pending.update((goal_id, i) for i in ids if i not in applied)
    publish = fresh | pending
    to_publish = [w for w in unique if (w["goal_id"], w["event_id"]) in publish]
    if to_publish:
        await rt.bus.publish_many(to_publish)
    accepted = len(fresh)
    duplicates = len(wires) - accepted
    rt.metrics.events.labels("accepted").inc(accepted)
    if duplicates:
        rt.metrics.events.labels("duplicate").inc(duplicates)
    return Submitted(accepted, duplicates, event_ids)
