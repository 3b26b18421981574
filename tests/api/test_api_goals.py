"""Goal routes over HTTP: create, list, get, update, close; metrics history, task state, suggestions,
feedback; health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import pytest
from api_server import LiveServer, eventually, live_server, loop_steps

GOAL = {"goal_id": "trip", "description": "book a flight to paris", "plan": ["search flights", "book", "pay"]}


async def create(c: Any, body: dict[str, Any] = GOAL) -> dict[str, Any]:
    r = await c.post("/v1/goals", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_returns_the_committed_goal(server: LiveServer) -> None:
    async with server.client() as c:
        goal = await create(c)
        again = await c.get("/v1/goals/trip")
    assert goal["goal_id"] == "trip"
    assert goal["status"] == "active"
    assert goal["version"] == 1
    assert goal["description"] == GOAL["description"]
    assert goal["plan"] == GOAL["plan"]
    assert goal["recommended_action"] == "continue"
    assert set(goal["metrics"]) >= {"current_progress", "drift_score", "loop_risk", "steps"}
    assert again.json() == goal


async def test_create_assigns_an_id_and_refuses_duplicates(server: LiveServer) -> None:
    async with server.client() as c:
        goal = await create(c, {"description": "anything"})
        assert len(goal["goal_id"]) == 32
        r = await c.post("/v1/goals", json={"goal_id": goal["goal_id"], "description": "again"})
        assert r.status_code == 409
        assert r.json()["error"] == "goal_exists"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"goal_id": "a/b", "description": "x"}, "goal_id"),
        ({"goal_id": "", "description": "x"}, "goal_id"),
        ({"goal_id": 5, "description": "x"}, "goal_id"),
        ({"goal_id": "x" * 257, "description": "x"}, "goal_id"),
        ({"goal_id": "g", "description": 5}, "description"),
        ({"goal_id": "g", "plan": "do it"}, "plan"),
        ({"goal_id": "g", "goal_state": 5}, "goal_state"),
        ({"goal_id": "g", "colour": "red"}, "colour"),
        ({"goal_id": "g", "budget": {"steps": "ten"}}, "budget.steps"),
    ],
)
async def test_create_validation(server: LiveServer, body: dict[str, Any], field: str) -> None:
    async with server.client() as c:
        r = await c.post("/v1/goals", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert await server.store.list_goals() == []


async def test_create_pending_when_no_worker_commits(tmp_path: Any) -> None:
    async with live_server(tmp_path, embedded_worker=False, commit_wait=0.2) as server, server.client() as c:
        r = await c.post("/v1/goals", json={"goal_id": "g", "description": "x"})
        assert r.status_code == 202
        assert r.json()["status"] == "pending"
        assert r.json()["goal_id"] == "g"
        assert len(r.json()["event_ids"]) == 1


async def test_get_unknown_goal_is_404(server: LiveServer) -> None:
    async with server.client() as c:
        for path in ("/v1/goals/nope", "/v1/goals/nope/task", "/v1/goals/nope/metrics",
                     "/v1/goals/nope/suggestions", "/v1/goals/nope/events"):  # fmt: skip
            r = await c.get(path)
            assert r.status_code == 404, path
            assert r.json()["error"] == "not_found", path
        assert (await c.patch("/v1/goals/nope", json={"description": "x"})).status_code == 404
        assert (await c.post("/v1/goals/nope/close")).status_code == 404


async def test_list_filters_by_status_and_pages(server: LiveServer) -> None:
    async with server.client() as c:
        for i in range(5):
            await create(c, {"goal_id": f"g{i}", "description": f"goal {i}"})
        await c.post("/v1/goals/g1/close")
        page = (await c.get("/v1/goals", params={"limit": 2})).json()
        assert [g["goal_id"] for g in page["goals"]] == ["g0", "g1"]
        assert page["next"] == "g1"
        rest = (await c.get("/v1/goals", params={"after": page["next"], "limit": 10})).json()
        assert [g["goal_id"] for g in rest["goals"]] == ["g2", "g3", "g4"]
        assert rest["next"] is None
        active = (await c.get("/v1/goals", params={"status": "active"})).json()
        closed = (await c.get("/v1/goals", params={"status": "closed"})).json()
        assert [g["goal_id"] for g in active["goals"]] == ["g0", "g2", "g3", "g4"]
        assert [g["goal_id"] for g in closed["goals"]] == ["g1"]
        assert closed["goals"][0]["status"] == "closed"
        bad = await c.get("/v1/goals", params={"status": "done"})
        assert bad.status_code == 422
        assert bad.json()["field"] == "status"
        bad = await c.get("/v1/goals", params={"limit": 0})
        assert bad.status_code == 422
        assert bad.json()["field"] == "limit"


async def test_patch_changes_the_goal(server: LiveServer) -> None:
    async with server.client() as c:
        await create(c)
        r = await c.patch("/v1/goals/trip", json={"description": "book a train to rome", "event_id": "p1"})
        assert r.status_code == 202
        assert r.json()["event_ids"] == ["p1"]
        assert r.json()["accepted"] == 1

        async def changed() -> Any:
            goal = (await c.get("/v1/goals/trip")).json()
            return goal if goal["description"] == "book a train to rome" else None

        goal = await eventually(changed)
        assert goal["version"] == 2
        assert goal["plan"] == GOAL["plan"]
        bad = await c.patch("/v1/goals/trip", json={})
        assert bad.status_code == 422
        bad = await c.patch("/v1/goals/trip", json={"goal_id": "other"})
        assert bad.status_code == 422
        assert bad.json()["field"] == "goal_id"


async def test_close_is_idempotent(server: LiveServer) -> None:
    async with server.client() as c:
        await create(c)
        first = await c.post("/v1/goals/trip/close")
        second = await c.post("/v1/goals/trip/close")
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "closed"
    assert first.json()["version"] == second.json()["version"]
    async with server.client() as c:
        patched = await c.patch("/v1/goals/trip", json={"description": "changed"})
        assert patched.status_code == 409
        assert patched.json()["error"] == "goal_closed"


async def test_metrics_task_suggestions_and_feedback(server: LiveServer) -> None:
    async with server.client() as c:
        await create(c)
        await c.post("/v1/goals/trip/events", json={"events": loop_steps(6)})

        async def suggested() -> Any:
            body = (await c.get("/v1/goals/trip/suggestions")).json()
            return body["suggestions"] if len(body["suggestions"]) >= 2 else None

        suggestions = await eventually(suggested)
        points = (await c.get("/v1/goals/trip/metrics")).json()
        task = (await c.get("/v1/goals/trip/task")).json()
        tail = (await c.get("/v1/goals/trip/metrics", params={"after_seq": 5, "limit": 1})).json()
        later = (await c.get("/v1/goals/trip/suggestions", params={"after_version": 99})).json()

        assert [p["seq"] for p in points["points"]] == list(range(1, 8))
        assert points["points"][0]["event_type"] == "goal"
        assert points["points"][-1]["loop_risk"] > points["points"][1]["loop_risk"]
        assert all(p["goal_id"] == "trip" for p in points["points"])
        assert any(f.startswith("escalation:") for f in points["points"][-1]["flags"])
        assert tail["points"][0]["seq"] == 6
        assert tail["next_after_seq"] == 6
        assert task["goal"] == GOAL["description"]
        assert task["steps"] == 6
        assert task["tools"]["search"]["calls"] == 6
        assert "Goal: book a flight" in task["context"]
        assert later["suggestions"] == []
        first = suggestions[0]
        assert first["goal_id"] == "trip"
        assert first["kind"] in ("nudge", "adjust", "replan", "abort")
        assert "search" in first["message"]

        r = await c.post(f"/v1/suggestions/{first['suggestion_id']}/feedback", json={"outcome": "helped"})
        assert r.status_code == 202
        assert r.json()["goal_id"] == "trip"
        assert r.json()["suggestion_id"] == first["suggestion_id"]
        log = (await c.get("/v1/goals/trip/events", params={"after_seq": 7})).json()["events"]
        assert log[-1]["type"] == "feedback"
        assert log[-1]["outcome"] == "helped"

        r = await c.post(f"/v1/suggestions/{first['suggestion_id']}/feedback", json={"outcome": "great"})
        assert r.status_code == 422
        assert r.json()["field"] == "outcome"
        r = await c.post(f"/v1/suggestions/{first['suggestion_id']}/feedback", json={})
        assert r.status_code == 422
        assert r.json()["field"] == "outcome"
        r = await c.post("/v1/suggestions/nope/feedback", json={"outcome": "helped"})
        assert r.status_code == 404


async def test_query_parameter_types_are_checked(server: LiveServer) -> None:
    async with server.client() as c:
        await create(c)
        r = await c.get("/v1/goals/trip/metrics", params={"after_seq": "x"})
        assert r.status_code == 422
        assert r.json()["field"] == "after_seq"
        r = await c.get("/v1/goals/trip/metrics", params={"after_seq": -1})
        assert r.status_code == 422
        assert r.json()["field"] == "after_seq"


async def test_health_and_prometheus_metrics(server: LiveServer) -> None:
    async with server.client() as c:
        health = await c.get("/healthz")
        await c.get("/v1/goals/nope")
        text = (await c.get("/metrics")).text
    assert health.status_code == 200
    assert health.json() | {"version": None} == {
        "status": "ok", "store": "ok", "bus": "ok", "worker": "running", "version": None,
    }  # fmt: skip
    assert 'goalkeeper_api_requests_total{method="GET",route="/v1/goals/{goal_id}",status="404"} 1.0' in text
    assert "goalkeeper_api_request_seconds_bucket" in text
    assert "goalkeeper_worker_" in text  # the embedded worker's registry is exposed too


async def test_openapi_and_docs_are_published(server: LiveServer) -> None:
    async with server.client() as c:
        spec = (await c.get("/openapi.json")).json()
        docs = await c.get("/docs")
    assert docs.status_code == 200
    paths = spec["paths"]
    for path in ("/v1/goals", "/v1/goals/{goal_id}", "/v1/goals/{goal_id}/close", "/v1/events",
                 "/v1/goals/{goal_id}/events", "/v1/goals/{goal_id}/metrics", "/v1/goals/{goal_id}/task",
                 "/v1/goals/{goal_id}/suggestions", "/v1/suggestions/{suggestion_id}/feedback",
                 "/v1/goals/{goal_id}/stream", "/v1/stream", "/healthz", "/metrics"):  # fmt: skip
        assert path in paths, path
    body = paths["/v1/goals"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "description" in body["properties"]
    assert "goal_id" in body["properties"]
