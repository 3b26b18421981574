"""OpenTelemetry: decisions land on the agent's spans (SDK in-memory exporter), only when enabled."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from goalkeeper.client import LocalClient
from goalkeeper.integrations import GoalAborted, GoalMonitor, watch
from goalkeeper.integrations.otel import SUGGESTION_EVENT, annotate_span

GOAL = "Find the population of Paris and report it"


@pytest.fixture
def tracing() -> tuple[object, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("agent-under-test"), exporter


def run_loop(monitor: GoalMonitor, tracer) -> None:
    @watch(monitor)
    def search(q: str) -> str:
        return "no results"

    with tracer.start_as_current_span("agent-run"):
        for n in range(10):
            with tracer.start_as_current_span(f"tool-call-{n}"):
                search("paris population")


def test_decisions_become_span_attributes_and_events(tracing) -> None:
    tracer, exporter = tracing
    gk = LocalClient()
    gk.create_goal(GOAL, goal_id="paris")
    with pytest.raises(GoalAborted):
        run_loop(GoalMonitor(gk, "paris", otel=True), tracer)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert len(spans) == 7  # 6 tool calls, then the 7th is refused, then the run ends
    first, third, sixth = spans["tool-call-0"], spans["tool-call-2"], spans["tool-call-5"]
    assert first.attributes["goalkeeper.goal_id"] == "paris"
    assert first.attributes["goalkeeper.action"] == "continue"
    assert first.attributes["goalkeeper.version"] == 2
    assert third.attributes["goalkeeper.action"] == "adjust"
    assert 0.0 < third.attributes["goalkeeper.loop_risk"] <= 1.0
    assert {"goalkeeper.progress", "goalkeeper.drift_score"} <= set(third.attributes)
    (event,) = third.events
    assert event.name == SUGGESTION_EVENT
    assert event.attributes["goalkeeper.kind"] == "adjust"
    assert event.attributes["goalkeeper.rule"] == "loop:nudge"
    assert "`search`" in event.attributes["goalkeeper.message"]
    assert sixth.attributes["goalkeeper.action"] == "abort"
    assert [e.attributes["goalkeeper.kind"] for e in sixth.events if e.name == SUGGESTION_EVENT] == ["abort"]
    # The stop itself is on the span too: OpenTelemetry records the GoalAborted that left it.
    assert [e.name for e in sixth.events] == [SUGGESTION_EVENT, "exception"]
    assert spans["tool-call-1"].events == ()  # no new suggestion, no event
    assert "goalkeeper.action" not in spans["agent-run"].attributes  # only the current span is touched


def test_off_by_default(tracing) -> None:
    tracer, exporter = tracing
    gk = LocalClient()
    with pytest.raises(GoalAborted):
        run_loop(GoalMonitor(gk, "paris"), tracer)
    assert all(
        not any(k.startswith("goalkeeper.") for k in s.attributes) for s in exporter.get_finished_spans()
    )


def test_annotate_an_explicit_span_and_a_non_recording_one(tracing) -> None:
    tracer, exporter = tracing
    gk = LocalClient()
    decision = gk.step("g", "search")
    span = tracer.start_span("explicit")
    annotate_span(decision, span)
    span.end()
    annotate_span(decision)  # no current span: the API's non-recording span, a no-op
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes["goalkeeper.version"] == 1
