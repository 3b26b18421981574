"""The transport contract: one suite, run unchanged against memory, Redis Streams and NATS."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pytest
from bus_backends import BUS_KINDS, BusTarget, Restartable

from goalkeeper.bus import open_bus
from goalkeeper.errors import BusError, InvalidInputError
from goalkeeper.ports.bus import Batch, Consumer, Delivery, Transport, partition_for
from services import free_port


def events(n: int, goals: int = 5, start: int = 0, tag: str = "e") -> list[dict[str, Any]]:
    """``n`` events spread round-robin over ``goals`` goals, each numbered for order checks."""
    return [
        {"goal_id": f"goal-{i % goals}", "event_id": f"{tag}{i}", "type": "metrics", "values": {"n": i}}
        for i in range(start, start + n)
    ]


async def drain(consumer: Consumer, want: int, *, ack: bool = True, within: float = 15.0) -> list[Delivery]:
    """Fetch until ``want`` deliveries arrived (or ``within`` seconds passed), acking each batch."""
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < want and time.monotonic() < deadline:
        batch = await consumer.fetch(100, timeout=0.2)
        got.extend(batch)
        if ack and batch:
            await consumer.ack(batch)
    return got


def per_goal(deliveries: Iterable[Delivery]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for d in deliveries:
        out[d.goal_id].append(d.payload["values"]["n"])
    return out


async def test_publish_consume_ack(bus: Transport) -> None:
    sent = events(40)
    assert await bus.publish_many(sent) == 40
    consumer = await bus.consumer("workers", "w1")
    got = await drain(consumer, 40)
    assert sorted(d.event_id for d in got) == sorted(e["event_id"] for e in sent)
    by_id = {e["event_id"]: e for e in sent}
    for d in got:
        assert d.payload == by_id[d.event_id]
        assert d.goal_id == by_id[d.event_id]["goal_id"]
        assert d.partition == partition_for(d.goal_id, bus.partitions)
        assert d.redelivered == 0
    assert consumer.in_flight == 0
    assert len(await consumer.fetch(100, timeout=0.3)) == 0


async def test_json_bytes_and_single_publish(bus: Transport) -> None:
    assert await bus.publish(b'{"goal_id": "g", "event_id": "b1", "type": "message"}') is True
    assert await bus.publish('{"goal_id": "g", "event_id": "s1", "type": "message"}') is True
    consumer = await bus.consumer("workers", "w1")
    got = await drain(consumer, 2)
    assert [d.event_id for d in got] == ["b1", "s1"]
    assert got[0].payload == {"goal_id": "g", "event_id": "b1", "type": "message"}


async def test_per_goal_order_within_partition(bus: Transport) -> None:
    await bus.publish_many(events(200, goals=7))
    consumer = await bus.consumer("workers", "w1")
    got = await drain(consumer, 200)
    assert len(got) == 200
    for goal, numbers in per_goal(got).items():
        assert numbers == sorted(numbers), goal


async def test_batches_keep_partition_order(bus: Transport) -> None:
    await bus.publish_many(events(60, goals=9))
    consumer = await bus.consumer("workers", "w1")
    batch = await consumer.fetch(60, timeout=2.0)
    partitions = [d.partition for d in batch]
    assert partitions == sorted(partitions)
    await consumer.ack(batch)


async def test_consumer_sees_only_owned_partitions(bus: Transport) -> None:
    sent = events(80, goals=16)
    await bus.publish_many(sent)
    a = await bus.consumer("workers", "a", partitions=[0, 1])
    b = await bus.consumer("workers", "b", partitions=[2, 3])
    got_a: list[Delivery] = []
    got_b: list[Delivery] = []
    deadline = time.monotonic() + 10
    while len(got_a) + len(got_b) < 80 and time.monotonic() < deadline:
        got_a += await drain(a, 1, within=0.1)
        got_b += await drain(b, 1, within=0.1)
    assert {d.partition for d in got_a} <= {0, 1}
    assert {d.partition for d in got_b} <= {2, 3}
    assert sorted(d.event_id for d in got_a + got_b) == sorted(e["event_id"] for e in sent)


async def test_duplicate_publish_is_harmless(bus: Transport) -> None:
    sent = events(20, goals=3)
    await bus.publish_many(sent)
    assert await bus.publish(sent[5]) is False  # same event_id inside the dedup window
    assert await bus.publish_many([sent[7], *events(1, goals=3, start=20)]) == 1
    consumer = await bus.consumer("workers", "w1")
    got = await drain(consumer, 21, within=5.0)
    got += await drain(consumer, 1000, within=0.5)  # anything extra would show up here
    payloads: dict[str, dict[str, Any]] = {}
    for d in got:
        assert payloads.setdefault(d.event_id, d.payload) == d.payload
    assert set(payloads) == {f"e{i}" for i in range(21)}
    for numbers in per_goal(got).values():
        assert numbers == sorted(numbers)
    assert consumer.in_flight == 0


async def test_nack_redelivers_after_delay(bus: Transport) -> None:
    await bus.publish_many(events(1))
    consumer = await bus.consumer("workers", "w1")
    (first,) = await drain(consumer, 1, ack=False)
    await consumer.nack(first, delay=0.0)
    again = await drain(consumer, 1, ack=False, within=5.0)
    assert [d.event_id for d in again] == ["e0"]
    assert again[0].redelivered >= 1
    await consumer.nack(again, delay=0.8)
    assert len(await consumer.fetch(10, timeout=0.3)) == 0
    later = await drain(consumer, 1, within=5.0)
    assert [d.event_id for d in later] == ["e0"]
    assert later[0].redelivered >= 2


async def test_unacked_events_go_to_another_consumer(bus: Transport) -> None:
    await bus.publish_many(events(10))
    a = await bus.consumer("workers", "a")
    held = await drain(a, 10, ack=False)
    b = await bus.consumer("workers", "b")
    taken = await drain(b, 10, within=10.0)  # after the 1 s visibility timeout
    assert sorted(d.event_id for d in taken) == sorted(d.event_id for d in held)
    assert all(d.redelivered >= 1 for d in taken)
    await a.close(drain_timeout=0)


async def test_in_progress_extends_the_deadline(bus: Transport) -> None:
    await bus.publish_many(events(3))
    a = await bus.consumer("workers", "a")
    held = await drain(a, 3, ack=False)
    b = await bus.consumer("workers", "b")
    stolen: list[Delivery] = []
    for _ in range(6):  # 1.8 s, well past the 1 s visibility timeout
        await a.in_progress(held)
        stolen.extend(await b.fetch(10, timeout=0.3))
    assert stolen == []
    await a.ack(held)


async def test_consumer_in_flight_is_bounded(target: BusTarget) -> None:
    async with open_bus(target.url("max_in_flight=10")) as bus:
        await bus.publish_many(events(50))
        consumer = await bus.consumer("workers", "w1")
        first = await consumer.fetch(100, timeout=2.0)
        assert 0 < len(first) <= 10
        held = list(first)
        while len(held) < 10:
            held.extend(await consumer.fetch(100, timeout=0.5))
        assert len(held) == 10
        assert consumer.in_flight <= 10
        assert len(await consumer.fetch(100, timeout=0.2)) == 0  # full: nothing more until acks
        await consumer.ack(held)
        rest = await drain(consumer, 40)
        assert len(rest) == 40


async def test_publisher_waits_when_the_backlog_is_full(target: BusTarget) -> None:
    async with open_bus(target.url("max_backlog=20&partitions=1")) as bus:
        stored = 0

        async def produce() -> None:
            nonlocal stored
            for event in events(100, goals=1):
                await bus.publish(event)
                stored += 1

        producer = asyncio.create_task(produce())
        await asyncio.sleep(1.0)
        assert 20 <= stored <= 22  # waiting, not dropping and not growing
        assert not producer.done()
        consumer = await bus.consumer("workers", "slow", partitions=[0])
        got: list[Delivery] = []
        deadline = time.monotonic() + 30
        while len(got) < 100 and time.monotonic() < deadline:
            batch = await consumer.fetch(7, timeout=0.2)  # a slow consumer, small batches
            got.extend(batch)
            await consumer.ack(batch)
        await producer
        assert [d.payload["values"]["n"] for d in got] == list(range(100))


async def test_close_drains(target: BusTarget) -> None:
    async with open_bus(target.url()) as bus:
        await bus.publish_many(events(6))
        consumer = await bus.consumer("workers", "w1")
        held = await drain(consumer, 6, ack=False)
        acked, released = held[:3], held[3:]

        async def finish_some() -> None:
            await asyncio.sleep(0.2)
            await consumer.ack(acked)

        late = asyncio.create_task(finish_some())
        started = time.monotonic()
        await consumer.close(drain_timeout=0.6)
        assert time.monotonic() - started >= 0.5  # it waited for the outstanding acks
        await late
        with pytest.raises(BusError):
            await consumer.fetch(timeout=0)
        other = await bus.consumer("workers", "w2")
        again = await drain(other, 3, within=0.9)  # released at once, before the visibility timeout
        assert sorted(d.event_id for d in again) == sorted(d.event_id for d in released)


_DOOMED = textwrap.dedent(
    """
    import asyncio, sys
    from goalkeeper.bus import open_bus

    async def main():
        bus = open_bus(sys.argv[1])
        await bus.start()
        consumer = await bus.consumer("workers", "doomed")
        got = []
        while len(got) < int(sys.argv[2]):
            got += (await consumer.fetch(100, timeout=0.5)).event_ids
        print(" ".join(got), flush=True)
        await asyncio.sleep(3600)  # holds the batch without acking until killed

    asyncio.run(main())
    """
)


async def test_sigkilled_consumer_events_are_redelivered(bus: Transport, target: BusTarget) -> None:
    await bus.publish_many(events(20))
    proc = subprocess.Popen(
        [sys.executable, "-c", _DOOMED, target.url(), "20"],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        held = line.decode().split()
        assert len(held) == 20
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    survivor = await bus.consumer("workers", "survivor")
    got = await drain(survivor, 20, within=20.0)
    assert sorted(d.event_id for d in got) == sorted(held)
    assert all(d.redelivered >= 1 for d in got)


async def test_broker_restart_loses_no_published_event(restartable: Restartable) -> None:
    bus = open_bus(restartable.url)
    await bus.start()
    published: list[str] = []
    received: set[str] = set()
    consumer = await bus.consumer("workers", "w1")
    for chunk in range(3):
        batch = events(30, start=30 * chunk)
        await bus.publish_many(batch)
        published += [e["event_id"] for e in batch]
        received |= {d.event_id for d in await drain(consumer, 15, within=5.0)}
        if chunk < 2:
            restarted = await restartable.restart(bus)
            if restarted is not bus:
                bus = restarted
                consumer = await bus.consumer("workers", "w1")
    deadline = time.monotonic() + 30
    while not set(published) <= received and time.monotonic() < deadline:
        received |= {d.event_id for d in await drain(consumer, 90, within=1.0)}
    assert set(published) <= received
    await bus.close()


@pytest.mark.parametrize("kind", BUS_KINDS)
async def test_unreachable_broker_is_a_clear_error(kind: str, tmp_path: Any) -> None:
    port = free_port()
    (tmp_path / "a-file").write_text("not a directory")
    url = {
        "memory": f"memory://{tmp_path}/a-file/bus.db",
        "redis": f"redis://127.0.0.1:{port}/0?connect_timeout=1",
        "nats": f"nats://127.0.0.1:{port}?connect_timeout=1",
    }[kind]
    bus = open_bus(url)
    started = time.monotonic()
    with pytest.raises(BusError) as info:
        await bus.start()
    assert time.monotonic() - started < 10
    if kind != "memory":
        assert f"127.0.0.1:{port}" in str(info.value)
    await bus.close()


async def test_bad_events_are_rejected_before_anything_is_sent(bus: Transport) -> None:
    with pytest.raises(InvalidInputError) as info:
        await bus.publish_many([events(1)[0], {"event_id": "x"}])
    assert info.value.field == "goal_id"
    with pytest.raises(InvalidInputError) as info:
        await bus.publish({"goal_id": "g"})
    assert info.value.field == "event_id"
    with pytest.raises(InvalidInputError):
        await bus.publish({"goal_id": "g", "event_id": "x", "bad": float("nan")})
    with pytest.raises(InvalidInputError):
        await bus.publish(b"[1, 2]")
    consumer = await bus.consumer("workers", "w1")
    assert len(await consumer.fetch(10, timeout=0.3)) == 0
    with pytest.raises(InvalidInputError) as info:
        await consumer.fetch(0)
    assert info.value.field == "max_events"
    with pytest.raises(InvalidInputError) as info:
        await consumer.nack([], delay=-1)
    assert info.value.field == "delay"
    assert isinstance(Batch(), Batch)
