"""The individual loop detectors: the reference ones of goalkeeper.core.loop_rules and the peer rules of
goalkeeper.core.loop_peers (they share the fixtures below): thresholds, formulas, windows, snapshots."""

from __future__ import annotations

import json
from collections import deque

import pytest

from goalkeeper.core.loop_keys import StepFacts
from goalkeeper.core.loop_peers import (
    ActionErrorRule,
    ActionObservationRule,
    AlternationRule,
    CompressionRule,
    EmptyResponseRule,
    MonologueRule,
    ToolCallStreakRule,
)
from goalkeeper.core.loop_rules import (
    DeadEndDetector,
    Detector,
    ExactHashDetector,
    LoopSignal,
    LoopType,
    OscillationDetector,
    SemanticJaccardDetector,
)
from goalkeeper.errors import ConfigurationError, SnapshotError


def facts(
    pair: str = "p",
    *,
    action: str | None = None,
    observation: str = "o",
    error: str | None = None,
    failed: bool | None = None,
    toks: frozenset[str] | None = None,
    family: str = "f",
    echo: str = "e",
    cycle: str | None = None,
) -> StepFacts:
    """Hand-made facts: one letter per distinct step is enough for most detectors."""
    return StepFacts(
        label="tool",
        action=action if action is not None else pair,
        pair=pair,
        cycle=cycle if cycle is not None else pair,
        family=family,
        tokens=toks if toks is not None else frozenset({pair}),
        echo=echo,
        error=error,
        failed=bool(error) if failed is None else failed,
        observation=observation,
        approach=pair,
    )


def feed(detector: Detector, items: list[StepFacts]) -> list[LoopSignal | None]:
    return [detector.on_step(f, float(i)) for i, f in enumerate(items)]


def fired(signals: list[LoopSignal | None]) -> list[int]:
    """1-based positions at which a signal fired."""
    return [i + 1 for i, s in enumerate(signals) if s is not None]


def confidences(signals: list[LoopSignal | None]) -> list[float]:
    return [round(s.confidence, 6) for s in signals if s is not None]


# -- types --------------------------------------------------------------------------------------


def test_loop_type_values_are_pinned():
    assert {t.name: t.value for t in LoopType} == {
        "EXACT_REPEAT": "exact_repeat",
        "SEMANTIC_REPEAT": "semantic_repeat",
        "OSCILLATION": "oscillation",
        "DEAD_END": "dead_end",
        "REPEATING_ACTION_OBSERVATION": "repeating_action_observation",
        "REPEATING_ACTION_ERROR": "repeating_action_error",
        "ALTERNATING_PATTERN": "repeating_action_observation_pattern",
        "MONOLOGUE": "monologue",
        "EMPTY_RESPONSE": "empty_response_loop",
        "CONTEXT_WINDOW": "context_window_error",
        "TOOL_CALL_STREAK": "consecutive_identical_tool_calls",
        "REENTRY": "loop_reentry",
    }


def test_loop_signal_round_trips_and_rejects_garbage():
    sig = LoopSignal("ExactHashDetector", 0.65, "why", LoopType.EXACT_REPEAT, 4, 12.5)
    assert LoopSignal.from_dict(json.loads(json.dumps(sig.to_dict()))) == sig
    bad = sig.to_dict() | {"loop_type": "nope"}
    with pytest.raises(SnapshotError, match="loop_type"):
        LoopSignal.from_dict(bad)
    with pytest.raises(SnapshotError, match="confidence"):
        LoopSignal.from_dict({k: v for k, v in sig.to_dict().items() if k != "confidence"})


# -- ExactHashDetector --------------------------------------------------------------------------


def test_exact_fires_at_three_with_reference_confidence():
    signals = feed(ExactHashDetector(), [facts("a")] * 7)
    assert fired(signals) == [3, 4, 5, 6, 7]
    assert confidences(signals) == [0.5, 0.65, 0.8, 0.95, 1.0]  # 0.5 + 0.15 * (count - 3), clipped
    sig = signals[3]
    assert sig is not None
    assert (sig.detector_name, sig.loop_type, sig.repeat_count, sig.timestamp) == (
        "ExactHashDetector", LoopType.EXACT_REPEAT, 4, 3.0,
    )  # fmt: skip


def test_exact_counts_non_consecutive_repeats_inside_the_window():
    seq = [facts("a"), facts("b"), facts("a"), facts("c"), facts("a")]
    assert fired(feed(ExactHashDetector(), seq)) == [5]


def test_exact_window_evicts_old_repeats():
    d = ExactHashDetector(threshold=3, window=4)
    seq = [facts("a"), facts("a"), facts("b"), facts("c"), facts("d"), facts("a")]
    assert fired(feed(d, seq)) == []
    assert ExactHashDetector().window == 500


def test_exact_pressure_is_partial_evidence():
    d = ExactHashDetector()
    d.on_step(facts("a"), 0)
    assert d.pressure == 0.0
    d.on_step(facts("a"), 0)
    assert d.pressure == 0.5
    d.on_step(facts("a"), 0)
    assert d.pressure == 0.0  # fired


def test_exact_progress_reset_restarts_the_count_after_real_work():
    work = [facts(f"new{i}") for i in range(4)]
    seq = [facts("a"), facts("a"), *work, facts("a")]
    assert fired(feed(ExactHashDetector(progress_reset=4), seq)) == []
    assert fired(feed(ExactHashDetector(progress_reset=None), seq)) == [7]
    # Three new steps are not enough progress to forget the loop.
    assert fired(
        feed(ExactHashDetector(progress_reset=4), [facts("a"), facts("a"), *work[:3], facts("a")])
    ) == [6]


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 1}, {"window": 0}, {"progress_reset": 0}, {"threshold": 2.5}]
)
def test_exact_rejects_bad_parameters(kwargs):
    with pytest.raises(ConfigurationError):
        ExactHashDetector(**kwargs)


# -- SemanticJaccardDetector --------------------------------------------------------------------


def tok(*words: str) -> frozenset[str]:
    return frozenset(words)


def test_semantic_needs_two_similar_past_steps():
    base = tok("find", "cheap", "flights", "seattle")
    near = tok("find", "cheap", "flights", "seattle", "today")  # Jaccard 4/5 = 0.8
    signals = feed(
        SemanticJaccardDetector(), [facts("a", toks=base), facts("b", toks=near), facts("c", toks=base)]
    )
    assert fired(signals) == [3]
    assert confidences(signals) == [0.8]  # 0.4 + 0.2 * 2
    more = feed(SemanticJaccardDetector(), [facts(str(i), toks=base) for i in range(4)])
    assert confidences(more) == [0.8, 1.0]  # 3 similar: 0.4 + 0.6


def test_semantic_progress_aware_counts_only_since_the_last_progress_step():
    code = tok("def", "return")
    edit = [facts(f"e{i}", toks=code, family="edit", echo="ok") for i in range(3)]
    test = [facts(f"t{i}", toks=tok("pytest"), family="test", echo=f"{i} failed") for i in range(3)]
    cycle = [edit[0], test[0], edit[1], test[1], edit[2], test[2]]
    assert fired(feed(SemanticJaccardDetector(progress_aware=True), cycle)) == []  # new test results
    assert fired(feed(SemanticJaccardDetector(progress_aware=False), cycle)) == [5]  # the reference
    # Rewordings that keep returning the same result are counted, before and after a progress step.
    q = tok("cheap", "flights", "seattle")
    reworded = [facts(f"q{i}", toks=q, family="search", echo="none") for i in range(3)]
    assert fired(feed(SemanticJaccardDetector(progress_aware=True), reworded)) == [3]
    assert fired(
        feed(SemanticJaccardDetector(progress_aware=True), [reworded[0], test[0], *reworded[1:], reworded[0]])
    ) == [5]


def test_semantic_threshold_is_strict():
    a = tok(*(f"w{i}" for i in range(20)))
    b = tok(*(f"w{i}" for i in range(13)), *(f"v{i}" for i in range(7)))  # 13 shared / 27 -> 0.48
    c = tok(*(f"w{i}" for i in range(13)))  # 13 / 20 = 0.65 exactly: not above
    assert fired(feed(SemanticJaccardDetector(), [facts(toks=a), facts(toks=a), facts(toks=c)])) == []
    assert fired(feed(SemanticJaccardDetector(), [facts(toks=a), facts(toks=a), facts(toks=b)])) == []
    d = tok(*(f"w{i}" for i in range(14)))  # 14 / 20 = 0.7
    assert fired(feed(SemanticJaccardDetector(), [facts(toks=a), facts(toks=a), facts(toks=d)])) == [3]


def test_semantic_compares_only_same_family_and_echo():
    t = tok("x", "y")
    assert (
        fired(
            feed(
                SemanticJaccardDetector(),
                [facts(toks=t, family="f1"), facts(toks=t, family="f2"), facts(toks=t, family="f1")],
            )
        )
        == []
    )
    assert (
        fired(
            feed(
                SemanticJaccardDetector(),
                [facts(toks=t, echo="r1"), facts(toks=t, echo="r2"), facts(toks=t, echo="r1")],
            )
        )
        == []
    )
    assert (
        fired(feed(SemanticJaccardDetector(), [facts(toks=tok()), facts(toks=tok()), facts(toks=tok())]))
        == []
    )


def test_semantic_window_is_thirty_steps():
    t = tok("same", "words")
    filler = [facts(str(i), toks=tok(f"other{i}")) for i in range(29)]
    assert (
        fired(feed(SemanticJaccardDetector(), [facts(toks=t), facts(toks=t), *filler, facts(toks=t)])) == []
    )
    assert fired(
        feed(SemanticJaccardDetector(), [facts(toks=t), facts(toks=t), *filler[:28], facts(toks=t)])
    ) == [31]
    d = SemanticJaccardDetector()
    d.on_step(facts(toks=t), 0)
    d.on_step(facts(toks=t), 0)
    assert d.pressure == 0.5  # one similar of the two needed


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 0}, {"threshold": 1}, {"threshold": True}, {"min_similar": 0}, {"window": 0}]
)
def test_semantic_rejects_bad_parameters(kwargs):
    with pytest.raises(ConfigurationError):
        SemanticJaccardDetector(**kwargs)


# -- OscillationDetector ------------------------------------------------------------------------


def seq_of(text: str) -> list[StepFacts]:
    return [facts(c) for c in text]


def test_oscillation_period_two_fires_after_two_cycles():
    signals = feed(OscillationDetector(), seq_of("ABABAB"))
    assert fired(signals) == [4, 5, 6]
    assert confidences(signals) == [0.5, 0.5, 0.65]  # 0.5 + 0.15 * (cycles - 2)
    assert [s.repeat_count for s in signals if s] == [2, 2, 3]
    assert signals[3].evidence == "cycle of 2 steps (tool, tool) repeated 2 times"  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "first"), [("ABCABC", 6), ("ABCDABCD", 8), ("AABAAB", 6), ("XABAB", 5)])
def test_oscillation_periods_three_and_four(text, first):
    assert fired(feed(OscillationDetector(), seq_of(text)))[:1] == [first]


@pytest.mark.parametrize("text", ["AAAAAAAA", "ABACABAD", "ABCDE", "ABCDEABCDE"])
def test_oscillation_ignores_repeats_and_non_cycles(text):
    assert fired(feed(OscillationDetector(), seq_of(text))) == []


def test_oscillation_keys_on_the_cycle_key():
    # In the reference keying `cycle` is the action type, whatever the arguments and results.
    seq = [facts(f"p{i}", cycle="edit" if i % 2 == 0 else "test") for i in range(4)]
    assert fired(feed(OscillationDetector(), seq)) == [4]


def test_oscillation_window_and_parameters():
    d = OscillationDetector()
    assert (d.threshold, d.periods, d.window) == (2, (2, 3, 4), 20)
    with pytest.raises(ConfigurationError):
        OscillationDetector(threshold=6)  # 6 cycles of period 4 do not fit in 20 steps
    with pytest.raises(ConfigurationError):
        OscillationDetector(periods=(1,))
    assert fired(feed(OscillationDetector(threshold=3, periods=(2,), window=6), seq_of("ABABAB"))) == [6]


# -- DeadEndDetector ----------------------------------------------------------------------------


def test_dead_end_same_error_three_times():
    signals = feed(DeadEndDetector(), [facts(str(i), error="boom") for i in range(5)])
    assert fired(signals) == [3, 4, 5]
    assert confidences(signals) == [0.6, 0.7, 0.8]  # 0.6 + 0.1 * (count - 3)
    assert signals[2].loop_type is LoopType.DEAD_END  # type: ignore[union-attr]


def test_dead_end_reference_window_is_fifteen_errors():
    errors = [facts(str(i), error=f"other {i}") for i in range(12)]
    clean = [facts(f"ok{i}") for i in range(40)]
    seq = [facts("a", error="boom"), *clean, *errors, facts("b", error="boom"), facts("c", error="boom")]
    assert fired(feed(DeadEndDetector(), seq)) == [len(seq)]  # 15 errors; the 40 clean steps do not count
    one_more = [facts("a", error="boom"), *errors, facts("z", error="x"), *seq[-2:]]
    assert fired(feed(DeadEndDetector(), one_more)) == []  # 16 errors: the first boom left the window


def test_dead_end_goalkeeper_window_is_fifteen_steps():
    clean = [facts(f"ok{i}") for i in range(13)]
    boom = facts("a", error="boom")
    assert fired(feed(DeadEndDetector(counts_steps=True), [boom, *clean, boom, boom])) == []
    assert fired(feed(DeadEndDetector(counts_steps=True), [boom, *clean[:12], boom, boom])) == [15]
    d = DeadEndDetector(counts_steps=True)
    d.on_step(boom, 0)
    d.on_step(boom, 0)
    assert d.pressure == 0.5


# -- peer rules ---------------------------------------------------------------------------------


def test_action_observation_rule_four_in_a_row():
    signals = feed(ActionObservationRule(), seq_of("AAAAA"))
    assert fired(signals) == [4, 5]
    assert confidences(signals) == [0.6, 0.7]
    assert fired(feed(ActionObservationRule(), seq_of("AAABAAA"))) == []
    # Same action, different observation: a different pair.
    assert fired(feed(ActionObservationRule(), [facts(f"p{i}", action="A") for i in range(6)])) == []


def test_action_error_rule_three_failures_with_different_texts():
    seq = [facts(f"p{i}", action="A", error=f"error text {i}") for i in range(4)]
    signals = feed(ActionErrorRule(), seq)
    assert fired(signals) == [3, 4]
    assert confidences(signals) == [0.6, 0.7]
    broken = [seq[0], seq[1], facts("ok", action="A"), seq[2], seq[3]]
    assert fired(feed(ActionErrorRule(), broken)) == []
    other = [seq[0], seq[1], facts("p9", action="B", error="x")]
    assert fired(feed(ActionErrorRule(), other)) == []


def test_alternation_rule_six_events():
    signals = feed(AlternationRule(), seq_of("ABABABAB"))
    assert fired(signals) == [6, 7, 8]
    assert confidences(signals) == [0.6, 0.6, 0.7]
    assert [s.repeat_count for s in signals if s] == [3, 3, 4]
    for text in ("ABABA", "AAAAAA", "ABABCBAB", "ABCABC"):
        assert fired(feed(AlternationRule(), seq_of(text))) == [], text
    d = AlternationRule()
    feed(d, seq_of("ABABA"))
    assert d.pressure == 0.75


def test_tool_call_streak_counts_only_stale_results_in_goalkeeper_mode():
    same = [facts(f"p{i}", action="poll", observation="running") for i in range(6)]
    signals = feed(ToolCallStreakRule(progress_aware=True), same)
    assert fired(signals) == [5, 6]
    assert confidences(signals) == [0.6, 0.7]
    progress = [facts(f"p{i}", action="poll", observation=f"{i * 10}%") for i in range(8)]
    assert fired(feed(ToolCallStreakRule(progress_aware=True), progress)) == []
    assert fired(feed(ToolCallStreakRule(progress_aware=False), progress)) == [5, 6, 7, 8]  # Gemini
    flapping = [facts(f"p{i}", action="poll", observation="up" if i % 2 else "down") for i in range(7)]
    assert fired(feed(ToolCallStreakRule(progress_aware=True), flapping)) == [6, 7]
    broken = [*same[:4], facts("x", action="other"), *same[:4]]
    assert fired(feed(ToolCallStreakRule(), broken)) == []


def say(detector: Detector, *messages: tuple[str, str]) -> list[LoopSignal | None]:
    out = []
    for role, text in messages:
        out.append(detector.on_message(role, text, not text.strip(), 0.0))
    return out


def test_monologue_rule():
    signals = say(MonologueRule(), *[("assistant", "I will check")] * 4)
    assert fired(signals) == [3, 4]
    assert confidences(signals) == [0.5, 0.65]
    assert (
        fired(say(MonologueRule(), ("assistant", "a"), ("assistant", "a"), ("user", "?"), ("assistant", "a")))
        == []
    )
    assert fired(say(MonologueRule(), ("assistant", "a"), ("assistant", "b"), ("assistant", "a"))) == []
    d = MonologueRule()
    say(d, ("assistant", "a"), ("assistant", "a"))
    d.on_step(facts("x"), 0.0)
    assert fired(say(d, ("assistant", "a"))) == []


def test_empty_response_rule():
    signals = say(
        EmptyResponseRule(), ("assistant", ""), ("user", "hello?"), ("assistant", "  "), ("assistant", "\n")
    )
    assert fired(signals) == [4]
    assert confidences(signals) == [0.5]
    assert (
        fired(
            say(
                EmptyResponseRule(),
                ("assistant", ""),
                ("assistant", "hi"),
                ("assistant", ""),
                ("assistant", ""),
            )
        )
        == []
    )
    d = EmptyResponseRule()
    say(d, ("assistant", ""), ("assistant", ""))
    d.on_compressed(0.0)
    assert fired(say(d, ("assistant", ""))) == []
    say(d, ("assistant", ""), ("assistant", ""))
    d.on_step(facts("x"), 0.0)
    assert fired(say(d, ("assistant", ""))) == []


def test_compression_rule():
    d = CompressionRule()
    assert d.on_compressed(0.0) is None
    say(d, ("user", "go on"))
    sig = d.on_compressed(0.0)
    assert sig is not None
    assert (sig.confidence, sig.repeat_count, sig.loop_type) == (0.5, 2, LoopType.CONTEXT_WINDOW)
    sig = d.on_compressed(0.0)
    assert sig is not None
    assert sig.confidence == pytest.approx(0.65)
    d.on_step(facts("x"), 0.0)
    assert d.on_compressed(0.0) is None
    say(d, ("assistant", "working"))
    assert d.on_compressed(0.0) is None


@pytest.mark.parametrize("cls", [ActionObservationRule, ActionErrorRule, AlternationRule, MonologueRule])
def test_rules_reject_threshold_below_two(cls):
    with pytest.raises(ConfigurationError):
        cls(1)


# -- snapshot / restore -------------------------------------------------------------------------

DETECTORS = [
    lambda: ExactHashDetector(progress_reset=2),
    SemanticJaccardDetector,
    lambda: SemanticJaccardDetector(progress_aware=True),
    OscillationDetector,
    DeadEndDetector,
    ActionObservationRule,
    ActionErrorRule,
    AlternationRule,
    lambda: ToolCallStreakRule(progress_aware=True),
]


@pytest.mark.parametrize("make", DETECTORS)
def test_step_detectors_restore_and_continue(make):
    seq = [
        facts(c, action=c.lower(), observation=c, error="e" if c in "BD" else None, toks=tok(c, "x"))
        for c in "ABABCBCBAAAABDDDAB"
    ]
    for cut in range(len(seq)):
        whole = make()
        expected = feed(whole, seq)
        first = make()
        head = feed(first, seq[:cut])
        data = json.loads(json.dumps(first.snapshot()))
        again = type(first).restore(data)
        tail = [again.on_step(f, float(i + cut)) for i, f in enumerate(seq[cut:])]
        assert head + tail == expected
        assert again.snapshot() == whole.snapshot()


@pytest.mark.parametrize(
    "make", [*DETECTORS, MonologueRule, EmptyResponseRule, CompressionRule, ExactHashDetector]
)
def test_clear_returns_every_detector_to_its_fresh_state(make):
    # Scalars are reset from Detector.initial, which must list exactly the scalar state attributes
    # with the values a new detector starts with (same value and type).
    fresh = make()
    scalars = {a for a in fresh.state if not isinstance(getattr(fresh, a), (deque, dict))}
    assert set(type(fresh).initial) == scalars
    d = make()
    if isinstance(d, MonologueRule):
        say(d, ("assistant", "hi"), ("assistant", "hi"))
    elif isinstance(d, EmptyResponseRule):
        say(d, ("assistant", ""), ("assistant", ""))
    elif isinstance(d, CompressionRule):
        d.on_compressed(9.0)
    else:
        feed(d, [facts(c, error="e" if c == "B" else None) for c in "ABABAAAB"])
    assert d.snapshot() != fresh.snapshot()
    d.clear()
    assert d.snapshot() == fresh.snapshot()
    assert d.pressure == 0.0
    for attr in scalars:
        assert type(getattr(d, attr)) is type(getattr(fresh, attr))


@pytest.mark.parametrize("cls", [MonologueRule, EmptyResponseRule, CompressionRule])
def test_message_rules_restore(cls):
    d = cls()
    say(d, ("assistant", ""), ("assistant", ""))
    d.on_compressed(0.0) if cls is CompressionRule else None
    again = cls.restore(json.loads(json.dumps(d.snapshot())))
    assert again.snapshot() == d.snapshot()


def test_detector_restore_rejects_bad_snapshots():
    snap = ExactHashDetector().snapshot()
    with pytest.raises(SnapshotError, match="expected a DeadEndDetector snapshot"):
        DeadEndDetector.restore(snap)
    with pytest.raises(SnapshotError, match="schema"):
        ExactHashDetector.restore(snap | {"schema": 99})
    with pytest.raises(SnapshotError, match="missing field 'window'"):
        ExactHashDetector.restore({k: v for k, v in snap.items() if k != "window"})
    with pytest.raises(SnapshotError, match="malformed"):
        ExactHashDetector.restore(snap | {"threshold": 0})
    with pytest.raises(SnapshotError, match="malformed"):
        ExactHashDetector.restore(snap | {"state": snap["state"] | {"_window": "nope"}})
    with pytest.raises(SnapshotError, match="missing '_runs'"):
        ExactHashDetector.restore(snap | {"state": {"_window": [], "_progress": 0}})
    with pytest.raises(SnapshotError):
        ExactHashDetector.restore([1, 2])
