"""Server-Sent Events: a goal's metrics and suggestions as they are committed, and the tenant's goals.

Format (``text/event-stream``)::

    retry: 2000

    id: 12.7
    event: metrics
    data: {"seq": 12, "event_id": "...", "event_type": "step", "progress": 0.4, ...}

    id: 12.7
    event: suggestion
    data: {"suggestion_id": "...", "kind": "nudge", "message": "...", "version": 7, ...}

    : ping

The ``id`` is ``"<metrics seq>.<suggestion version>"``: the two cursors of the stream. A browser's
``EventSource`` sends the last one back as ``Last-Event-ID`` when it reconnects, and the stream
resumes from the store's history right after it, so a reconnect loses and repeats nothing (as far
as the metrics retention reaches). ``?after_seq=N`` starts after metrics point N (the dashboard
passes the last point it loaded); without a cursor the stream replays the retained history first.

The data always comes from the store; commit notifications from the embedded worker only say
*when* to read, and a poll every ``poll_interval`` seconds covers workers in other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ..ports.store import StoredSuggestion
from .auth import tenant_dependency
from .config import Tenant
from .ingest import check_goal_id, find_goal, goal_status
from .problems import ApiError
from .runtime import Runtime
from .views import metric_point, suggestion_view

__all__ = ["parse_cursor", "router"]

router = APIRouter(prefix="/v1", tags=["streams"])
T = TypeVar("T")

TenantDep = Annotated[Tenant, Depends(tenant_dependency)]
_PAGE = 500
_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_SSE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": "An SSE stream"}
}


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message. ``data`` is compact JSON, which never contains a raw newline."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def parse_cursor(raw: str | None) -> tuple[int, int] | None:
    """``"12.7"`` -> ``(12, 7)``; ``"12"`` -> ``(12, 0)``; ``None``/garbage -> ``None``."""
    if not raw:
        return None
    seq, _, version = raw.strip().partition(".")
    try:
        cursor = (int(seq), int(version or 0))
    except ValueError:
        return None
    return cursor if cursor[0] >= 0 and cursor[1] >= 0 else None


async def _shielded(call: Awaitable[T]) -> T:
    """Await a store call that the stream's cancellation must not interrupt.

    A stream is cancelled when its client disconnects, at any await. Cancelling a database driver
    in the middle of a query can leave a shared connection unusable (psycopg closes it), which
    would fail every other request; shielded, the query finishes and the stream ends afterwards.
    """
    return await asyncio.shield(call)


def _complete_versions(rows: list[StoredSuggestion]) -> list[StoredSuggestion]:
    """Drop the last version of a full page: its other suggestions may be on the next page."""
    if len(rows) < _PAGE:
        return rows
    last = rows[-1].version
    kept = [r for r in rows if r.version != last]
    return kept or rows


async def _goal_events(
    request: Request, rt: Runtime, tenant: Tenant, stored_id: str, seq: int, version: int
) -> AsyncIterator[bytes]:
    assert rt.hub is not None
    hub, config = rt.hub, rt.config
    rt.metrics.streams.inc()
    try:
        with hub.watch_goal(stored_id) as changed:
            yield b"retry: 2000\n\n"
            quiet_since = time.monotonic()
            status: str | None = None
            while not hub.closing.is_set():
                changed.clear()
                sent = False
                current = await _shielded(goal_status(rt, stored_id))
                if current is not None and current != status:
                    if status is not None:
                        record = await _shielded(rt.store.load(stored_id))
                        if record is not None:
                            yield frame("goal", rt.views.goal(record, tenant), f"{seq}.{version}")
                            sent = True
                    status = current
                points = await _shielded(rt.store.metrics_history(stored_id, after_seq=seq, limit=_PAGE))
                for point in points:
                    seq = point.seq
                    yield frame("metrics", metric_point(point, tenant), f"{seq}.{version}")
                suggestions = _complete_versions(
                    await _shielded(rt.store.suggestions(stored_id, after_version=version, limit=_PAGE))
                )
                for suggestion in suggestions:
                    version = max(version, suggestion.version)
                    yield frame("suggestion", suggestion_view(suggestion, tenant), f"{seq}.{version}")
                if points or suggestions or sent:
                    quiet_since = time.monotonic()
                if len(points) == _PAGE or len(suggestions) >= _PAGE - 1:
                    continue  # more history to replay: no waiting
                if time.monotonic() - quiet_since >= config.heartbeat:
                    yield b": ping\n\n"
                    quiet_since = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(config.poll_interval, config.heartbeat))
    finally:
        rt.metrics.streams.dec()


@router.get("/goals/{goal_id}/stream", responses=_SSE_DOC, summary="Live stream of a goal")
async def goal_stream(
    request: Request,
    goal_id: str,
    tenant: TenantDep,
    after_seq: Annotated[int | None, Query(ge=0, description="Start after this metrics point.")] = None,
    last_event_id: Annotated[
        str | None, Query(description="Resume cursor (as the Last-Event-ID header).")
    ] = None,
) -> StreamingResponse:
    """Server-Sent Events of one goal: ``metrics`` per applied event, ``suggestion`` per suggestion,
    ``goal`` when its status changes; ``: ping`` heartbeats. Resumable with ``Last-Event-ID``."""
    rt: Runtime = request.app.state.runtime
    check_goal_id(goal_id, tenant)
    stored_id = tenant.store_id(goal_id)
    if await find_goal(rt, stored_id) is None:
        raise ApiError(404, f"no goal with id {goal_id!r}")
    cursor = parse_cursor(request.headers.get("last-event-id") or last_event_id)
    if cursor is None:
        cursor = (after_seq or 0, 0)
    events = _goal_events(request, rt, tenant, stored_id, *cursor)
    return StreamingResponse(events, media_type="text/event-stream", headers=_HEADERS)


async def _tenant_events(request: Request, rt: Runtime, tenant: Tenant) -> AsyncIterator[bytes]:
    assert rt.hub is not None
    hub, config = rt.hub, rt.config
    rt.metrics.streams.inc()
    try:
        with hub.watch_tenant(tenant.prefix) as queue:
            yield b"retry: 2000\n\n"
            known: dict[str, tuple[int, str]] = {}
            for row in await _shielded(rt.store.list_goals(prefix=tenant.prefix, limit=config.list_limit)):
                known[row.goal_id] = (row.version, str(row.status))
            quiet_since = time.monotonic()
            # With an external worker nobody notifies this process: poll the goal list instead.
            poll = rt.worker is None
            while not hub.closing.is_set():
                changed: set[str] = set()
                with contextlib.suppress(TimeoutError):
                    changed.add(
                        await asyncio.wait_for(
                            queue.get(), config.poll_interval if poll else config.heartbeat
                        )
                    )
                while not queue.empty():
                    changed.add(queue.get_nowait())
                changed.discard("")
                if poll:
                    for row in await _shielded(
                        rt.store.list_goals(prefix=tenant.prefix, limit=config.list_limit)
                    ):
                        if known.get(row.goal_id) != (row.version, str(row.status)):
                            changed.add(row.goal_id)
                for goal_id in sorted(changed):
                    record = await _shielded(rt.store.load(goal_id))
                    if record is None or not tenant.owns(goal_id):
                        continue
                    state = (record.version, str(record.status))
                    if known.get(goal_id) == state:
                        continue
                    known[goal_id] = state
                    yield frame("goal", rt.views.summary(record, tenant))
                    quiet_since = time.monotonic()
                if time.monotonic() - quiet_since >= config.heartbeat:
                    yield b": ping\n\n"
                    quiet_since = time.monotonic()
    finally:
        rt.metrics.streams.dec()


@router.get("/stream", responses=_SSE_DOC, summary="Live stream of all goals")
async def tenant_stream(request: Request, tenant: TenantDep) -> StreamingResponse:
    """Server-Sent Events: a ``goal`` event (the goal's summary) whenever one of the tenant's goals
    is committed or changes status; ``: ping`` heartbeats."""
    rt: Runtime = request.app.state.runtime
    return StreamingResponse(
        _tenant_events(request, rt, tenant), media_type="text/event-stream", headers=_HEADERS
    )
