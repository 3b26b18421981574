"""The API and its embedded worker on the service backends: PostgreSQL or Redis state, Redis
Streams or NATS JetStream bus (skipped locally without the servers, failing under ``CI=true``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_server import collect, eventually, live_server, loop_steps

from services import require, unique_name

PAIRS = [
    pytest.param(("postgres", "redis"), id="postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
    pytest.param(("redis", "nats"), id="redis+nats", marks=[pytest.mark.redis, pytest.mark.nats]),
]


async def _drop(store_url: str, bus_url: str, name: str) -> None:
    """Remove what the test left on the shared servers (its own names only)."""
    if store_url.startswith("postgresql"):
        import psycopg

        async with await psycopg.AsyncConnection.connect(store_url.split("?")[0], autocommit=True) as con:
            await con.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    for url in (store_url, bus_url):
        if url.startswith("redis"):
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(url.split("?")[0])
            keys = [key async for key in client.scan_iter(match=f"{name}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()
    if bus_url.startswith("nats"):
        import nats

        nc = await nats.connect(bus_url.split("?")[0])
        js = nc.jetstream()
        for info in await js.streams_info():
            if info.config.name and info.config.name.startswith(name):
                await js.delete_stream(info.config.name)
        await nc.close()


@pytest.fixture(params=PAIRS)
async def urls(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    store_kind, bus_kind = request.param
    name = unique_name("gkapi")
    store_base, bus_base = require(store_kind), require(bus_kind)
    option = f"schema={name}" if store_kind == "postgres" else f"prefix={name}:"
    store_url = f"{store_base}?{option}"
    bus_url = f"{bus_base}?partitions=4&prefix={name}"
    yield store_url, bus_url
    await _drop(store_url, bus_url, name)


async def test_api_on_service_backends(urls: tuple[str, str], tmp_path: Path) -> None:
    store_url, bus_url = urls
    async with live_server(tmp_path, store_url=store_url, bus_url=bus_url) as server, server.client() as c:
        r = await c.post("/v1/goals", json={"goal_id": "g", "description": "deploy the release"})
        assert r.status_code == 201, r.text
        async with c.stream("GET", "/v1/goals/g/stream", params={"after_seq": 1}) as stream:
            r = await c.post("/v1/goals/g/events", json={"events": loop_steps(5)})
            assert r.status_code == 202
            got = await collect(stream, lambda ms: sum(m.event == "metrics" for m in ms) >= 5, timeout=30)
        assert [m.json()["seq"] for m in got if m.event == "metrics"] == [2, 3, 4, 5, 6]

        async def suggested() -> Any:
            body = (await c.get("/v1/goals/g/suggestions")).json()
            return body["suggestions"] or None

        assert await eventually(suggested, timeout=30)
        repeat = {"type": "step", "event_id": r.json()["event_ids"][0]}
        again = await c.post("/v1/goals/g/events", json=repeat)
        assert again.json()["duplicates"] == 1
        assert (await c.post("/v1/goals/g/close")).json()["status"] == "closed"
        listed = (await c.get("/v1/goals", params={"status": "closed"})).json()["goals"]
        assert [g["goal_id"] for g in listed] == ["g"]


async def test_api_on_the_volatile_memory_store(tmp_path: Path) -> None:
    # memory:// state with the volatile memory:// bus: the worker must share the API's store object.
    async with live_server(tmp_path, store_url="memory://") as server, server.client() as c:
        assert server.config.resolved_bus_url() == "memory://"
        assert (await c.post("/v1/goals", json={"goal_id": "g", "description": "x"})).status_code == 201
        await c.post("/v1/goals/g/events", json={"events": loop_steps(3)})

        async def applied() -> Any:
            return (await c.get("/v1/goals/g")).json()["metrics"]["steps"] == 3

        assert await eventually(applied)
    assert not list(tmp_path.iterdir())  # nothing written to disk
