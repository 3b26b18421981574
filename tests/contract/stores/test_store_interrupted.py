"""An operation interrupted half-way (task cancelled, connection lost) never poisons the store.

Callers cancel: a worker shutting down, a request timing out. Servers restart. After either, the
interrupted commit has happened entirely or not at all, and the next call on the same store object
works (PostgreSQL drops the interrupted connection and connects again).
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest
from store_backends import STORE_URLS

from goalkeeper.errors import StoreError
from goalkeeper.ports.store import Commit
from goalkeeper.stores._base import BaseStore

POSTGRES = [p for p in STORE_URLS if p.id == "postgres"]


def _commit(version: int) -> Commit:
    return Commit(
        "g1",
        version,
        {"n": version + 1, "blob": list(range(200))},
        event_ids=[f"e{version + 1}"],
        suggestions=[{"suggestion_id": f"s{version + 1}", "goal_id": "g1", "version": version + 1}],
    )


async def _check_consistent(store: BaseStore) -> int:
    """The stored state is exactly that of some whole number of commits; returns that number."""
    record = await store.load("g1")
    version = 0 if record is None else record.version
    if record is not None:
        assert record.snapshot == {"n": version, "blob": list(range(200))}
    ids = [f"e{i}" for i in range(1, version + 2)]
    assert await store.applied_event_ids("g1", ids) == set(ids[:-1])
    pending = await store.pending_suggestions(goal_id="g1", limit=1000)
    assert [p.suggestion_id for p in pending] == [f"s{i}" for i in range(1, version + 1)]
    return version


async def test_commit_cancelled_at_any_point_is_all_or_nothing(store: BaseStore) -> None:
    # Cancel the commit after 0, 1, 2, ... turns of the event loop: every point of the driver's
    # protocol gets interrupted once, until a commit completes before the cancel arrives.
    version = 0
    for turns in range(60):
        task = asyncio.ensure_future(store.commit(_commit(version)))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        version = await _check_consistent(store)
    # Still usable: one more commit on top of whatever landed.
    assert (await store.commit(_commit(version))).version == version + 1
    assert await _check_consistent(store) == version + 1


@pytest.mark.parametrize("backend", POSTGRES, indirect=True)
async def test_postgres_commit_cancelled_while_blocked_on_a_lock(store: BaseStore, store_url: str) -> None:
    await store.commit(_commit(0))
    conninfo = store_url.split("?")[0]
    schema = store_url.split("schema=")[1].split("&")[0]
    async with await psycopg.AsyncConnection.connect(conninfo) as other:
        await other.execute(f'SET search_path TO "{schema}"')
        # Another session holds the goal's row lock, so the commit blocks inside the server.
        await other.execute("SELECT 1 FROM gk_goals WHERE goal_id = 'g1' FOR UPDATE")
        task = asyncio.ensure_future(store.commit(_commit(1)))
        await asyncio.sleep(0.5)
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await other.rollback()
    assert await _check_consistent(store) == 1
    assert (await store.commit(_commit(1))).version == 2
    assert await _check_consistent(store) == 2


@pytest.mark.parametrize("backend", POSTGRES, indirect=True)
async def test_postgres_reconnects_after_the_server_drops_the_connection(
    store: BaseStore, store_url: str
) -> None:
    await store.commit(_commit(0))
    pid = store._db.info.backend_pid  # type: ignore[attr-defined]
    async with await psycopg.AsyncConnection.connect(store_url.split("?")[0], autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The call that finds the connection dead fails with a StoreError naming the operation...
    with pytest.raises(StoreError, match="postgresql store: load failed"):
        await store.load("g1")
    # ...and the next one connects again and sees everything committed before.
    assert await _check_consistent(store) == 1
    assert (await store.commit(_commit(1))).version == 2
    assert store._db.info.backend_pid != pid  # type: ignore[attr-defined]
