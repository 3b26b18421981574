"""Server-Sent Events over real HTTP: live metrics and suggestions, resume, heartbeats, status changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api_server import LiveServer, SseMessage, collect, eventually, live_server, loop_steps

from goalkeeper.api.streams import parse_cursor


def of(messages: list[SseMessage], event: str) -> list[Any]:
    return [m.json() for m in messages if m.event == event]


async def test_goal_stream_pushes_metrics_and_suggestions(server: LiveServer) -> None:
    async with server.client() as c:
        await c.post("/v1/goals", json={"goal_id": "g", "description": "book a flight"})
        async with c.stream("GET", "/v1/goals/g/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["cache-control"] == "no-cache"
            # The retained history comes first (the goal event), then live commits.
            got = await collect(stream, lambda ms: len(of(ms, "metrics")) >= 1)
            assert of(got, "metrics")[0]["event_type"] == "goal"
            await c.post("/v1/goals/g/events", json={"events": loop_steps(6)})
            got += await collect(
                stream, lambda ms: len(of(ms, "metrics")) >= 6 and len(of(ms, "suggestion")) >= 2
            )
    metrics = of(got, "metrics")
    assert [p["seq"] for p in metrics] == list(range(1, 8))
    assert all(p["goal_id"] == "g" for p in metrics)
    assert metrics[-1]["loop_risk"] > 0.5
    suggestions = of(got, "suggestion")
    assert all(s["goal_id"] == "g" for s in suggestions)
    assert any("search" in s["message"] for s in suggestions)  # the loop nudge names the tool
    ids = [m.id for m in got if m.event in ("metrics", "suggestion")]
    assert all(i is not None and parse_cursor(i) is not None for i in ids)
    cursors = [parse_cursor(i) for i in ids]
    assert cursors == sorted(cursors)  # type: ignore[type-var]  # both cursors only move forward


async def test_last_event_id_resumes_without_loss_or_repeat(server: LiveServer) -> None:
    async with server.client() as c:
        await c.post("/v1/goals", json={"goal_id": "g", "description": "book a flight"})
        await c.post("/v1/goals/g/events", json={"events": loop_steps(3)})
        async with c.stream("GET", "/v1/goals/g/stream") as stream:
            first = await collect(stream, lambda ms: len(of(ms, "metrics")) >= 4)
        last_id = [m.id for m in first if m.event == "metrics"][-1]
        await c.post("/v1/goals/g/events", json={"events": loop_steps(3, query="trains")})

        async def applied() -> Any:
            return len((await c.get("/v1/goals/g/metrics")).json()["points"]) == 7

        await eventually(applied)
        async with c.stream("GET", "/v1/goals/g/stream", headers={"Last-Event-ID": last_id}) as stream:
            second = await collect(stream, lambda ms: len(of(ms, "metrics")) >= 3)
        # The query parameter does the same (for clients that cannot set headers).
        async with c.stream("GET", "/v1/goals/g/stream", params={"last_event_id": last_id}) as stream:
            third = await collect(stream, lambda ms: len(of(ms, "metrics")) >= 3)
        async with c.stream("GET", "/v1/goals/g/stream", params={"after_seq": 6}) as stream:
            fourth = await collect(stream, lambda ms: len(of(ms, "metrics")) >= 1)
    assert [p["seq"] for p in of(second, "metrics")] == [5, 6, 7]
    assert [p["seq"] for p in of(third, "metrics")] == [5, 6, 7]
    assert next(p["seq"] for p in of(fourth, "metrics")) == 7
    # Suggestions already seen before the cursor's version are not repeated.
    seen = {s["suggestion_id"] for s in of(first, "suggestion")}
    assert not seen & {s["suggestion_id"] for s in of(second, "suggestion")}


async def test_heartbeats_and_status_change(tmp_path: Path) -> None:
    async with live_server(tmp_path, heartbeat=0.2, poll_interval=0.1) as server, server.client() as c:
        await c.post("/v1/goals", json={"goal_id": "g", "description": "x"})
        async with c.stream("GET", "/v1/goals/g/stream") as stream:
            got = await collect(stream, lambda ms: any("ping" in m.comments for m in ms))
            await c.post("/v1/goals/g/close")
            got += await collect(stream, lambda ms: bool(of(ms, "goal")))
    assert any(m.data == "" and "ping" in m.comments for m in got)
    assert of(got, "goal")[0]["status"] == "closed"


async def test_stream_of_unknown_goal_is_404(server: LiveServer) -> None:
    async with server.client() as c:
        r = await c.get("/v1/goals/nope/stream")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


async def test_all_goals_stream(server: LiveServer) -> None:
    async with server.client() as c, c.stream("GET", "/v1/stream") as stream:
        await c.post("/v1/events", json={"events": [{"type": "goal", "goal_id": f"g{i}", "description": "x"}
                                                    for i in range(3)]})  # fmt: skip
        got = await collect(stream, lambda ms: {g["goal_id"] for g in of(ms, "goal")} >= {"g0", "g1", "g2"})
    summary = of(got, "goal")[0]
    assert set(summary) >= {"goal_id", "status", "version", "recommended_action", "metrics", "description"}


async def test_streams_poll_the_store_for_external_workers(tmp_path: Path) -> None:
    # An API without an embedded worker gets no commit notifications: the stream must still see
    # commits, by polling. Here a separate worker object (as in another process) does the work.
    from goalkeeper.worker import GoalFeedbackWorker, WorkerConfig

    async with (
        live_server(tmp_path, embedded_worker=False, poll_interval=0.1) as server,
        server.client() as c,
    ):
        await c.post("/v1/events", json={"type": "goal", "goal_id": "g", "description": "x"})
        runtime = server.app.state.runtime
        config = WorkerConfig(install_signal_handlers=False)
        async with (
            GoalFeedbackWorker(runtime.store, runtime.bus, config=config),
            c.stream("GET", "/v1/stream") as all_goals,
        ):
            await eventually(lambda: runtime.store.load("g"))
            async with c.stream("GET", "/v1/goals/g/stream") as stream:
                first = await collect(stream, lambda ms: len(of(ms, "metrics")) >= 1)
                await c.post("/v1/goals/g/events", json={"events": loop_steps(2)})
                first += await collect(stream, lambda ms: len(of(ms, "metrics")) >= 2)
            listed = await collect(all_goals, lambda ms: any(g["version"] >= 2 for g in of(ms, "goal")))
    assert [p["seq"] for p in of(first, "metrics")] == [1, 2, 3]
    assert of(listed, "goal")[-1]["goal_id"] == "g"


def test_parse_cursor() -> None:
    assert parse_cursor("12.7") == (12, 7)
    assert parse_cursor("12") == (12, 0)
    assert parse_cursor(None) is None
    assert parse_cursor("") is None
    assert parse_cursor("x.1") is None
    assert parse_cursor("-1.0") is None
