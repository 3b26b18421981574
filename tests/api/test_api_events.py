"""POST /v1/events and /v1/goals/{id}/events over HTTP: batches, idempotency, and bad input.

Every bad-input test also checks that nothing was stored (no goal, no event in the log).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_server import LiveServer, eventually, loop_steps


async def nothing_stored(server: LiveServer) -> None:
    assert await server.store.list_goals() == []
    assert await server.store.read_events("g1") == []


async def applied(server: LiveServer, goal: str, version_at_least: int) -> Any:
    async def check() -> Any:
        async with server.client() as c:
            r = await c.get(f"/v1/goals/{goal}")
            return (
                r.json()
                if r.status_code == 200 and r.json()["metrics"]["steps"] >= version_at_least
                else None
            )

    return await eventually(check)


async def test_single_event_creates_the_goal_and_is_applied(server: LiveServer) -> None:
    async with server.client() as c:
        r = await c.post("/v1/events", json={"type": "step", "goal_id": "g1", "event_id": "e1", "tool": "ls"})
        assert r.status_code == 202
        assert r.json() == {"accepted": 1, "duplicates": 0, "event_ids": ["e1"]}
    goal = await applied(server, "g1", 1)
    assert goal["goal_id"] == "g1"
    assert goal["status"] == "active"


async def test_batch_assigns_ids_in_input_order(server: LiveServer) -> None:
    events = [{"type": "goal", "goal_id": "g1", "description": "book a flight"}, *loop_steps(3)]
    for e in events[1:]:
        e["goal_id"] = "g1"
    events[2]["event_id"] = "mine"
    async with server.client() as c:
        r = await c.post("/v1/events", json={"events": events})
    body = r.json()
    assert r.status_code == 202
    assert body["accepted"] == 4
    assert body["duplicates"] == 0
    assert len(body["event_ids"]) == 4
    assert body["event_ids"][2] == "mine"
    assert len(set(body["event_ids"])) == 4
    await applied(server, "g1", 3)
    log = await server.store.read_events("g1")
    assert [e.event_id for e in log] == body["event_ids"]


async def test_reposting_is_idempotent(server: LiveServer) -> None:
    batch = {
        "events": [{"type": "step", "goal_id": "g1", "event_id": f"e{i}", "tool": "t"} for i in range(3)]
    }
    async with server.client() as c:
        first = (await c.post("/v1/events", json=batch)).json()
        await applied(server, "g1", 3)
        again = (await c.post("/v1/events", json=batch)).json()
        # A duplicate inside one request counts as a duplicate too.
        twice = (await c.post("/v1/events", json={"events": [batch["events"][0], batch["events"][0]]})).json()
        goal = (await c.get("/v1/goals/g1")).json()
    assert first["accepted"] == 3
    assert first["duplicates"] == 0
    assert again == {"accepted": 0, "duplicates": 3, "event_ids": ["e0", "e1", "e2"]}
    assert twice == {"accepted": 0, "duplicates": 2, "event_ids": ["e0", "e0"]}
    assert goal["metrics"]["steps"] == 3  # applied exactly once
    assert len(await server.store.metrics_history("g1")) == 3


async def test_goal_events_route_implies_the_goal(server: LiveServer) -> None:
    async with server.client() as c:
        assert (await c.post("/v1/goals", json={"goal_id": "g1", "description": "x"})).status_code == 201
        r = await c.post("/v1/goals/g1/events", json={"events": loop_steps(2)})
        assert r.status_code == 202
        assert r.json()["goal_id"] == "g1"
        assert r.json()["accepted"] == 2
        r = await c.post("/v1/goals/g1/events", json={"type": "step", "tool": "x", "goal_id": "g1"})
        assert r.status_code == 202
    await applied(server, "g1", 3)


async def test_goal_events_route_rejects_another_goal_id(server: LiveServer) -> None:
    async with server.client() as c:
        await c.post("/v1/goals", json={"goal_id": "g1", "description": "x"})
        r = await c.post("/v1/goals/g1/events", json={"events": [{"type": "step", "goal_id": "g2"}]})
    assert r.status_code == 422
    assert r.json()["field"] == "events[0].goal_id"
    assert await server.store.read_events("g2") == []


async def test_goal_events_route_unknown_goal_is_404(server: LiveServer) -> None:
    async with server.client() as c:
        r = await c.post("/v1/goals/nope/events", json={"type": "step", "tool": "x"})
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"
    assert await server.store.list_goals() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "step", "goal_id": "g1", "args": 5}, "args"),
        ({"type": "step", "goal_id": "g1", "tokens": "many"}, "tokens"),
        ({"type": "stepp", "goal_id": "g1"}, "type"),
        ({"goal_id": "g1"}, "type"),
        ({"type": "step"}, "goal_id"),
        ({"type": "step", "goal_id": ""}, "goal_id"),
        ({"type": "step", "goal_id": "a/b"}, "goal_id"),
        ({"type": "step", "goal_id": "g1", "toool": "x"}, "toool"),
        ({"type": "metrics", "goal_id": "g1", "values": {"progress": [1]}}, "values.progress"),
        ({"type": "goal", "goal_id": "g1", "plan": ["a", 3]}, "plan[1]"),
        ({"type": "goal", "goal_id": "g1", "budget": {"steps": -1}}, "budget.steps"),
        ({"type": "feedback", "goal_id": "g1", "suggestion_id": "s", "outcome": "meh"}, "outcome"),
        ({"events": [{"type": "step", "goal_id": "g1"}, {"type": "step", "goal_id": "g1", "exit_code": "1"}]},
         "events[1].exit_code"),
        ({"events": "nope"}, "events"),
        ({"events": []}, "events"),
        ({"events": [], "extra": 1}, "extra"),
    ],
)  # fmt: skip
async def test_validation_errors_name_the_field_and_store_nothing(
    server: LiveServer, body: Any, field: str
) -> None:
    async with server.client() as c:
        r = await c.post("/v1/events", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert r.json()["field"] == field
    assert field in r.json()["message"]
    await nothing_stored(server)


async def test_not_an_object_is_422(server: LiveServer) -> None:
    async with server.client() as c:
        for body in ([1, 2], "text", 3):
            r = await c.post("/v1/events", json=body)
            assert r.status_code == 422
            assert r.json()["field"] is None
    await nothing_stored(server)


@pytest.mark.parametrize(
    "raw", [b"{bad json", b'{"type": "step", "goal_id": "g1",}', b"", b"[NaN]", b"\xff\xfe"]
)
async def test_malformed_json_is_400(server: LiveServer, raw: bytes) -> None:
    async with server.client() as c:
        r = await c.post("/v1/events", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == "malformed_json"
    await nothing_stored(server)


async def test_non_json_content_type_is_415(server: LiveServer) -> None:
    async with server.client() as c:
        r = await c.post("/v1/events", data={"type": "step", "goal_id": "g1"})
    assert r.status_code == 415
    assert "application/json" in r.json()["message"]
    await nothing_stored(server)


async def test_oversized_body_is_413(tmp_path: Any) -> None:
    from api_server import live_server

    async with live_server(tmp_path, max_body_bytes=2048) as server, server.client() as c:
        big = {"type": "step", "goal_id": "g1", "output": "x" * 5000}
        r = await c.post("/v1/events", json=big)
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"

        # Also without a Content-Length header (chunked upload): counted while reading.
        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1000

        r = await c.post("/v1/events", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        small = await c.post("/v1/events", json={"type": "step", "goal_id": "g1", "event_id": "ok"})
        assert small.status_code == 202
        log = await server.store.read_events("g1")
        assert [e.event_id for e in log] == ["ok"]


async def test_too_many_events_is_413(tmp_path: Any) -> None:
    from api_server import live_server

    async with live_server(tmp_path, max_batch_events=5) as server, server.client() as c:
        r = await c.post("/v1/events", json={"events": [{"type": "step", "goal_id": "g1"}] * 6})
        assert r.status_code == 413
        assert r.json()["field"] == "events"
        await nothing_stored(server)


async def test_events_for_a_closed_goal_are_409(server: LiveServer) -> None:
    async with server.client() as c:
        await c.post("/v1/goals", json={"goal_id": "g1", "description": "x"})
        assert (await c.post("/v1/goals/g1/close")).status_code == 200
        before = len(await server.store.read_events("g1"))
        r = await c.post("/v1/events", json={"type": "step", "goal_id": "g1", "tool": "x"})
        assert r.status_code == 409
        assert r.json()["error"] == "goal_closed"
        r = await c.post("/v1/goals/g1/events", json={"type": "step", "tool": "x"})
        assert r.status_code == 409
    assert len(await server.store.read_events("g1")) == before


async def test_event_log_is_readable(server: LiveServer) -> None:
    async with server.client() as c:
        await c.post("/v1/goals", json={"goal_id": "g1", "description": "x"})
        await c.post("/v1/goals/g1/events", json={"events": loop_steps(3)})
        page = (await c.get("/v1/goals/g1/events", params={"limit": 2})).json()
        rest = (await c.get("/v1/goals/g1/events", params={"after_seq": page["next_after_seq"]})).json()
    assert [e["type"] for e in page["events"]] == ["goal", "step"]
    assert [e["seq"] for e in rest["events"]] == [3, 4]
    assert all(e["goal_id"] == "g1" for e in page["events"] + rest["events"])


async def test_wrong_method_and_unknown_route(server: LiveServer) -> None:
    async with server.client() as c:
        r = await c.get("/v1/events")
        assert r.status_code == 405
        assert r.json()["error"] == "method_not_allowed"
        r = await c.get("/v1/nothing")
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"


async def test_event_log_is_trimmed_to_its_retention(tmp_path: Any) -> None:
    from api_server import live_server

    async with live_server(tmp_path, event_log_retention=5) as server, server.client() as c:
        r = await c.post(
            "/v1/events", json={"events": [{"type": "step", "goal_id": "g1"} for _ in range(12)]}
        )
        assert r.status_code == 202
        await applied(server, "g1", 12)
        rows = await server.store.read_events("g1")
        assert [row.seq for row in rows] == [8, 9, 10, 11, 12]
        # A repost of a trimmed event is re-logged but not re-applied: the worker's inbox knows it.
        first = r.json()["event_ids"][0]
        again = await c.post("/v1/events", json={"type": "step", "goal_id": "g1", "event_id": first})
        assert again.status_code == 202
        await asyncio.sleep(0.5)
        assert (await c.get("/v1/goals/g1")).json()["metrics"]["steps"] == 12
