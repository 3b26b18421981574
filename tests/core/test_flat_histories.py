"""The in-process histories (verdicts, drift assessments, loop events, near-duplicate windows) are
kept as tuples of plain values so the garbage collector stops tracking them; what every reader sees
must be exactly the objects the tracker returned, and snapshots must not change."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from goalkeeper.core.drift import DriftAssessment
from goalkeeper.core.loop_keys import StepFacts
from goalkeeper.core.loop_policy import LoopEvent
from goalkeeper.core.loop_rules import LoopSignal, SemanticJaccardDetector
from goalkeeper.core.steps import Step
from goalkeeper.core.text import jaccard
from goalkeeper.core.tracker import GoalTracker, StepVerification
from goalkeeper.core.weights import _FLAT_FIELDS
from goalkeeper.errors import SnapshotError

GOAL = "Book the cheapest direct flight from New York to Seattle on May 20"


def _steps() -> list[Step]:
    """On-topic steps, an exact loop, a near-duplicate loop, failures and off-topic steps."""
    steps = [
        Step(tool="search_direct_flight", args={"origin": "JFK", "destination": "SEA"}, output="3 flights"),
        *[Step(tool="get_flight", args={"id": "HAT100"}, output="seat map unavailable") for _ in range(5)],
        *[
            Step(
                tool="search_flights",
                args={"query": f"cheap direct flight new york seattle may {w}"},
                output="no results",
            )
            for w in ("20", "20th", "twenty", "20 2024", "the 20")
        ],
        *[Step(tool="book", args={"id": "HAT1"}, error="payment declined") for _ in range(4)],
        Step(tool="weather", args={"city": "Paris"}, output="sunny, 24C in the south of France"),
        Step(tool="book", args={"id": "HAT100", "seat": "12A"}, output="booked, confirmation K3X"),
    ]
    return steps


def _run(tracker: GoalTracker) -> list[StepVerification]:
    return [tracker.verify(step, now=100.0 + i) for i, step in enumerate(_steps())]


def test_views_return_exactly_the_records_the_tracker_produced() -> None:
    tracker = GoalTracker(GOAL, plan=["search", "book"])
    verdicts = _run(tracker)
    events = [v.loop_event for v in verdicts if v.loop_event is not None]
    assert events, "the scenario must produce loop events"
    assert any(len(e.signals) > 1 for e in events)
    assert tracker.verifications == tuple(verdicts)
    assert tracker.drift_engine.get_history() == [v.drift for v in verdicts]
    assert tracker.loops.loop_history == tuple(events)
    assert tracker.loops.get_stats()["recent_loop_types"] == [e.loop_type.value for e in events[-5:]]


def test_flat_forms_round_trip_and_serialise_like_to_dict() -> None:
    verdicts = _run(GoalTracker(GOAL))
    for verdict in verdicts:
        assert StepVerification.unflat(verdict.flat()) == verdict
        assert verdict.drift is not None
        flat = verdict.drift.flat()
        assert DriftAssessment.unflat(flat) == verdict.drift
        assert DriftAssessment.flat_dict(flat) == verdict.drift.to_dict()
        assert list(DriftAssessment.flat_dict(flat)) == list(verdict.drift.to_dict())  # same key order
        if verdict.loop_event is not None:
            event = verdict.loop_event
            assert LoopEvent.unflat(event.flat()) == event
            assert json.dumps(LoopEvent.flat_dict(event.flat())) == json.dumps(event.to_dict())
            for signal in event.signals:
                assert LoopSignal.unflat(signal.flat()) == signal
                assert json.dumps(LoopSignal.flat_dict(signal.flat())) == json.dumps(signal.to_dict())


def test_histories_are_not_tracked_by_the_garbage_collector() -> None:
    tracker = GoalTracker(GOAL)
    _run(tracker)
    for _ in range(3):  # a tuple is untracked once those inside it are: verdict, loop event, signals
        gc.collect()
    engine, loops = tracker.drift_engine, tracker.loops
    semantic = next(d for d in loops._detectors if isinstance(d, SemanticJaccardDetector))
    held = [
        *tracker._verifications, *engine._history, *engine._context, *loops._history, *semantic._window,
    ]  # fmt: skip
    assert len(held) > 40
    assert [x for x in held if gc.is_tracked(x)] == []


def test_restored_tracker_continues_identically() -> None:
    steps = _steps()
    whole = GoalTracker(GOAL)
    first = GoalTracker(GOAL)
    for i, step in enumerate(steps[:9]):
        whole.verify(step, now=100.0 + i)
        first.verify(step, now=100.0 + i)
    snapshot = json.loads(json.dumps(first.snapshot()))
    restored = GoalTracker.restore(snapshot)
    assert json.dumps(restored.snapshot(), sort_keys=True) == json.dumps(first.snapshot(), sort_keys=True)
    for i, step in enumerate(steps[9:], start=9):
        assert restored.verify(step, now=100.0 + i) == whole.verify(step, now=100.0 + i)
    assert restored.snapshot() == whole.snapshot()


def test_near_duplicate_window_matches_set_jaccard() -> None:
    """The window's sorted tuples give the same counts as comparing the sets themselves."""
    detector = SemanticJaccardDetector(threshold=0.5, min_similar=1, window=10)
    texts = [
        "alpha beta gamma delta",
        "alpha beta gamma",
        "alpha beta gamma delta",
        "zeta eta theta",
        "alpha beta",
    ]
    fired = []
    for text in texts:
        toks = frozenset(text.split())
        facts = StepFacts(
            label="t", action=text, pair=text, cycle=text, family="t", tokens=toks, echo="", error=None,
            failed=False, observation="", approach=text,
        )  # fmt: skip
        signal = detector.on_step(facts, 0.0)
        fired.append(None if signal is None else signal.repeat_count)
    sets = [frozenset(t.split()) for t in texts]
    expected = [sum(jaccard(sets[i], sets[j]) > 0.5 for j in range(i)) or None for i in range(len(sets))]
    assert expected == [None, 1, 2, None, 1]  # alpha beta: 2/3 with abg, only 2/4 with abgd
    assert fired == expected
    assert all(
        isinstance(entry[2], tuple) and list(entry[2]) == sorted(entry[2]) for entry in detector._window
    )
    restored = SemanticJaccardDetector.restore(json.loads(json.dumps(detector.snapshot())))
    assert list(restored._window) == list(detector._window)


def _as_schema_1(tracker_snapshot: dict[str, Any]) -> dict[str, Any]:
    """The same tracker snapshot with its histories in the object form schema 1 wrote."""
    snap = json.loads(json.dumps(tracker_snapshot))
    drift, loops, weights = snap["drift_engine"], snap["loops"], snap["weights"]
    drift.update(schema=1, history=[DriftAssessment.flat_dict(tuple(a)) for a in drift["history"]])
    loops.update(schema=1, history=[LoopEvent.compact_dict(e) for e in loops["history"]])
    weights.update(schema=1, history=[dict(zip(_FLAT_FIELDS, r, strict=True)) for r in weights["history"]])
    return snap


def test_snapshots_are_compact_and_schema_1_snapshots_still_restore() -> None:
    tracker = GoalTracker(GOAL)
    _run(tracker)
    snap = tracker.snapshot()
    for part in ("drift_engine", "loops", "weights"):
        assert snap[part]["schema"] == 2
        assert snap[part]["history"]
        assert all(isinstance(entry, list) for entry in snap[part]["history"])
    old = _as_schema_1(snap)
    assert isinstance(old["loops"]["history"][0], dict)
    restored = GoalTracker.restore(old)
    assert restored.snapshot() == snap
    assert restored.drift_engine.get_history() == tracker.drift_engine.get_history()
    assert restored.loops.loop_history == tracker.loops.loop_history
    assert restored.weights.get_recent_changes(100) == tracker.weights.get_recent_changes(100)
    compact = len(json.dumps(snap))
    assert compact < 0.8 * len(json.dumps(old))  # the histories' keys are no longer repeated


def test_malformed_compact_history_entries_are_snapshot_errors() -> None:
    tracker = GoalTracker(GOAL)
    _run(tracker)
    snap = json.loads(json.dumps(tracker.snapshot()))
    breakages = [
        ("drift_engine", [1, 2, 3]),
        ("drift_engine", {"score": 0.1}),
        ("drift_engine", [*snap["drift_engine"]["history"][0][:-1], "late"]),
        ("loops", ["exact_repeat"]),
        ("loops", [*snap["loops"]["history"][0][:1], [1, 2], *snap["loops"]["history"][0][2:]]),
        ("loops", [*snap["loops"]["history"][0][:1], ["x"] * 6, *snap["loops"]["history"][0][2:]]),
        ("weights", snap["weights"]["history"][0][:-1]),
        ("weights", [*snap["weights"]["history"][0][:-1], "sideways"]),
    ]
    for part, entry in breakages:
        broken = json.loads(json.dumps(snap))
        broken[part]["history"] = [entry]
        with pytest.raises(SnapshotError):
            GoalTracker.restore(broken)
