"""The worker end to end in one process on the embedded backends (memory store and bus, SQLite)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from runtime_support import Recorder, clean_run, goal_events

from goalkeeper.bus import open_bus
from goalkeeper.errors import ConfigurationError
from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store
from goalkeeper.worker import GoalFeedbackWorker, GoalUpdate, WorkerConfig

FAST = WorkerConfig(fetch_timeout=0.05, lease_ttl=1.0, outbox_interval=0.2, outbox_grace=0.0)


async def test_applies_commits_notifies_and_delivers() -> None:
    events = goal_events("g1", 6) + goal_events("g2", 4)
    snapshots, suggestions = clean_run(events)
    sink, updates = Recorder(), list[GoalUpdate]()
    async with open_store("memory://") as store, open_bus("memory://?partitions=4") as bus:
        await bus.publish_many(events)
        async with GoalFeedbackWorker(store, bus, config=FAST, sinks=[sink], listeners=[updates.append]) as w:
            stats = await w.run_until_idle(20)
            assert stats.events_applied == 12
            assert stats.events_received == 12
            assert stats.dead_letters == 0
            assert stats.conflicts == 0
            for goal_id, snap in snapshots.items():
                record = await store.load(goal_id)
                assert record is not None
                assert record.snapshot == json.loads(json.dumps(snap))
            assert set(sink.ids) == set(suggestions)
            assert len(sink.ids) == len(set(sink.ids))
            assert await store.pending_suggestions() == []
            history = await store.metrics_history("g1")
            assert [p.point["event_id"] for p in history] == [
                e["event_id"] for e in events if e["goal_id"] == "g1"
            ]
            point = history[-1].point
            assert {"progress", "drift_score", "loop_risk", "action", "flags", "ts", "event_type"} <= set(
                point
            )
    assert {u.goal_id for u in updates} == {"g1", "g2"}
    g1 = [u for u in updates if u.goal_id == "g1"]
    assert [e.event_id for u in g1 for e in u.events] == [
        e["event_id"] for e in events if e["goal_id"] == "g1"
    ]
    for u in updates:
        assert len(u.events) == len(u.outcomes) == len(u.metrics)
        assert u.version >= 1
        assert all(o.applied for o in u.outcomes)
    assert sorted(s["suggestion_id"] for u in updates for s in u.suggestions) == sorted(suggestions)


async def test_poison_events_are_dead_lettered_without_blocking_their_goal() -> None:
    events = goal_events("g1", 3)
    poison = [
        {"type": "teleport", "goal_id": "g1", "event_id": "bad-type"},
        {"type": "step", "goal_id": "g1", "event_id": "bad-args", "tool": "x", "args": "nope"},
    ]
    later = goal_events("g1", 2, start=4)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        await bus.publish_many(events[:2] + poison + events[2:] + later)
        async with GoalFeedbackWorker(store, bus, config=FAST) as w:
            stats = await w.run_until_idle(20)
        assert stats.dead_letters == 2
        assert stats.events_applied == 6
        dead = {d.event_id: d for d in await store.dead_letters()}
        assert set(dead) == {"bad-type", "bad-args"}
        assert "type" in dead["bad-type"].reason
        assert "args" in dead["bad-args"].reason
        assert dead["bad-args"].payload["args"] == "nope"
        assert dead["bad-args"].goal_id == "g1"
        snapshots, _ = clean_run(events + later)
        record = await store.load("g1")
        assert record is not None
        assert record.snapshot == json.loads(json.dumps(snapshots["g1"]))


async def test_a_session_crash_is_a_dead_letter_and_the_session_is_rebuilt() -> None:
    """An event that makes the session raise something unexpected is isolated like a bad one."""
    from goalkeeper.core.session import GoalSession

    class Fragile(GoalSession):
        def apply(self, event: Any) -> Any:
            if event.event_id == "g1-2":
                self._version += 100  # a half-done change the worker must not keep
                raise RuntimeError("boom")
            return super().apply(event)

    events = goal_events("g1", 4)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        await bus.publish_many(events)
        worker = GoalFeedbackWorker(
            store, bus, config=FAST, session_factory=Fragile, session_restorer=Fragile.restore
        )
        async with worker:
            stats = await worker.run_until_idle(20)
        assert stats.dead_letters == 1
        assert stats.events_applied == 4
        (dead,) = await store.dead_letters()
        assert dead.event_id == "g1-2"
        assert "RuntimeError: boom" in dead.reason
        snapshots, _ = clean_run([e for e in events if e["event_id"] != "g1-2"])
        record = await store.load("g1")
        assert record is not None
        assert record.snapshot == json.loads(json.dumps(snapshots["g1"]))


async def test_events_already_applied_are_skipped(tmp_path: Path) -> None:
    """A second delivery of applied events (a republish the bus did not catch) changes nothing."""
    events = goal_events("g1", 5)
    db = tmp_path / "gk.db"
    async with open_store(f"sqlite:///{db}") as store:
        async with open_bus("memory://?partitions=2") as bus:
            await bus.publish_many(events)
            async with GoalFeedbackWorker(store, bus, config=FAST) as w:
                await w.run_until_idle(20)
        before = await store.load("g1")
        # A fresh bus knows nothing of the first publish: only the store's inbox can tell.
        async with open_bus("memory://?partitions=2") as bus:
            await bus.publish_many(events)
            async with GoalFeedbackWorker(store, bus, config=FAST) as w:
                stats = await w.run_until_idle(20)
        assert stats.events_skipped == len(events)
        assert stats.events_applied == 0
        assert stats.commits == 0
        after = await store.load("g1")
        assert before is not None
        assert after is not None
        assert after.version == before.version
        assert after.snapshot == before.snapshot


class _GoalByGoalStore:
    """A store written against the protocol alone (no ``applied_event_ids_many``), counting inbox reads."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.inbox_reads = 0

    def __getattr__(self, name: str) -> Any:
        if name == "applied_event_ids_many":
            raise AttributeError(name)
        return getattr(self._inner, name)

    async def applied_event_ids(self, goal_id: str, event_ids: Any) -> set[str]:
        self.inbox_reads += 1
        found: set[str] = await self._inner.applied_event_ids(goal_id, event_ids)
        return found


@pytest.mark.parametrize("batched", [True, False])
async def test_the_inbox_is_read_once_per_batch_or_goal_by_goal(tmp_path: Path, batched: bool) -> None:
    """Built-in stores answer a batch's inbox check in one call; other stores are asked per goal.
    Either way, already-applied events are skipped and the rest applied as in a clean run."""
    events = [e for g in ("g1", "g2", "g3") for e in goal_events(g, 4)]
    async with open_store(f"sqlite:///{tmp_path / 'gk.db'}") as inner:
        await inner.commit(Commit("g2", 0, clean_run(events[5:7])[0]["g2"], event_ids=["g2-0", "g2-1"]))
        store: Any = inner if batched else _GoalByGoalStore(inner)
        calls: list[dict[str, list[str]]] = []
        if batched:
            many = inner.applied_event_ids_many

            async def spy(wanted: dict[str, list[str]]) -> dict[str, set[str]]:
                calls.append(wanted)
                found: dict[str, set[str]] = await many(wanted)
                return found

            inner.applied_event_ids_many = spy  # type: ignore[method-assign]
        async with open_bus("memory://?partitions=1") as bus:
            await bus.publish_many(events)
            async with GoalFeedbackWorker(store, bus, config=FAST) as w:
                stats = await w.run_until_idle(20)
        assert stats.events_skipped == 2  # g2-0 and g2-1 were in g2's inbox
        assert stats.events_applied == len(events) - 2
        if batched:
            assert calls
            assert sorted(calls[0]) == ["g1", "g2", "g3"]  # one call for the whole batch
        else:
            assert store.inbox_reads >= 3
        for goal_id in ("g1", "g3"):
            record = await inner.load(goal_id)
            assert record is not None
            assert record.snapshot == clean_run([e for e in events if e["goal_id"] == goal_id])[0][goal_id]


async def test_a_compare_and_set_conflict_reloads_and_retries() -> None:
    events = goal_events("g1", 2)
    more = goal_events("g1", 2, start=3)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        await bus.publish_many(events)
        async with GoalFeedbackWorker(store, bus, config=FAST) as w:
            await w.run_until_idle(20)
            record = await store.load("g1")
            assert record is not None
            # Someone else commits the same state again: the worker's cached version is now stale.
            await store.commit(Commit("g1", record.version, record.snapshot))
            await bus.publish_many(more)
            stats = await w.run_until_idle(20)
        assert stats.conflicts == 1
        assert stats.events_applied == 5
        snapshots, _ = clean_run(events + more)
        final = await store.load("g1")
        assert final is not None
        assert final.version == record.version + 2
        assert final.snapshot == json.loads(json.dumps(snapshots["g1"]))


async def test_undelivered_suggestions_are_redelivered_by_the_next_worker(tmp_path: Path) -> None:
    events = goal_events("g1", 6)
    _, suggestions = clean_run(events)
    db = tmp_path / "gk.db"
    down, up = Recorder(fail=True), Recorder()
    async with open_store(f"sqlite:///{db}") as store, open_bus(f"memory://{db}?partitions=2") as bus:
        await bus.publish_many(events)
        async with GoalFeedbackWorker(store, bus, config=FAST, sinks=[down]) as w:
            stats = await w.run_until_idle(20)
        assert stats.sink_failures >= 1
        assert down.got == []
        assert {s.suggestion_id for s in await store.pending_suggestions()} == set(suggestions)
        async with GoalFeedbackWorker(store, bus, config=FAST, sinks=[up]) as w:
            for _ in range(50):
                if set(up.ids) == set(suggestions):
                    break
                await asyncio.sleep(0.05)
        assert set(up.ids) == set(suggestions)
        assert await store.pending_suggestions() == []
        # Redelivered from the outbox, they are the very same suggestions the commit produced.
        assert {s["suggestion_id"]: s for s in up.got} == suggestions


async def test_failing_listeners_never_break_the_worker() -> None:
    seen: list[int] = []

    def broken(update: GoalUpdate) -> None:
        raise ValueError("listener bug")

    async def slow(update: GoalUpdate) -> None:
        await asyncio.sleep(10)

    async def fine(update: GoalUpdate) -> None:
        seen.append(update.version)

    config = WorkerConfig(fetch_timeout=0.05, listener_timeout=0.05, lease_ttl=1.0)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        await bus.publish_many(goal_events("g1", 2))
        async with GoalFeedbackWorker(store, bus, config=config, listeners=[broken, slow, fine]) as w:
            stats = await w.run_until_idle(20)
        assert stats.listener_failures == 2
        assert stats.events_applied == 3
        assert seen == [1]


async def test_two_workers_share_partitions_and_take_over_on_stop(tmp_path: Path) -> None:
    db = tmp_path / "gk.db"
    events = [e for g in range(12) for e in goal_events(f"g{g}", 2)]
    config = WorkerConfig(fetch_timeout=0.05, lease_ttl=0.6)
    async with open_store(f"sqlite:///{db}") as store, open_bus(f"memory://{db}?partitions=4") as bus:
        a = GoalFeedbackWorker(store, bus, config=config)
        b = GoalFeedbackWorker(store, bus, config=config)
        async with a, b:
            for _ in range(100):
                if len(a.partitions) == 2 and len(b.partitions) == 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(a.partitions + b.partitions) == [0, 1, 2, 3]
            await a.stop()  # a graceful stop releases cleanly: b takes over without waiting
            for _ in range(100):
                if len(b.partitions) == 4:
                    break
                await asyncio.sleep(0.05)
            assert b.partitions == (0, 1, 2, 3)
            await bus.publish_many(events)
            stats = await b.run_until_idle(20)
            assert stats.events_applied == len(events)


async def test_run_stops_gracefully_on_request() -> None:
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        worker = GoalFeedbackWorker(store, bus, config=FAST)
        task = asyncio.create_task(worker.run())
        await bus.publish_many(goal_events("g1", 3))
        for _ in range(100):
            if worker.stats.events_applied == 4:
                break
            await asyncio.sleep(0.02)
        worker.request_stop()
        await asyncio.wait_for(task, 10)
        assert worker.stats.events_applied == 4


def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="scheme"):
        GoalFeedbackWorker("nope://x", "memory://")
    with pytest.raises(ConfigurationError, match="bus scheme"):
        GoalFeedbackWorker("memory://", "kafka://x")
    with pytest.raises(ConfigurationError, match="sink"):
        GoalFeedbackWorker("memory://", "memory://", sinks=[42])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="listener"):
        GoalFeedbackWorker("memory://", "memory://", listeners=["x"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="source"):
        GoalFeedbackWorker("memory://", "memory://", sources=[object()])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="config"):
        GoalFeedbackWorker("memory://", "memory://", config={"batch_size": 1})  # type: ignore[arg-type]


async def test_a_worker_can_be_started_again_after_a_stop() -> None:
    """Unlike the reference worker, stop() then start() works (and keeps counting)."""
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        worker = GoalFeedbackWorker(store, bus, config=FAST)
        await bus.publish_many(goal_events("g1", 2))
        async with worker:
            await worker.run_until_idle(20)
        await bus.publish_many(goal_events("g1", 2, start=3))
        async with worker:
            stats = await worker.run_until_idle(20)
        assert stats.events_applied == 5
        record = await store.load("g1")
        assert record is not None
        assert record.snapshot["version"] == 5


async def test_an_unexpected_error_in_a_step_is_retried_not_fatal() -> None:
    """A store that fails once (a bug or an outage) costs a back-off, never the worker."""
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        original = store.commit_many
        calls = 0

        async def flaky(commits: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("connection reset")
            return await original(commits)

        store.commit_many = flaky  # type: ignore[method-assign]
        await bus.publish_many(goal_events("g1", 3))
        async with GoalFeedbackWorker(store, bus, config=FAST) as worker:
            stats = await worker.run_until_idle(20)
        assert calls == 2
        assert stats.events_applied == 4
