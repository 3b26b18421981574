"""Partition leases on every backend: membership, assignment, clean and dirty grants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from goalkeeper.errors import ConfigurationError
from goalkeeper.worker.leases import LeaseBackend, LocalLeases, assign, lease_url_for, open_leases
from services import require, unique_name

KINDS = [
    pytest.param("local", id="local"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=KINDS)
async def leases(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LeaseBackend]:
    kind: str = request.param
    schema = unique_name("gklease")
    if kind == "local":
        url = "local://"
    elif kind == "sqlite":
        url = f"sqlite:///{tmp_path}/leases.db"
    elif kind == "postgres":
        url = f"{require('postgres')}?schema={schema}"
    else:
        url = f"{require('redis')}?prefix={schema}"
    backend = open_leases(url)
    await backend.open()
    yield backend
    await backend.close()
    if kind == "postgres":
        import psycopg

        async with await psycopg.AsyncConnection.connect(require("postgres"), autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    elif kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(require("redis"))
        keys = [k async for k in client.scan_iter(match=f"{schema}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def test_assign_splits_partitions_round_robin() -> None:
    assert assign(["a", "b"], 5, "a") == [0, 2, 4]
    assert assign(["a", "b"], 5, "b") == [1, 3]
    assert assign(["a"], 3, "a") == [0, 1, 2]
    assert assign(["a", "b"], 3, "c") == []


async def test_members_expire_after_their_ttl(leases: LeaseBackend) -> None:
    assert await leases.heartbeat("grp", "a", 0.3) == ["a"]
    assert await leases.heartbeat("grp", "b", 5.0) == ["a", "b"]
    assert await leases.heartbeat("other", "c", 5.0) == ["c"]
    await asyncio.sleep(0.45)
    assert await leases.heartbeat("grp", "b", 5.0) == ["b"]
    await leases.leave("grp", "b")
    assert await leases.heartbeat("grp", "c", 5.0) == ["c"]


async def test_grants_clean_busy_and_dirty(leases: LeaseBackend) -> None:
    first = await leases.acquire("grp", [0, 1], "a", 0.3)
    assert [(g.partition, g.clean) for g in first] == [(0, True), (1, True)]
    assert await leases.acquire("grp", [0, 1], "b", 5.0) == []  # held by a
    renewed = await leases.acquire("grp", [0], "a", 0.3)
    assert [(g.partition, g.clean) for g in renewed] == [(0, True)]
    await leases.release("grp", [1], "a")
    (clean,) = await leases.acquire("grp", [1], "b", 5.0)  # released: no wait needed
    assert clean.partition == 1
    assert clean.clean
    await asyncio.sleep(0.5)
    (dirty,) = await leases.acquire("grp", [0], "b", 5.0)  # a died: its lease expired
    assert dirty.partition == 0
    assert not dirty.clean
    assert 0.1 <= dirty.expired_ago < 5.0
    await leases.release("grp", [0, 1], "a")  # not a's any more: no effect
    assert await leases.acquire("grp", [0, 1], "c", 5.0) == []


def test_lease_urls() -> None:
    assert lease_url_for("memory://") == "local://"
    assert lease_url_for("sqlite:///:memory:") == "local://"
    assert lease_url_for("sqlite:///x.db") == "sqlite:///x.db"
    assert lease_url_for("postgresql://h/db?schema=s") == "postgresql://h/db?schema=s"
    with pytest.raises(ConfigurationError, match="lease URL"):
        lease_url_for("mongodb://h")
    with pytest.raises(ConfigurationError, match="unknown lease URL scheme"):
        open_leases("zookeeper://h")
    with pytest.raises(ConfigurationError, match="shared"):
        open_leases("sqlite:///:memory:")
    assert isinstance(open_leases("local://"), LocalLeases)


def test_holdback_keeps_newer_deliveries_until_the_given_back_ones_return() -> None:
    from goalkeeper.ports.bus import Delivery
    from goalkeeper.worker.ordering import HoldBack, Screened

    def d(part: int, pos: str) -> Delivery:
        return Delivery(part, pos, "g", f"e{pos}", {})

    hold = HoldBack(limit=60)
    hold.gave_back([d(0, "5"), d(0, "6"), d(1, "1700000000000-3")])
    keep, again, *_ = hold.screen([d(0, "7"), d(1, "1700000000000-9"), d(2, "1")])
    assert [x.id for x in keep] == ["1"]  # partition 2 was never held
    assert [x.id for x in again] == ["7", "1700000000000-9"]
    keep, again, *_ = hold.screen([d(0, "5"), d(0, "6"), d(0, "7"), d(1, "1700000000000-9")])
    assert [x.id for x in keep] == ["5", "6", "7"]  # every given-back one of partition 0 is back
    assert [x.id for x in again] == ["1700000000000-9"]
    hold.forget([1])
    assert len(hold) == 0
    expired = HoldBack(limit=0.0)
    expired.gave_back([d(0, "5")])
    assert expired.screen([d(0, "9")]) == Screened([d(0, "9")], [], 0.0, [], 0.0)


def test_holdback_waits_for_every_older_given_back_position_whatever_order_they_return_in() -> None:
    from goalkeeper.ports.bus import Delivery
    from goalkeeper.worker.ordering import HoldBack

    def d(pos: int) -> Delivery:
        return Delivery(0, str(pos), "g", f"e{pos}", {}, 1)

    hold = HoldBack(limit=60)
    hold.gave_back([d(5), d(6)])  # e.g. one fetch given back during a drain...
    hold.gave_back([d(7), d(8)], delay=0.5)  # ...and the next one, a moment later
    # NATS redelivers in the order they came due: 5 and 8 first. 8 must wait for 6 and 7.
    screened = hold.screen([d(5), d(8)])
    assert [x.id for x in screened.keep] == ["5"]
    assert [x.id for x in screened.again] == ["8"]
    assert screened.again_delay == 0.0  # 6 is due now: give 8 back at once
    hold.gave_back(screened.again)
    assert hold.outstanding(0) == [(6,), (7,), (8,)]
    screened = hold.screen([d(7), d(8)])
    assert screened.keep == []  # 7 is back, but 6 is not
    assert [x.id for x in screened.again] == ["7", "8"]
    hold.gave_back(screened.again)
    screened = hold.screen([d(6), d(8)])
    assert [x.id for x in screened.keep] == ["6"]
    assert [x.id for x in screened.again] == ["8"]  # 7 is still out
    hold.gave_back(screened.again)
    assert [x.id for x in hold.screen([d(7), d(8), d(9)]).keep] == ["7", "8", "9"]
    assert len(hold) == 0
    hold.gave_back([d(3)], delay=0.4)
    screened = hold.screen([d(4)])
    assert 0.3 < screened.again_delay <= 0.4  # comes back when 3 is due, not in a busy loop


def test_a_taken_over_partition_drains_its_redeliveries_before_new_events() -> None:
    import time

    from goalkeeper.ports.bus import Delivery
    from goalkeeper.worker.ordering import HoldBack

    def d(part: int, pos: int, redelivered: int = 0) -> Delivery:
        return Delivery(part, str(pos), "g", f"e{pos}", {}, redelivered)

    hold = HoldBack(limit=60)
    hold.drain([0], duration=0.3)
    assert hold.draining == {0}
    screened = hold.screen([d(0, 1, 1), d(0, 7), d(1, 9)])
    assert [x.id for x in screened.keep] == ["1", "9"]  # the dead worker's redelivery, another partition
    assert screened.again == []
    assert [x.id for x in screened.later] == ["7"]  # a new event: back after the drain, behind the backlog
    assert 0.0 < screened.later_delay <= 0.3
    hold.gave_back(screened.later, screened.later_delay)  # what the worker does with them
    time.sleep(0.35)
    screened = hold.screen([d(0, 8)])  # 8 came back before 7: it waits
    assert screened.keep == []
    assert [x.id for x in screened.again] == ["8"]
    hold.gave_back(screened.again)
    screened = hold.screen([d(0, 7, 1), d(0, 8, 1)])
    assert [x.id for x in screened.keep] == ["7", "8"]
    assert screened.later == []
    assert hold.draining == set()
