"""Units of the API runtime without a server: the change hub, the status cache, the body parser."""

from __future__ import annotations

import asyncio

import pytest

from goalkeeper.api.config import SINGLE_TENANT, Tenant
from goalkeeper.api.ingest import parse_events
from goalkeeper.api.problems import ApiError
from goalkeeper.api.runtime import ChangeHub, StatusCache


async def test_hub_wakes_the_goal_and_its_tenant_only() -> None:
    hub = ChangeHub()
    with hub.watch_goal("teamA/g") as goal, hub.watch_goal("teamA/h") as other, \
            hub.watch_tenant("teamA/") as team_a, hub.watch_tenant("teamB/") as team_b:  # fmt: skip
        hub.notify("teamA/g")
        assert goal.is_set()
        assert not other.is_set()
        assert team_a.get_nowait() == "teamA/g"
        assert team_b.empty()
        assert hub.watchers == 4
    assert hub.watchers == 0  # leaving the blocks unregisters


async def test_hub_close_ends_every_waiter() -> None:
    hub = ChangeHub()
    with hub.watch_goal("g") as goal, hub.watch_tenant("") as queue:
        hub.close()
        assert hub.closing.is_set()
        assert goal.is_set()
        assert await asyncio.wait_for(queue.get(), 1) == ""


async def test_hub_tenant_queue_is_bounded() -> None:
    hub = ChangeHub()
    with hub.watch_tenant("") as queue:
        for i in range(10_005):
            hub.notify(f"g{i}")  # a reader that never reads must not make notify block or grow
        assert queue.qsize() == 10_000


def test_status_cache_expires_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = StatusCache(ttl=2.0, maxsize=3)
    now = [100.0]
    monkeypatch.setattr("goalkeeper.api.runtime.time.monotonic", lambda: now[0])
    cache.put("a", "active")
    assert cache.get("a") == "active"
    assert cache.get("b") is None
    now[0] += 2.5
    assert cache.get("a") is None
    for key in "abc":
        cache.put(key, "active")
    cache.put("d", "closed")  # full: cleared first
    assert cache.get("a") is None
    assert cache.get("d") == "closed"


def test_parse_events_namespaces_and_assigns_ids() -> None:
    tenant = Tenant("teamA", "teamA/")
    wires = parse_events({"events": [{"type": "step", "goal_id": "g"}, {"type": "step", "goal_id": "g",
                                                                       "event_id": "e"}]},
                         tenant, max_events=10, now=5.0)  # fmt: skip
    assert [w["goal_id"] for w in wires] == ["teamA/g", "teamA/g"]
    assert wires[1]["event_id"] == "e"
    assert len(wires[0]["event_id"]) == 32
    assert wires[0]["ts"] == 5.0
    single = parse_events({"type": "message", "role": "user", "content": "hi"}, SINGLE_TENANT,
                          max_events=1, implied_goal="g")  # fmt: skip
    assert single[0]["goal_id"] == "g"


def test_parse_events_limits_goal_id_length_per_tenant() -> None:
    tenant = Tenant("teamA", "teamA/")
    ok = "x" * tenant.max_goal_id
    assert parse_events({"type": "step", "goal_id": ok}, tenant, max_events=1)[0]["goal_id"] == "teamA/" + ok
    with pytest.raises(ApiError) as info:
        parse_events({"type": "step", "goal_id": ok + "x"}, tenant, max_events=1)
    assert info.value.status == 422
    assert info.value.field == "goal_id"
