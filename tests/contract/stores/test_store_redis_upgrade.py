"""Redis schema 1 -> 2 at a size that spans several migration pages (goals and suggestions)."""

from __future__ import annotations

import json

import pytest
import redis
from store_backends import with_options

from goalkeeper.stores import open_store
from services import require, unique_name

pytestmark = pytest.mark.redis


async def test_upgrade_indexes_every_goal_and_suggestion_across_pages() -> None:
    base = require("redis")
    prefix = unique_name("gk") + ":"
    url = with_options(base, prefix=prefix)
    client = redis.Redis.from_url(base, decode_responses=True)
    try:
        # What schema 1 left: 1,234 goals (one already closed by a newer process mid-upgrade),
        # each with one suggestion, every third one delivered.
        pipe = client.pipeline(transaction=False)
        pipe.set(f"{prefix}schema", 1)
        for i in range(1234):
            goal, sid = f"goal{i:05d}", f"s{i:05d}"
            pipe.hset(f"{prefix}g:{goal}", mapping={"v": 1, "s": "{}", "t": 100.0, "n": 0})
            pipe.zadd(f"{prefix}goals", {goal: 0})
            payload = json.dumps({"suggestion_id": sid, "goal_id": goal})
            delivered = 100.5 if i % 3 == 0 else 0
            pipe.hset(
                f"{prefix}out:{sid}", mapping={"g": goal, "v": 1, "p": payload, "t": 100.0, "d": delivered}
            )
            if not delivered:
                pipe.zadd(f"{prefix}pending", {sid: i + 1})
        pipe.hset(f"{prefix}g:goal00007", "st", "closed")
        pipe.zadd(f"{prefix}gst:closed", {"goal00007": 0})
        pipe.execute()

        async with open_store(url) as store:
            assert await store.schema_version() == 2
            active = []
            after = None
            while page := await store.list_goals(status="active", after=after, limit=500):
                active.extend(g.goal_id for g in page)
                after = page[-1].goal_id
            assert len(active) == 1233
            assert "goal00007" not in active
            assert [g.goal_id for g in await store.list_goals(status="closed")] == ["goal00007"]
            for i in (0, 1, 777, 1233):
                (found,) = await store.suggestions(f"goal{i:05d}")
                assert (found.suggestion_id, found.delivered) == (f"s{i:05d}", i % 3 == 0)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
