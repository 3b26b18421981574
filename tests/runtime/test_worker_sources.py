"""Polling mode: action sources are polled with back-off, their events published then acked."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from runtime_support import goal_events

from goalkeeper.bus import open_bus
from goalkeeper.stores import open_store
from goalkeeper.worker import ActionSource, GoalFeedbackWorker, WorkerConfig
from goalkeeper.worker.sources import SourcePoller


class TableSource:
    """Like a user's table read by cursor: returns rows after the acked cursor."""

    name = "table"

    def __init__(self, rows: list[dict[str, Any]], fail_first: int = 0) -> None:
        self.rows = rows
        self.cursor = 0
        self.polls = 0
        self.fail_first = fail_first
        self.acked: list[list[str]] = []

    async def poll(self, max_events: int) -> Sequence[Mapping[str, Any]]:
        self.polls += 1
        if self.polls <= self.fail_first:
            raise ConnectionError("database unreachable")
        return self.rows[self.cursor : self.cursor + min(max_events, 3)]

    async def ack(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.acked.append([str(e.get("event_id")) for e in events])
        self.cursor += len(events)


async def test_polled_events_are_published_applied_and_acked() -> None:
    rows = [*goal_events("g1", 5), {"goal_id": "g1"}]  # the last one has no event_id: dead letter
    source = TableSource(rows, fail_first=1)
    assert isinstance(source, ActionSource)
    config = WorkerConfig(fetch_timeout=0.05, poll_interval=0.01, poll_max_interval=0.05)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        async with GoalFeedbackWorker(store, bus, config=config, sources=[source]) as worker:
            for _ in range(200):
                if worker.stats.events_applied == 6 and source.cursor == len(rows):
                    break
                await asyncio.sleep(0.02)
            assert worker.stats.events_applied == 6
            assert worker.stats.polled == 6
        assert source.cursor == len(rows)
        assert source.polls >= 4
        assert [i for batch in source.acked for i in batch] == [r.get("event_id", "None") for r in rows]
        (dead,) = await store.dead_letters()
        assert "event_id" in dead.reason
        assert dead.payload == {"goal_id": "g1"}


def test_poller_backs_off_when_idle_and_on_failure() -> None:
    class Quiet:
        name = "quiet"

        async def poll(self, max_events: int) -> Sequence[Mapping[str, Any]]:
            return []

        async def ack(self, events: Sequence[Mapping[str, Any]]) -> None:
            return None

    poller = SourcePoller(Quiet(), interval=1.0, max_interval=8.0)
    assert poller.due()
    waits = []
    for _ in range(5):
        poller.succeeded(0)
        waits.append(round(poller.until_due()))
    assert waits == [1, 2, 4, 8, 8]
    poller.succeeded(3)
    assert poller.due()  # events came: poll again at once
    poller.failed(RuntimeError("x"))
    assert poller.failures == 1
    assert 0.9 <= poller.until_due() <= 2.0
    poller.failed(RuntimeError("x"))
    assert 1.9 <= poller.until_due() <= 4.0
