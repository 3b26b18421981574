"""Bearer-token auth and tenant isolation over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from api_server import TOKENS, LiveServer, collect, eventually, loop_steps

A, B = sorted(TOKENS)  # teamA, teamB

V1_ROUTES = [
    ("GET", "/v1/goals"),
    ("POST", "/v1/goals"),
    ("GET", "/v1/goals/g"),
    ("PATCH", "/v1/goals/g"),
    ("POST", "/v1/goals/g/close"),
    ("POST", "/v1/events"),
    ("POST", "/v1/goals/g/events"),
    ("GET", "/v1/goals/g/events"),
    ("GET", "/v1/goals/g/metrics"),
    ("GET", "/v1/goals/g/task"),
    ("GET", "/v1/goals/g/suggestions"),
    ("POST", "/v1/suggestions/s/feedback"),
    ("GET", "/v1/goals/g/stream"),
    ("GET", "/v1/stream"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
async def test_every_v1_route_needs_a_valid_token(auth_server: LiveServer, method: str, path: str) -> None:
    body = {"type": "step", "goal_id": "g"} if method != "GET" else None
    for headers in ({}, {"Authorization": "Bearer wrong-token-000"}, {"Authorization": "Basic abc"}):
        async with auth_server.client() as c:
            r = await c.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert await auth_server.store.list_goals() == []
    assert await auth_server.store.read_events("teamA/g") == []


async def test_public_routes_need_no_token(auth_server: LiveServer) -> None:
    async with auth_server.client() as c:
        for path in ("/healthz", "/metrics", "/", "/static/app.js", "/openapi.json"):
            assert (await c.get(path)).status_code == 200, path


async def test_tenants_are_isolated(auth_server: LiveServer) -> None:
    async with auth_server.client(A) as a, auth_server.client(B) as b:
        assert (
            await a.post("/v1/goals", json={"goal_id": "shared-name", "description": "A's goal"})
        ).status_code == 201
        await a.post("/v1/goals/shared-name/events", json={"events": loop_steps(5)})

        async def suggested() -> Any:
            body = (await a.get("/v1/goals/shared-name/suggestions")).json()
            return body["suggestions"] or None

        suggestion = (await eventually(suggested))[0]

        # B sees nothing of A's.
        assert (await b.get("/v1/goals")).json()["goals"] == []
        for path in ("", "/task", "/metrics", "/suggestions", "/events", "/stream"):
            r = await b.get(f"/v1/goals/shared-name{path}")
            assert r.status_code == 404, path
        assert (await b.post("/v1/goals/shared-name/events", json={"type": "step"})).status_code == 404
        assert (await b.patch("/v1/goals/shared-name", json={"description": "x"})).status_code == 404
        assert (await b.post("/v1/goals/shared-name/close")).status_code == 404
        r = await b.post(f"/v1/suggestions/{suggestion['suggestion_id']}/feedback", json={"outcome": "hurt"})
        assert r.status_code == 404

        # B can use the same goal id for its own goal; the two never mix.
        assert (
            await b.post("/v1/goals", json={"goal_id": "shared-name", "description": "B's goal"})
        ).status_code == 201
        b_goal = (await b.get("/v1/goals/shared-name")).json()
        a_goal = (await a.get("/v1/goals/shared-name")).json()
        assert b_goal["description"] == "B's goal"
        assert b_goal["metrics"]["steps"] == 0
        assert a_goal["description"] == "A's goal"
        assert a_goal["metrics"]["steps"] == 5
        assert [g["goal_id"] for g in (await b.get("/v1/goals")).json()["goals"]] == ["shared-name"]
        assert a_goal["goal_id"] == "shared-name"  # the tenant prefix never shows

    # How it is done: the stored ids are namespaced by tenant.
    stored = sorted(g.goal_id for g in await auth_server.store.list_goals())
    assert stored == ["teamA/shared-name", "teamB/shared-name"]


async def test_tenant_stream_only_carries_own_goals(auth_server: LiveServer) -> None:
    async with (
        auth_server.client(B) as b,
        auth_server.client(A) as a,
        b.stream("GET", "/v1/stream") as stream,
    ):
        await a.post("/v1/goals", json={"goal_id": "a-goal", "description": "A"})
        await b.post("/v1/goals", json={"goal_id": "b-goal", "description": "B"})
        got = await collect(stream, lambda ms: any(m.event == "goal" for m in ms))
    goals = [m.json()["goal_id"] for m in got if m.event == "goal"]
    assert goals == ["b-goal"]


async def test_token_in_query_parameter(auth_server: LiveServer) -> None:
    async with auth_server.client() as c:
        r = await c.get("/v1/goals", params={"access_token": A})
        assert r.status_code == 200
        r = await c.get("/v1/goals", params={"access_token": "nope-nope-nope"})
        assert r.status_code == 401
