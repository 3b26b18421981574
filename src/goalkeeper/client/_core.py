"""The HTTP backend's operations, sans I/O: requests, retries, polling, parsing, error mapping.

Shapes follow ``docs/api.md`` (routes under ``/v1``; every error body is
``{"error": code, "message": text, "field": dotted-field-or-null}``). The drivers in
:mod:`goalkeeper.client._http` perform the I/O these generators ask for.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Mapping
from typing import Any
from urllib.parse import quote

from ..core.model import Event, FeedbackOutcome, Suggestion
from ..errors import ConfigurationError, GoalNotFound, InvalidInputError, ValidationError
from ..events import event_to_dict, parse_suggestion
from ._errors import ServiceUnavailable
from ._exchange import RetryPolicy, error_for, exchange
from ._model import ACTIONS, Action, Decision, GoalView, Receipt
from ._protocol import Call, Failure, GoalFields, Instruction, Reply, Request, Response, Sleep

__all__ = ["MAX_BATCH", "HttpOps", "RetryPolicy", "error_for", "exchange", "parse_goal"]

#: Most events the server takes in one request; bigger batches are split.
MAX_BATCH = 1000
#: Goals asked for per page of ``GET /v1/goals`` (the server's default cap is 500).
LIST_PAGE = 500
#: The goal-alignment metrics a decision carries.
_ALIGNMENT = ("current_progress", "drift_score", "loop_risk")
#: Goals whose metrics cursor a client remembers (least recently used are forgotten).
CURSORS = 1024
#: Metric points remembered per goal, so concurrent ``record`` calls find each other's points.
RECENT_POINTS = 256


def _obj(response: Response, what: str) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise ServiceUnavailable(f"the server answered {what} with something that is not a JSON object")
    return data


def _action(value: object) -> Action:
    for action in ACTIONS:
        if value == action:
            return action
    raise ServiceUnavailable(f"the server sent an unknown action {value!r}")


def parse_goal(data: Mapping[str, Any]) -> GoalView:
    """A goal object of the API as a :class:`GoalView`."""
    try:
        return GoalView(
            goal_id=str(data["goal_id"]),
            status=str(data.get("status", "active")),
            version=int(data.get("version", 0)),
            description=str(data.get("description") or ""),
            plan=tuple(str(p) for p in data.get("plan") or ()),
            goal_state=dict(data.get("goal_state") or {}),
            metrics=dict(data.get("metrics") or {}),
            recommended_action=_action(data.get("recommended_action", "continue")),
            routing=str(data.get("routing") or "system1"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailable(f"the server sent a malformed goal object: {exc!r}") from None


def _receipt(data: Mapping[str, Any]) -> Receipt:
    try:
        return Receipt(
            int(data["accepted"]), int(data["duplicates"]), tuple(str(e) for e in data["event_ids"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ServiceUnavailable(f"the server sent a malformed receipt: {exc!r}") from None


class HttpOps:
    """The operations of a remote goalkeeper server (one instance per client).

    Args:
        retry: the retry policy of every request.
        decision_timeout: how long :meth:`record` waits for the server's worker to apply the event
            (seconds).
        poll_interval: the first delay between two polls of :meth:`record`; it grows by half each
            time up to ``max_poll_interval``.
        max_poll_interval: the longest delay between two polls.
    """

    def __init__(
        self,
        retry: RetryPolicy,
        *,
        decision_timeout: float = 10.0,
        poll_interval: float = 0.005,
        max_poll_interval: float = 0.2,
    ) -> None:
        for name, value in (
            ("decision_timeout", decision_timeout),
            ("poll_interval", poll_interval),
            ("max_poll_interval", max_poll_interval),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ConfigurationError(f"{name} must be seconds in (0, 3600], got {value!r}")
        self.retry = retry
        self.decision_timeout = float(decision_timeout)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        # Per goal: the metrics seq read up to, and the points read lately (event_id -> point).
        self._lock = threading.Lock()
        self._cursors: OrderedDict[str, tuple[int, OrderedDict[str, dict[str, Any]]]] = OrderedDict()

    def _call(self, request: Request) -> Generator[Instruction, Reply, Response]:
        return exchange(request, self.retry)

    # -- goals ------------------------------------------------------------------------------------

    def create_goal(self, goal_id: str, fields: GoalFields) -> Call[GoalView]:
        """``POST /v1/goals``; waits for the goal when the server answers 202 (not yet committed)."""
        body = {**fields.body, "event_id": fields.event.event_id, "goal_id": goal_id}
        resp = yield from self._call(Request("POST", "/v1/goals", body=body, idempotent=False))
        data = _obj(resp, "POST /v1/goals")
        if resp.status == 202 or data.get("status") == "pending":
            return (yield from self._await_goal(str(data.get("goal_id", goal_id))))
        return parse_goal(data)

    def _await_goal(self, goal_id: str) -> Call[GoalView]:
        deadline = time.monotonic() + self.decision_timeout
        for delay in self._delays():
            try:
                return (yield from self.get_goal(goal_id))
            except GoalNotFound:
                if time.monotonic() + delay > deadline:
                    break
                yield Sleep(delay)
        raise ServiceUnavailable(
            f"goal {goal_id!r} was accepted but not committed within {self.decision_timeout}s"
        )

    def get_goal(self, goal_id: str) -> Call[GoalView]:
        """``GET /v1/goals/{goal_id}``."""
        resp = yield from self._call(Request("GET", _goal_path(goal_id)))
        return parse_goal(_obj(resp, "GET goal"))

    def list_goals(self, status: str | None) -> Call[list[GoalView]]:
        """``GET /v1/goals`` page by page."""
        out: list[GoalView] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": LIST_PAGE}
            if status is not None:
                params["status"] = status
            if after is not None:
                params["after"] = after
            data = _obj((yield from self._call(Request("GET", "/v1/goals", params=params))), "GET /v1/goals")
            out.extend(parse_goal(g) for g in data.get("goals") or ())
            after = data.get("next")
            if not after:
                return out

    def update_goal(self, goal_id: str, fields: GoalFields) -> Call[Receipt]:
        """``PATCH /v1/goals/{goal_id}`` (idempotent: the goal event carries its ``event_id``)."""
        body = {**fields.body, "event_id": fields.event.event_id}
        resp = yield from self._call(Request("PATCH", _goal_path(goal_id), body=body))
        return _receipt(_obj(resp, "PATCH goal"))

    def close_goal(self, goal_id: str) -> Call[GoalView]:
        """``POST /v1/goals/{goal_id}/close`` (idempotent on the server)."""
        resp = yield from self._call(Request("POST", _goal_path(goal_id) + "/close"))
        return parse_goal(_obj(resp, "close"))

    # -- events -----------------------------------------------------------------------------------

    def send(self, events: list[Event]) -> Call[Receipt]:
        """``POST /v1/events`` in batches of :data:`MAX_BATCH` (idempotent: events carry ids)."""
        accepted = duplicates = 0
        ids: list[str] = []
        for start in range(0, len(events), MAX_BATCH):
            body = {"events": [event_to_dict(e) for e in events[start : start + MAX_BATCH]]}
            receipt = _receipt(
                _obj((yield from self._call(Request("POST", "/v1/events", body=body))), "events")
            )
            accepted += receipt.accepted
            duplicates += receipt.duplicates
            ids.extend(receipt.event_ids)
        return Receipt(accepted, duplicates, tuple(ids))

    def record(self, event: Event) -> Call[Decision]:
        """Send one event, wait until the server's worker applied it, and return the decision.

        The worker applies events asynchronously, so the decision is read back: the goal's metric
        points are polled for the one of this event (it carries the action and the metrics), then
        the suggestions of that state version are fetched.
        """
        receipt = yield from self.send([event])
        event_id = receipt.event_ids[0] if receipt.event_ids else event.event_id
        duplicate = receipt.duplicates > 0
        point = yield from self._find_point(event.goal_id, event_id, wait=not duplicate)
        if point is None:
            # A duplicate whose point this client read past long ago: the answer is the goal's
            # standing state (a duplicate changed nothing and brought no new suggestion).
            goal = yield from self.get_goal(event.goal_id)
            metrics = {k: float(goal.metrics.get(k, 0.0)) for k in _ALIGNMENT}
            return Decision(goal.goal_id, event_id, goal.version, goal.recommended_action, metrics, (), True)
        version = int(point["version"]) if isinstance(point.get("version"), int) else None
        if version is None:
            version = (yield from self.get_goal(event.goal_id)).version
        suggestions = yield from self.suggestions(event.goal_id, max(version - 1, 0), 100)
        metrics = {
            "current_progress": float(point.get("progress", 0.0)),
            "drift_score": float(point.get("drift_score", 0.0)),
            "loop_risk": float(point.get("loop_risk", 0.0)),
        }
        mine = tuple(s for s in suggestions if s.version == version)
        return Decision(
            event.goal_id,
            event_id,
            version,
            _action(point.get("action")),
            metrics,
            mine,
            duplicate,
        )

    def _find_point(self, goal_id: str, event_id: str, *, wait: bool) -> Call[dict[str, Any] | None]:
        """The metric point of ``event_id``; with ``wait=False``, ``None`` once the history is read."""
        deadline = time.monotonic() + self.decision_timeout
        for delay in self._delays():
            found, cursor = self._seen(goal_id, event_id, ())
            if found is not None:
                return found
            points = yield from self.metrics_history(goal_id, cursor, 1000)
            found, _ = self._seen(goal_id, event_id, points)
            if found is not None:
                return found
            if len(points) >= 1000:
                continue  # more history to read before waiting
            if not wait:
                return None
            if time.monotonic() + delay > deadline:
                break
            yield Sleep(delay)
        raise ServiceUnavailable(
            f"event {event_id!r} of goal {goal_id!r} was accepted but not applied within "
            f"{self.decision_timeout}s (is the server's worker running?)"
        )

    def _seen(
        self, goal_id: str, event_id: str, points: list[dict[str, Any]] | tuple[()]
    ) -> tuple[dict[str, Any] | None, int]:
        """Take in newly read points; return (the point of ``event_id`` if seen, the goal's cursor).

        Under a lock: several threads may share a sync client (framework callbacks run on worker
        threads) and several coroutines an async one; the cursor only moves forward.
        """
        with self._lock:
            entry = self._cursors.get(goal_id)
            if entry is None:
                entry = self._cursors[goal_id] = (0, OrderedDict())
                while len(self._cursors) > CURSORS:
                    self._cursors.popitem(last=False)
            self._cursors.move_to_end(goal_id)
            cursor, recent = entry
            for point in points:
                recent[str(point.get("event_id"))] = point
                if len(recent) > RECENT_POINTS:
                    recent.popitem(last=False)
                seq = point.get("seq")
                cursor = max(cursor, seq if isinstance(seq, int) else cursor)
            self._cursors[goal_id] = (cursor, recent)
            return recent.get(event_id), cursor

    def _delays(self) -> Generator[float, None, None]:
        delay = self.poll_interval
        while True:
            yield delay
            delay = min(delay * 1.5, self.max_poll_interval)

    # -- reading ----------------------------------------------------------------------------------

    def suggestions(self, goal_id: str, after_version: int, limit: int) -> Call[list[Suggestion]]:
        """``GET /v1/goals/{goal_id}/suggestions``."""
        params: dict[str, str | int] = {"after_version": after_version, "limit": limit}
        data = _obj(
            (yield from self._call(Request("GET", _goal_path(goal_id) + "/suggestions", params))),
            "suggestions",
        )
        out = []
        for item in data.get("suggestions") or ():
            wire = {k: v for k, v in item.items() if k not in ("created_at", "delivered")}
            try:
                out.append(parse_suggestion(wire))
            except ValidationError as exc:
                raise ServiceUnavailable(f"the server sent a malformed suggestion: {exc}") from None
        return out

    def feedback(self, suggestion_id: str, outcome: FeedbackOutcome, event_id: str) -> Call[Receipt]:
        """``POST /v1/suggestions/{id}/feedback`` (idempotent: it carries an ``event_id``)."""
        path = f"/v1/suggestions/{quote(suggestion_id, safe='')}/feedback"
        body = {"outcome": outcome.value, "event_id": event_id}
        return _receipt(_obj((yield from self._call(Request("POST", path, body=body))), "feedback"))

    def task(self, goal_id: str) -> Call[dict[str, Any]]:
        """``GET /v1/goals/{goal_id}/task``."""
        return _obj((yield from self._call(Request("GET", _goal_path(goal_id) + "/task"))), "task")

    def metrics_history(self, goal_id: str, after_seq: int, limit: int) -> Call[list[dict[str, Any]]]:
        """``GET /v1/goals/{goal_id}/metrics``."""
        params: dict[str, str | int] = {"after_seq": after_seq, "limit": limit}
        data = _obj(
            (yield from self._call(Request("GET", _goal_path(goal_id) + "/metrics", params))), "metrics"
        )
        points = data.get("points") or []
        return [dict(p) for p in points if isinstance(p, Mapping)]

    def health(self) -> Call[dict[str, Any]]:
        """``GET /healthz`` (a 503 answer is returned, not raised: it is the health)."""
        reply = yield Request("GET", "/healthz")
        if isinstance(reply, Failure):
            raise ServiceUnavailable(
                f"GET /healthz: {type(reply.error).__name__}: {reply.error}"
            ) from reply.error
        assert isinstance(reply, Response)
        data = reply.json()
        return dict(data) if isinstance(data, Mapping) else {"status": f"HTTP {reply.status}"}


def _goal_path(goal_id: str) -> str:
    if not isinstance(goal_id, str) or not goal_id.strip():
        raise InvalidInputError(f"must be a non-empty string, got {goal_id!r}", field="goal_id")
    if "/" in goal_id:
        raise InvalidInputError("a goal id cannot contain '/' (it appears in URL paths)", field="goal_id")
    return f"/v1/goals/{quote(goal_id, safe='')}"
