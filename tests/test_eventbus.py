"""FeedbackEventBus: the reference's in-process bus, without its at-most-once failure modes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from goalkeeper.bus.eventbus import FeedbackEventBus
from goalkeeper.errors import ConfigurationError, InvalidInputError


async def test_sync_and_async_handlers_see_every_event_in_order() -> None:
    seen_sync: list[int] = []
    seen_async: list[int] = []

    async def slow(event: dict[str, Any]) -> None:
        await asyncio.sleep(0.001)
        seen_async.append(event["value"])

    async with FeedbackEventBus() as bus:
        bus.subscribe(lambda event: seen_sync.append(event["value"]))
        bus.subscribe(slow)
        for value in range(20):
            await bus.publish({"goal_id": "g", "value": value})
        await bus.join()
    assert seen_sync == list(range(20))
    assert seen_async == list(range(20))  # reference bug 16: coroutine handlers were never awaited


async def test_publish_returns_before_the_handler_runs() -> None:
    seen: list[int] = []

    async def handler(event: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        seen.append(event["value"])

    async with FeedbackEventBus() as bus:
        bus.subscribe(handler)
        await bus.publish({"value": 1})
        assert seen == []
        await bus.join()
        assert seen == [1]


async def test_failing_handler_is_reported_and_retried_and_others_run_once() -> None:
    calls: list[int] = []
    good: list[int] = []
    errors: list[tuple[str, int]] = []

    def flaky(event: dict[str, Any]) -> None:
        calls.append(event["value"])
        if len(calls) < 3:
            raise RuntimeError("transient")

    bus = FeedbackEventBus(
        retry_delay=0.01, on_error=lambda e, h, exc, attempt: errors.append((str(exc), attempt))
    )
    async with bus:
        bus.subscribe(flaky)
        bus.subscribe(lambda event: good.append(event["value"]))
        await bus.publish({"value": 7})
        await asyncio.wait_for(bus.join(), 5)
    assert calls == [7, 7, 7]
    assert good == [7]  # the handler that succeeded is not called again
    assert errors == [("transient", 1), ("transient", 2)]
    assert bus.failures == 2
    assert list(bus.dead_letters) == []


async def test_handler_that_always_fails_is_dead_lettered_not_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []

    def broken(event: dict[str, Any]) -> None:
        attempts.append(1)
        raise ValueError("bad")

    async with FeedbackEventBus(max_attempts=3, retry_delay=0.0) as bus:
        bus.subscribe(broken)
        event_id = await bus.publish({"goal_id": "g", "value": 1})
        await asyncio.wait_for(bus.join(), 5)
    assert len(attempts) == 3
    (letter,) = bus.dead_letters
    assert letter.event["event_id"] == event_id
    assert letter.attempts == 3
    assert "bad" in letter.error
    assert any("dead-lettered" in r.message for r in caplog.records)


async def test_full_queue_makes_publish_wait_instead_of_dropping() -> None:
    release = asyncio.Event()
    seen: list[int] = []

    async def blocked(event: dict[str, Any]) -> None:
        await release.wait()
        seen.append(event["value"])

    async with FeedbackEventBus(max_pending=3) as bus:
        bus.subscribe(blocked)
        publisher = asyncio.gather(*[bus.publish({"value": i, "event_id": f"e{i}"}) for i in range(10)])
        await asyncio.sleep(0.3)
        assert not publisher.done()  # waiting: reference §2.3 dropped events here
        release.set()
        await asyncio.wait_for(publisher, 10)
        await asyncio.wait_for(bus.join(), 10)
    assert sorted(seen) == list(range(10))


async def test_duplicate_event_id_is_delivered_once_and_unsubscribe_works() -> None:
    seen: list[str] = []
    async with FeedbackEventBus() as bus:
        unsubscribe = bus.subscribe(lambda event: seen.append(event["event_id"]))
        await bus.publish({"event_id": "a"})
        await bus.publish({"event_id": "a"})
        await bus.join()
        unsubscribe()
        await bus.publish({"event_id": "b"})
        await bus.join()
    assert seen == ["a"]


async def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError):
        FeedbackEventBus(max_attempts=0)
    with pytest.raises(ConfigurationError):
        FeedbackEventBus(retry_delay=float("nan"))
    with pytest.raises(ConfigurationError):
        FeedbackEventBus(url="redis://localhost")
    bus = FeedbackEventBus()
    with pytest.raises(InvalidInputError):
        bus.subscribe("not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await bus.publish(["not", "a", "mapping"])  # type: ignore[arg-type]
    await bus.aclose()
