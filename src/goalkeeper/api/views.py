"""What the API shows of a stored goal: goal objects, task state, metric points, suggestions.

A goal's state is a :class:`~goalkeeper.core.session.GoalSession` snapshot. Reading it means
restoring the session (a few milliseconds for a long-running goal), so :class:`GoalViews` caches
the derived view per ``(goal id, version)``: a version never changes once committed, so a cached
view is never stale, and the bounded LRU keeps memory flat however many goals are listed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .._views import task_view
from ..core.session import GoalSession
from ..errors import SnapshotError
from ..ports.store import GoalRecord, GoalSummary, MetricPoint, StoredSuggestion
from .config import Tenant

__all__ = ["GoalView", "GoalViews", "metric_point", "suggestion_view"]

GoalView = dict[str, Any]


def _session_view(record: GoalRecord) -> tuple[GoalView, dict[str, Any]]:
    """(goal view without status/ids, task view) of a stored snapshot."""
    try:
        session = GoalSession.restore(record.snapshot)
    except SnapshotError as exc:
        # A snapshot we cannot read (written by a newer goalkeeper, or corrupted): show the goal
        # with what the record itself says rather than failing every list that contains it.
        return {"error": f"state unreadable: {exc}"}, {"error": f"state unreadable: {exc}"}
    metrics = session.metrics.to_dict()
    if metrics.get("budget") is not None:
        metrics["budget"] = str(metrics["budget"])
    view: GoalView = {
        "description": session.goal,
        "plan": list(session.tracker.plan),
        "goal_state": session.feedback_loop.goal_state,
        "metrics": metrics,
        "recommended_action": session.recommended_action,
        "routing": session.routing.value,
    }
    return view, task_view(session)


class GoalViews:
    """A bounded LRU cache of goal views keyed by ``(stored goal id, version)``.

    Args:
        maxsize: views kept (each is a few kilobytes).
    """

    def __init__(self, maxsize: int = 2048) -> None:
        self._maxsize = maxsize
        self._cache: OrderedDict[tuple[str, int], tuple[GoalView, dict[str, Any]]] = OrderedDict()

    def _get(self, record: GoalRecord) -> tuple[GoalView, dict[str, Any]]:
        key = (record.goal_id, record.version)
        hit = self._cache.get(key)
        if hit is None:
            hit = _session_view(record)
            self._cache[key] = hit
            if len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return hit

    def cached_summary(self, row: GoalSummary, tenant: Tenant) -> GoalView | None:
        """The summary of ``row`` if its version's view is cached (no snapshot load needed), else None."""
        hit = self._cache.get((row.goal_id, row.version))
        if hit is None:
            return None
        self._cache.move_to_end((row.goal_id, row.version))
        return self._summary(row.goal_id, row.version, row.updated_at, str(row.status), hit[0], tenant)

    @staticmethod
    def _summary(
        goal_id: str, version: int, updated_at: float, status: str, view: GoalView, tenant: Tenant
    ) -> GoalView:
        return {
            "goal_id": tenant.client_id(goal_id),
            "status": status,
            "version": version,
            "updated_at": updated_at,
            "description": view.get("description"),
            "recommended_action": view.get("recommended_action"),
            "metrics": view.get("metrics"),
        }

    def goal(self, record: GoalRecord, tenant: Tenant) -> GoalView:
        """The goal object of the API (see ``docs/api.md``) for ``record``."""
        view, _ = self._get(record)
        return {
            "goal_id": tenant.client_id(record.goal_id),
            "status": str(record.status),
            "version": record.version,
            "updated_at": record.updated_at,
            **view,
        }

    def summary(self, record: GoalRecord, tenant: Tenant) -> GoalView:
        """The short form used in lists and the all-goals stream."""
        view, _ = self._get(record)
        return self._summary(
            record.goal_id, record.version, record.updated_at, str(record.status), view, tenant
        )

    def task(self, record: GoalRecord, tenant: Tenant) -> dict[str, Any]:
        """The task state (TaskState-like summary) of ``record``."""
        _, task = self._get(record)
        return {"goal_id": tenant.client_id(record.goal_id), **task}


def metric_point(point: MetricPoint, tenant: Tenant) -> dict[str, Any]:
    """One metrics-history point as the API shows it (the worker's fields plus ``seq``)."""
    out = dict(point.point)
    out["seq"] = point.seq
    out["goal_id"] = tenant.client_id(point.goal_id)
    out.setdefault("created_at", point.created_at)
    return out


def suggestion_view(stored: StoredSuggestion, tenant: Tenant) -> dict[str, Any]:
    """A stored suggestion as the API shows it (wire fields plus version, time and delivery)."""
    out = dict(stored.suggestion)
    out.pop("v", None)
    out["goal_id"] = tenant.client_id(stored.goal_id)
    out["suggestion_id"] = stored.suggestion_id
    out["version"] = stored.version
    out["created_at"] = stored.created_at
    out["delivered"] = stored.delivered
    return out
