"""The sans-I/O core, driven by hand (no server), and the httpx shells over mock transports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from goalkeeper.client import (
    AsyncGoalkeeperClient,
    AuthenticationError,
    GoalkeeperClient,
    RetryPolicy,
    ServiceUnavailable,
)
from goalkeeper.client._core import HttpOps, error_for, exchange
from goalkeeper.client._protocol import Failure, Request, Response, Sleep, as_event
from goalkeeper.errors import ConfigurationError, GoalError, GoalNotFound, InvalidInputError, ValidationError

NO_JITTER = RetryPolicy(attempts=2, backoff=0.1, jitter=False)


def drive(call: Any, answer: Callable[[Request], Response | Failure]) -> tuple[Any, list[Any]]:
    """Run an operation, answering its requests with ``answer``; return (result, instructions)."""
    seen: list[Any] = []
    reply: Any = None
    while True:
        try:
            instruction = call.send(reply)
        except StopIteration as stop:
            return stop.value, seen
        seen.append(instruction)
        reply = None if isinstance(instruction, Sleep) else answer(instruction)


def body(status: int, data: Any, retry_after: float | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), retry_after)


def test_retry_delays_double_up_to_the_cap_and_honour_retry_after() -> None:
    policy = RetryPolicy(attempts=5, backoff=0.5, max_backoff=1.5, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert policy.delay(1, retry_after=0.25) == 0.25
    assert policy.delay(1, retry_after=99) == 1.5
    jittered = RetryPolicy(backoff=1.0)
    assert all(0.5 <= jittered.delay(1) <= 1.0 for _ in range(50))
    for bad in ({"attempts": -1}, {"attempts": True}, {"backoff": -1}, {"max_backoff": "1"}):
        with pytest.raises(ConfigurationError):
            RetryPolicy(**bad)


def test_an_idempotent_request_is_retried_after_a_timeout_and_a_5xx() -> None:
    replies = iter(
        [Failure(TimeoutError("read"), sent=True), body(503, {}, retry_after=0.05), body(200, {"ok": 1})]
    )
    result, seen = drive(exchange(Request("GET", "/x"), NO_JITTER), lambda r: next(replies))
    assert result.json() == {"ok": 1}
    assert [type(s).__name__ for s in seen] == ["Request", "Sleep", "Request", "Sleep", "Request"]
    assert [s.seconds for s in seen if isinstance(s, Sleep)] == [0.1, 0.05]


def test_a_non_idempotent_request_is_retried_only_when_it_never_left() -> None:
    post = Request("POST", "/v1/goals", body={}, idempotent=False)
    replies = iter([Failure(ConnectionRefusedError(), sent=False), body(201, {})])
    result, _ = drive(exchange(post, NO_JITTER), lambda r: next(replies))
    assert result.status == 201
    timeout = TimeoutError("read")
    with pytest.raises(ServiceUnavailable) as caught:
        drive(exchange(post, NO_JITTER), lambda r: Failure(timeout, sent=True))
    assert caught.value.__cause__ is timeout
    with pytest.raises(ServiceUnavailable) as failed:
        drive(exchange(post, NO_JITTER), lambda r: body(500, {"message": "boom"}))
    assert failed.value.status == 500


def test_retries_stop_after_the_allowed_attempts() -> None:
    calls = []

    def down(request: Request) -> Response:
        calls.append(request)
        return body(503, {"error": "service_unavailable", "message": "store down"})

    with pytest.raises(ServiceUnavailable, match="store down") as caught:
        drive(exchange(Request("GET", "/x"), NO_JITTER), down)
    assert len(calls) == 3
    assert caught.value.status == 503


@pytest.mark.parametrize(
    ("status", "path", "error", "field"),
    [
        (401, "/v1/goals", AuthenticationError, None),
        (404, "/v1/goals/g%2F1/task", GoalNotFound, None),
        (404, "/v1/suggestions/s1/feedback", InvalidInputError, "suggestion_id"),
        (409, "/v1/goals", GoalError, None),
        (413, "/v1/events", InvalidInputError, None),
        (422, "/v1/events", ValidationError, "events[2].args"),
        (400, "/v1/events", ValidationError, None),
        (418, "/v1/events", ConfigurationError, None),
    ],
)
def test_error_mapping(status: int, path: str, error: type, field: str | None) -> None:
    data = {"error": "x", "message": "what went wrong", "field": field}
    exc = error_for(body(status, data), Request("POST", path))
    assert type(exc) is error
    if field is not None:
        assert exc.field == field
    if isinstance(exc, GoalNotFound):
        assert exc.goal_id == "g/1"


def test_record_polls_until_the_worker_applied_the_event() -> None:
    ops = HttpOps(NO_JITTER, poll_interval=0.01, max_poll_interval=0.02)
    event = as_event({"type": "step", "goal_id": "g", "event_id": "e2", "tool": "search"})
    polls = iter(
        [
            [],
            [{"seq": 1, "event_id": "e1"}],
            [
                {
                    "seq": 2,
                    "event_id": "e2",
                    "version": 2,
                    "action": "adjust",
                    "progress": 0.1,
                    "drift_score": 0.2,
                    "loop_risk": 0.65,
                }
            ],
        ]
    )
    suggestion = {
        "suggestion_id": "s",
        "goal_id": "g",
        "kind": "adjust",
        "message": "try else",
        "version": 2,
        "created_at": 1.0,
        "delivered": True,
    }
    older = {**suggestion, "suggestion_id": "s0", "version": 1}

    def server(request: Request) -> Response:
        if request.path == "/v1/events":
            assert request.body["events"][0]["event_id"] == "e2"
            return body(202, {"accepted": 1, "duplicates": 0, "event_ids": ["e2"]})
        if request.path.endswith("/metrics"):
            return body(200, {"points": next(polls)})
        assert request.params["after_version"] == 1
        return body(200, {"suggestions": [older, suggestion]})

    decision, seen = drive(ops.record(event), server)
    assert decision.action == "adjust"
    assert decision.metrics == {"current_progress": 0.1, "drift_score": 0.2, "loop_risk": 0.65}
    assert [s.suggestion_id for s in decision.suggestions] == ["s"]
    assert decision.nudge == "try else"
    assert [s.seconds for s in seen if isinstance(s, Sleep)] == [0.01, 0.015]
    # The cursor moved on: the next poll asks only for newer points.
    metrics_requests = [s for s in seen if isinstance(s, Request) and s.path.endswith("/metrics")]
    assert [r.params["after_seq"] for r in metrics_requests] == [0, 0, 1]


def test_record_gives_up_when_the_event_is_never_applied() -> None:
    ops = HttpOps(NO_JITTER, decision_timeout=0.05, poll_interval=0.01, max_poll_interval=0.01)
    event = as_event({"type": "step", "goal_id": "g", "tool": "search"})

    def server(request: Request) -> Response:
        if request.path == "/v1/events":
            return body(202, {"accepted": 1, "duplicates": 0, "event_ids": [event.event_id]})
        return body(200, {"points": []})

    def run() -> None:  # a driver that really sleeps: the deadline is wall-clock time
        call, reply = ops.record(event), None
        while True:
            instruction = call.send(reply)
            if isinstance(instruction, Sleep):
                time.sleep(instruction.seconds)
                reply = None
            else:
                reply = server(instruction)

    with pytest.raises(ServiceUnavailable, match="not applied within"):
        run()


def test_malformed_answers_are_service_errors() -> None:
    ops = HttpOps(NO_JITTER)
    with pytest.raises(ServiceUnavailable, match="not a JSON object"):
        drive(ops.get_goal("g"), lambda r: Response(200, b"<html>"))
    with pytest.raises(ServiceUnavailable, match="malformed goal"):
        drive(ops.get_goal("g"), lambda r: body(200, {"status": "active"}))
    with pytest.raises(ServiceUnavailable, match="unknown action"):
        drive(ops.get_goal("g"), lambda r: body(200, {"goal_id": "g", "recommended_action": "panic"}))
    with pytest.raises(InvalidInputError, match="'/'"):
        drive(ops.get_goal("a/b"), lambda r: body(200, {}))


def test_sends_are_split_into_batches_the_server_takes() -> None:
    ops = HttpOps(NO_JITTER)
    events = [as_event({"type": "step", "goal_id": "g", "tool": "t"}) for _ in range(2500)]
    sizes = []

    def server(request: Request) -> Response:
        sizes.append(len(request.body["events"]))
        ids = [e["event_id"] for e in request.body["events"]]
        return body(202, {"accepted": len(ids), "duplicates": 0, "event_ids": ids})

    receipt, _ = drive(ops.send(events), server)
    assert sizes == [1000, 1000, 500]
    assert receipt.accepted == 2500
    assert receipt.event_ids == tuple(e.event_id for e in events)


# -- the httpx shells -------------------------------------------------------------------------------


def goal_json(goal_id: str = "g") -> dict[str, Any]:
    return {
        "goal_id": goal_id,
        "status": "active",
        "version": 1,
        "recommended_action": "continue",
        "metrics": {},
    }


def test_sync_client_sends_the_token_and_retries_refused_connections() -> None:
    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("refused", request=request)
        assert request.headers["Authorization"] == "Bearer secret"
        assert request.headers["User-Agent"].startswith("goalkeeper-client/")
        return httpx.Response(200, json=goal_json())

    with GoalkeeperClient(
        "http://gk.test",
        token="secret",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(backoff=0.001),
    ) as gk:
        assert gk.get_goal("g").goal_id == "g"
    assert len(attempts) == 2


def test_sync_client_reads_the_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOALKEEPER_TOKEN", "from-env")
    seen = []
    transport = httpx.MockTransport(
        lambda r: seen.append(r.headers.get("Authorization")) or httpx.Response(401, json={})
    )
    with GoalkeeperClient("http://gk.test", transport=transport) as gk, pytest.raises(AuthenticationError):
        gk.list_goals()
    assert seen == ["Bearer from-env"]


async def test_async_client_posts_json_and_maps_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            assert request.headers["Content-Type"] == "application/json"
            sent = json.loads(request.content)
            assert sent["goal_id"] == "g"
            assert sent["description"] == "goal text"
            assert sent["event_id"]
            return httpx.Response(201, json=goal_json())
        return httpx.Response(404, json={"error": "not_found", "message": "no goal"})

    async with AsyncGoalkeeperClient("http://gk.test/", transport=httpx.MockTransport(handler)) as gk:
        assert gk.base_url == "http://gk.test"
        assert (await gk.create_goal("goal text", goal_id="g")).version == 1
        with pytest.raises(GoalNotFound):
            await gk.get_goal("other")


async def test_async_client_reports_an_unreachable_server() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    gk = AsyncGoalkeeperClient(
        "http://gk.test", transport=httpx.MockTransport(handler), retry=RetryPolicy(attempts=1, backoff=0.001)
    )
    with pytest.raises(ServiceUnavailable, match="ConnectError") as caught:
        await gk.health()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    await gk.aclose()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "gk.test"},
        {"base_url": "ftp://gk.test"},
        {"timeout": 0},
        {"token": ""},
        {"decision_timeout": -1},
    ],
)
def test_bad_client_configuration(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("base_url", "http://gk.test")
    with pytest.raises(ConfigurationError):
        GoalkeeperClient(**kwargs)


def test_a_duplicate_read_past_long_ago_is_answered_from_the_goal() -> None:
    ops = HttpOps(NO_JITTER)
    event = as_event({"type": "step", "goal_id": "g", "event_id": "old", "tool": "t"})

    def server(request: Request) -> Response:
        if request.path == "/v1/events":
            return body(202, {"accepted": 0, "duplicates": 1, "event_ids": ["old"]})
        if request.path.endswith("/metrics"):
            return body(
                200, {"points": [{"seq": 9, "event_id": "newer", "version": 9, "action": "continue"}]}
            )
        data = goal_json()
        data.update(version=9, recommended_action="replan", metrics={"loop_risk": 0.9})
        return body(200, data)

    decision, seen = drive(ops.record(event), server)
    assert not any(isinstance(s, Sleep) for s in seen)  # no waiting for a point that will not come
    assert decision.duplicate
    assert (decision.version, decision.action, decision.suggestions) == (9, "replan", ())
    assert decision.metrics == {"current_progress": 0.0, "drift_score": 0.0, "loop_risk": 0.9}
