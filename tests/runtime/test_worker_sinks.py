"""Suggestion sinks: callback, bus topic and webhook (retries, idempotency key, permanent rejections)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from runtime_support import clean_run, goal_events

from goalkeeper.bus import open_bus
from goalkeeper.errors import ConfigurationError
from goalkeeper.stores import open_store
from goalkeeper.worker import (
    BusSink,
    CallbackSink,
    DeliveryError,
    GoalFeedbackWorker,
    PermanentDeliveryError,
    SuggestionSink,
    WebhookSink,
    WorkerConfig,
)

SUGGESTIONS = [{"suggestion_id": f"s{i}", "goal_id": "g1", "kind": "nudge", "message": "m"} for i in range(3)]


def _webhook(handler: Any, **kwargs: Any) -> tuple[WebhookSink, list[float]]:
    sink = WebhookSink(
        "http://hooks.test/in", client=httpx.AsyncClient(transport=httpx.MockTransport(handler)), **kwargs
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sink._sleep = sleep
    return sink, slept


async def test_webhook_posts_each_suggestion_with_its_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    sink, slept = _webhook(handler, headers={"Authorization": "Bearer t"})
    assert isinstance(sink, SuggestionSink)
    await sink.deliver(SUGGESTIONS)
    assert [r.headers["Idempotency-Key"] for r in seen] == ["s0", "s1", "s2"]
    assert all(r.headers["Authorization"] == "Bearer t" for r in seen)
    assert [httpx.Response(200, content=r.content).json()["suggestion_id"] for r in seen] == [
        "s0",
        "s1",
        "s2",
    ]
    assert slept == []


async def test_webhook_retries_transient_failures_with_backoff() -> None:
    answers = iter(
        [httpx.Response(503), httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200)]
    )
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return next(answers)

    sink, slept = _webhook(handler, retries=3, backoff=0.1)
    await sink.deliver(SUGGESTIONS[:1])
    assert calls == 3
    assert 0.05 <= slept[0] <= 0.1
    assert slept[1] == 2.0


async def test_webhook_gives_up_after_its_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sink, slept = _webhook(handler, retries=2, backoff=0.1)
    with pytest.raises(DeliveryError, match="after 3 attempts") as info:
        await sink.deliver(SUGGESTIONS[:1])
    assert not isinstance(info.value, PermanentDeliveryError)
    assert len(slept) == 2
    assert slept[1] > slept[0] * 1.0


async def test_webhook_permanent_rejection_names_the_suggestions() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422 if request.headers["Idempotency-Key"] == "s1" else 200)

    sink, _ = _webhook(handler)
    with pytest.raises(PermanentDeliveryError) as info:
        await sink.deliver(SUGGESTIONS)
    assert info.value.suggestion_ids == ("s1",)


def test_webhook_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="http"):
        WebhookSink("ftp://x")
    with pytest.raises(ConfigurationError, match="retries"):
        WebhookSink("http://x", retries=-1)
    with pytest.raises(ConfigurationError, match="timeout"):
        WebhookSink("http://x", timeout=0)
    with pytest.raises(ConfigurationError, match="callable"):
        CallbackSink(3)  # type: ignore[arg-type]


async def test_worker_dead_letters_suggestions_a_webhook_rejects_for_good() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400)

    sink, _ = _webhook(handler)
    events = goal_events("g1", 5)
    _, suggestions = clean_run(events)
    async with open_store("memory://") as store, open_bus("memory://?partitions=2") as bus:
        await bus.publish_many(events)
        async with GoalFeedbackWorker(store, bus, config=WorkerConfig(fetch_timeout=0.05), sinks=[sink]) as w:
            await w.run_until_idle(20)
        assert await store.pending_suggestions() == []  # not retried forever
        dead = await store.dead_letters()
        assert {d.payload["suggestion_id"] for d in dead} == set(suggestions)
        assert all("rejected" in d.reason for d in dead)


async def test_bus_sink_publishes_suggestions_keyed_by_goal() -> None:
    async with open_bus("memory://?partitions=2") as topic:
        sink = BusSink(topic)
        await sink.deliver(SUGGESTIONS)
        await sink.deliver(SUGGESTIONS)  # a redelivery: the bus drops it by suggestion id
        consumer = await topic.consumer("readers", "r1")
        batch = await consumer.fetch(10, timeout=0.5)
        assert [d.event_id for d in batch] == ["s0", "s1", "s2"]
        assert all(d.goal_id == "g1" and d.payload["kind"] == "nudge" for d in batch)
        await consumer.ack(batch)


async def test_async_callback_sink() -> None:
    got: list[str] = []

    async def record(s: dict[str, Any]) -> None:
        got.append(s["suggestion_id"])

    await CallbackSink(record).deliver(SUGGESTIONS)
    assert got == ["s0", "s1", "s2"]
