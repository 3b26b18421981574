"""Upgrading a schema-1 store (written by the previous release) to the current schema.

Each durable backend is first migrated to version 1 only, then filled the way a schema-1 writer
filled it (raw SQL / the schema-1 ``gk_commit`` function / raw Redis keys), and then opened by the
current code, which must migrate it and serve the old data through the new reads.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from store_backends import DURABLE_STORE_URLS

from goalkeeper.errors import StoreError
from goalkeeper.ports.store import Commit, GoalStatus
from goalkeeper.stores import open_store
from goalkeeper.stores._base import SCHEMA_VERSION, BaseStore

pytestmark = pytest.mark.parametrize("backend", DURABLE_STORE_URLS, indirect=True)

POINT = {
    "event_id": "e3",
    "event_type": "metrics",
    "ts": 2.0,
    "progress": 0.75,
    "drift_score": 0.125,
    "loop_risk": 0.0,
    "action": "continue",
    "flags": [],
}


def _sugg(sid: str, goal: str) -> str:
    return json.dumps({"suggestion_id": sid, "goal_id": goal, "kind": "nudge"})


async def _create_schema_1(url: str) -> None:
    """Create the tables of schema version 1 only (what the previous release left behind)."""
    store = open_store(url)
    await store._connect()
    store._connected = True
    try:
        assert await store._migrate(1) == 1
        assert await store._schema_version() == 1
    finally:
        store._connected = False
        await store._close()


def _option(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


def _base_url(url: str) -> str:
    return url.split("?", 1)[0]


def _write_v1_sqlite(url: str) -> None:
    store = open_store(url)
    path = getattr(store, "path")  # noqa: B009 - SQLiteStore attribute, typed as BaseStore here
    with sqlite3.connect(path) as con:
        con.executemany(
            "INSERT INTO gk_goals (goal_id, version, snapshot, updated_at, inbox_n) VALUES (?, ?, ?, ?, ?)",
            [("g1", 2, '{"n":2}', 100.0, 2), ("g2", 1, "{}", 101.0, 0)],
        )
        con.executemany("INSERT INTO gk_inbox VALUES (?, ?, ?)", [("g1", "e1", 1), ("g1", "e2", 2)])
        con.executemany(
            "INSERT INTO gk_outbox (suggestion_id, goal_id, version, payload, created_at, delivered_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("s1", "g1", 1, _sugg("s1", "g1"), 100.0, 100.5),
                ("s1b", "g1", 1, _sugg("s1b", "g1"), 100.0, None),
                ("s2", "g1", 2, _sugg("s2", "g1"), 100.2, None),
                ("t1", "g2", 1, _sugg("t1", "g2"), 101.0, None),
            ],
        )
    con.close()


def _write_v1_postgres(url: str) -> None:
    import psycopg

    schema = _option(url, "schema")
    commit = "SELECT * FROM gk_commit(%s, %s, %s, %s, %s::text[], %s::text[], %s::text[], %s)"
    with psycopg.connect(_base_url(url), autocommit=True) as con:
        con.execute(f'SET search_path TO "{schema}"')
        # The schema-1 commit function, exactly as a worker of the previous release called it.
        con.execute(
            commit,
            (
                "g1",
                0,
                '{"n":1}',
                100.0,
                ["e1"],
                ["s1", "s1b"],
                [_sugg("s1", "g1"), _sugg("s1b", "g1")],
                10000,
            ),
        )
        con.execute(commit, ("g1", 1, '{"n":2}', 100.2, ["e2"], ["s2"], [_sugg("s2", "g1")], 10000))
        con.execute(commit, ("g2", 0, "{}", 101.0, [], ["t1"], [_sugg("t1", "g2")], 10000))
        con.execute("UPDATE gk_outbox SET delivered_at = 100.5 WHERE suggestion_id = 's1'")


def _write_v1_redis(url: str) -> None:
    import redis

    p = _option(url, "prefix")
    client = redis.Redis.from_url(_base_url(url), decode_responses=True)
    try:
        client.hset(f"{p}g:g1", mapping={"v": 2, "s": '{"n":2}', "t": 100.0, "n": 2})
        client.hset(f"{p}g:g2", mapping={"v": 1, "s": "{}", "t": 101.0, "n": 0})
        client.zadd(f"{p}goals", {"g1": 0, "g2": 0})
        client.zadd(f"{p}in:g1", {"e1": 1, "e2": 2})
        rows: list[tuple[str, str, int, float, Any]] = [
            ("s1", "g1", 1, 100.0, 100.5),
            ("s1b", "g1", 1, 100.0, 0),
            ("s2", "g1", 2, 100.2, 0),
            ("t1", "g2", 1, 101.0, 0),
        ]
        for sid, goal, version, created, delivered in rows:
            pos = client.incr(f"{p}outpos")
            client.hset(
                f"{p}out:{sid}",
                mapping={"g": goal, "v": version, "p": _sugg(sid, goal), "t": created, "d": delivered},
            )
            if not delivered:
                client.zadd(f"{p}pending", {sid: pos})
                client.zadd(f"{p}pendg:{goal}", {sid: pos})
    finally:
        client.close()


WRITERS = {"sqlite": _write_v1_sqlite, "postgres": _write_v1_postgres, "redis": _write_v1_redis}


async def _check_upgraded(store: BaseStore) -> None:
    assert await store.schema_version() == SCHEMA_VERSION == 2
    g1 = await store.load("g1")
    assert g1 is not None
    assert (g1.version, g1.snapshot, g1.status) == (2, {"n": 2}, GoalStatus.ACTIVE)
    assert [(g.goal_id, g.version, g.status) for g in await store.list_goals(status="active")] == [
        ("g1", 2, "active"),
        ("g2", 1, "active"),
    ]
    assert [(s.suggestion_id, s.version, s.delivered) for s in await store.suggestions("g1")] == [
        ("s1", 1, True),
        ("s1b", 1, False),
        ("s2", 2, False),
    ]
    t1 = await store.get_suggestion("t1")
    assert t1 is not None
    assert (t1.goal_id, t1.version, t1.delivered) == ("g2", 1, False)
    assert [s.suggestion_id for s in await store.pending_suggestions()] == ["s1b", "s2", "t1"]
    assert await store.applied_event_ids("g1", ["e1", "e2", "e3"]) == {"e1", "e2"}
    assert await store.metrics_history("g1") == []


async def test_a_schema_1_store_is_upgraded_and_keeps_its_data(store_url: str, backend: str) -> None:
    await _create_schema_1(store_url)
    await asyncio.to_thread(WRITERS[backend], store_url)
    async with open_store(store_url) as store:
        await _check_upgraded(store)
        # The old goals take part in everything new.
        result = await store.commit(
            Commit("g1", 2, {"n": 3}, event_ids=["e3"], suggestions=[], metrics=[POINT])
        )
        assert (result.version, result.metric_seqs) == (3, (1,))
        assert [m.point for m in await store.metrics_history("g1")] == [POINT]
        assert await store.set_goal_status("g2", "closed")
        assert [g.goal_id for g in await store.list_goals(status="closed")] == ["g2"]
        await store.commit(Commit("g1", 3, {}, suggestions=[json.loads(_sugg("s3", "g1"))]))
        assert [s.suggestion_id for s in await store.suggestions("g1", after_version=2)] == ["s3"]
    # Reopening migrates nothing again.
    async with open_store(store_url) as store:
        assert await store.migrate() == SCHEMA_VERSION
        record = await store.load("g2")
        assert record is not None
        assert record.status == "closed"
    if backend == "sqlite":
        with sqlite3.connect(getattr(open_store(store_url), "path")) as con:  # noqa: B009
            rows = con.execute("SELECT version, description FROM gk_schema ORDER BY version").fetchall()
        con.close()
        assert [v for v, _ in rows] == [1, 2]
        assert "metrics history" in rows[1][1]


async def test_several_processes_upgrading_at_once_agree(store_url: str, backend: str) -> None:
    await _create_schema_1(store_url)
    await asyncio.to_thread(WRITERS[backend], store_url)
    stores = [open_store(store_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            await _check_upgraded(s)
    finally:
        for s in stores:
            await s.close()


async def test_a_newer_schema_is_refused(store_url: str, backend: str) -> None:
    async with open_store(store_url):
        pass
    if backend == "sqlite":
        path = getattr(open_store(store_url), "path")  # noqa: B009
        with sqlite3.connect(path) as con:
            con.execute("INSERT INTO gk_schema VALUES (7, 'from the future', 0)")
        con.close()
    elif backend == "postgres":
        import psycopg

        with psycopg.connect(_base_url(store_url), autocommit=True) as con:
            schema = _option(store_url, "schema")
            con.execute(f'INSERT INTO "{schema}".gk_schema VALUES (7, %s, 0)', ("from the future",))
    else:
        import redis

        client = redis.Redis.from_url(_base_url(store_url))
        client.set(f"{_option(store_url, 'prefix')}schema", 7)
        client.close()
    with pytest.raises(
        StoreError, match=f"schema version 7, newer than the {SCHEMA_VERSION} this goalkeeper"
    ):
        await open_store(store_url).open()
