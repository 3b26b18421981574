"""Tests for core/goal_dna.py: the standalone GoalDNA fingerprint (reference 2.9)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import goal_dna as gd
from goalkeeper.core.goal_dna import (
    DriftSeverity,
    GoalDNA,
    SimilarityMeasure,
    TrendDirection,
    overlap,
    regression_slope,
)
from goalkeeper.core.text import LexicalVector, jaccard, tokens, trigrams
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError


class Scripted:
    """An embedder whose similarity is the number written in the step text (goal texts embed to 0)."""

    def embed(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return 0.0

    def similarity(self, a: float, b: float) -> float:
        return b + a


def scripted(goal: str = "goal", **kw: object) -> GoalDNA:
    return GoalDNA(goal, embedder=Scripted(), **kw)  # type: ignore[arg-type]


def test_reference_numbers() -> None:
    assert gd.TOKEN_WEIGHT == 0.7
    assert gd.NO_SIGNAL == 0.5
    assert gd.EVENT_TEXT_CHARS == 200
    assert gd.TREND_SLOPE == 0.02
    assert gd.SEVERITY_FACTORS == (0.7, 0.4, 0.2)
    dna = GoalDNA("deploy the billing service")
    assert dna.drift_threshold == 0.15
    assert dna.measure is SimilarityMeasure.JACCARD
    assert [m.value for m in SimilarityMeasure] == ["jaccard", "overlap"]
    assert [s.value for s in DriftSeverity] == ["none", "low", "moderate", "high", "critical", "emergency"]
    assert [d.value for d in TrendDirection] == ["improving", "stable", "worsening"]


def test_fingerprint_uses_text_tokens_and_trigrams() -> None:
    dna = GoalDNA("Deploy the billing service to production")
    assert dna.tokens == tokens("Deploy the billing service to production")
    assert dna.trigrams == trigrams("Deploy the billing service to production")
    assert dna.goal_text == "Deploy the billing service to production"


def test_similarity_is_07_token_jaccard_plus_03_trigram_jaccard() -> None:
    goal, text = "deploy the web server", "deploy server config"
    dna = GoalDNA(goal)
    tok = jaccard(tokens(goal), tokens(text))
    tri = jaccard(trigrams(goal), trigrams(text))
    assert tok == 0.5
    assert dna.similarity(text) == pytest.approx(0.7 * tok + 0.3 * tri)
    # No tokens and no trigrams: no signal either way.
    assert dna.similarity("") == 0.5
    assert dna.similarity("!!") == 0.5


def test_overlap_measure_rewards_a_short_on_topic_step() -> None:
    goal = "Book a one-way economy flight from New York to Seattle for customer mia_li_3668 on May 20"
    text = "economy flight Seattle"
    jac = GoalDNA(goal).similarity(text)
    ov = GoalDNA(goal, measure="overlap").similarity(text)
    assert jac < 0.3
    assert ov == pytest.approx(0.7 * 1.0 + 0.3 * overlap(trigrams(text), trigrams(goal)))
    assert overlap(frozenset({"a", "b"}), frozenset({"b", "c", "d"})) == 0.5
    assert overlap(frozenset(), frozenset({"a"})) == 0.0


def test_plan_words_count_as_goal() -> None:
    dna = GoalDNA("ship the release", measure="overlap", plan=["run pytest", "tag version"])
    assert {"pytest", "version", "release"} <= dna.tokens
    assert dna.plan == ("run pytest", "tag version")
    assert dna.similarity("pytest") > GoalDNA("ship the release", measure="overlap").similarity("pytest")


def test_embedder_takes_the_best_anchor_and_is_clipped() -> None:
    class ByPlan:
        def embed(self, text: str) -> str:
            return text

        def similarity(self, a: str, b: str) -> float:
            return {"plan b": 0.9, "goal": 0.2}.get(a, 0.0) if b == "x" else float(b)

    dna = GoalDNA("goal", embedder=ByPlan(), plan=["plan a", "plan b"])
    assert dna.similarity("x") == 0.9
    assert dna.similarity("7") == 1.0
    assert dna.similarity("-3") == 0.0
    assert dna.similarity("nan") == 0.5


def test_check_drift_records_events_and_counts_consecutive() -> None:
    dna = scripted(drift_threshold=0.5)
    assert dna.check_drift(1, "0.6", now=10.0) is None
    ev = dna.check_drift(2, "0.05")
    assert ev is not None
    assert (ev.step_number, ev.similarity, ev.severity, ev.timestamp) == (
        2,
        0.05,
        DriftSeverity.CRITICAL,
        10.0,
    )
    assert dna.consecutive_drift_count == 1
    dna.check_drift(3, "0.2")
    assert dna.consecutive_drift_count == 2
    assert dna.check_drift(4, "0.5") is None  # at the threshold is not drift
    assert dna.consecutive_drift_count == 0
    assert dna.total_checks == 4
    assert [e.step_number for e in dna.get_drift_events()] == [2, 3]


def test_event_text_is_cut_to_200_chars() -> None:
    dna = GoalDNA("alpha beta gamma")
    ev = dna.check_drift(1, "zzz " * 100)
    assert ev is not None
    assert len(ev.action_text) == 200


@pytest.mark.parametrize(
    ("sim", "severity"),
    [
        (0.5, DriftSeverity.NONE),
        (0.35, DriftSeverity.LOW),
        (0.349, DriftSeverity.MODERATE),
        (0.2, DriftSeverity.MODERATE),
        (0.199, DriftSeverity.HIGH),
        (0.1, DriftSeverity.HIGH),
        (0.099, DriftSeverity.CRITICAL),
        (0.0, DriftSeverity.CRITICAL),
    ],
)
def test_severity_bands_are_fractions_of_the_threshold(sim: float, severity: DriftSeverity) -> None:
    assert scripted(drift_threshold=0.5).severity(sim) is severity


def test_is_drifting_at_limit_not_beyond() -> None:
    # Reference 4.3 item 5: "exceeds" vs "True after 3" -- we follow the example (>=).
    dna = scripted(consecutive_limit=3)
    for i in range(2):
        dna.check_drift(i, "0.0")
    assert not dna.is_drifting()
    dna.check_drift(3, "0.0")
    assert dna.is_drifting()
    assert dna.get_summary()["current_state"] == "drifting"
    dna.reset_consecutive()
    assert not dna.is_drifting()
    assert dna.consecutive_drift_count == 0


def test_history_and_events_are_capped() -> None:
    dna = scripted(history_size=5)
    for i in range(12):
        dna.check_drift(i, "0.0")
    assert len(dna.get_drift_events()) == 5
    trend = dna.get_trend(window=100)
    assert trend.total_drift_events == 12
    assert dna.total_checks == 12
    assert GoalDNA("g").snapshot()["history_size"] == 200


@pytest.mark.parametrize(
    ("values", "direction"),
    [
        (["0.1", "0.2", "0.3"], TrendDirection.IMPROVING),
        (["0.3", "0.2", "0.1"], TrendDirection.WORSENING),
        (["0.5", "0.5", "0.5"], TrendDirection.STABLE),
        (["0.0", "0.021"], TrendDirection.IMPROVING),
        (["0.0", "0.019"], TrendDirection.STABLE),
        (["0.019", "0.0"], TrendDirection.STABLE),
        (["0.021", "0.0"], TrendDirection.WORSENING),
    ],
)
def test_trend_uses_regression_slope_and_002_band(values: list[str], direction: TrendDirection) -> None:
    dna = scripted()
    for i, v in enumerate(values):
        dna.check_drift(i, v)
    assert dna.get_trend().direction is direction


def test_trend_statistics_and_window() -> None:
    dna = scripted(drift_threshold=0.15)
    for i, v in enumerate(["0.9", "0.1", "0.2", "0.3", "0.4"]):
        dna.check_drift(i, v)
    t = dna.get_trend(window=4)
    assert t.average_similarity == pytest.approx(0.25)
    assert (t.min_similarity, t.max_similarity) == (0.1, 0.4)
    assert t.trend_slope == pytest.approx(0.1)
    assert t.total_drift_events == 1
    assert t.consecutive_drifts == 0
    empty = scripted().get_trend()
    assert (empty.direction, empty.average_similarity, empty.trend_slope) == (TrendDirection.STABLE, 0.0, 0.0)
    assert regression_slope([1.0]) == 0.0
    assert regression_slope([0.0, 1.0, 2.0]) == pytest.approx(1.0)


def test_summary_keys() -> None:
    dna = GoalDNA("deploy the billing service")
    dna.check_drift(1, "deploy billing")
    s = dna.get_summary()
    assert set(s) == {
        "goal",
        "token_count",
        "total_checks",
        "drift_events",
        "consecutive_drifts",
        "trend_direction",
        "current_state",
    }
    assert s["token_count"] == 3
    assert s["current_state"] == "on_track"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"goal": ""},
        {"goal": "   "},
        {"goal": 3},
        {"drift_threshold": 0.0},
        {"drift_threshold": 1.5},
        {"drift_threshold": math.nan},
        {"drift_threshold": True},
        {"consecutive_limit": 0},
        {"history_size": 0},
        {"measure": "cosine"},
        {"plan": "one string"},
        {"plan": [1, 2]},
        {"embedder": object()},
    ],
)
def test_bad_configuration(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"goal": "g", **kwargs}
    with pytest.raises(ConfigurationError):
        GoalDNA(**args)  # type: ignore[arg-type]


def test_bad_inputs_name_the_field() -> None:
    dna = GoalDNA("g")
    with pytest.raises(InvalidInputError) as e1:
        dna.similarity(None)  # type: ignore[arg-type]
    assert e1.value.field == "text"
    with pytest.raises(InvalidInputError) as e2:
        dna.check_drift(-1, "x")
    assert e2.value.field == "step_number"
    with pytest.raises(InvalidInputError) as e3:
        dna.check_drift(1, "x", now=math.inf)
    assert e3.value.field == "now"
    with pytest.raises(InvalidInputError) as e4:
        dna.get_trend(window=0)
    assert e4.value.field == "window"
    assert dna.total_checks == 0


def test_snapshot_errors() -> None:
    snap = GoalDNA("g").snapshot()
    with pytest.raises(SnapshotError):
        GoalDNA.restore({**snap, "kind": "DriftEngine"})
    with pytest.raises(SnapshotError):
        GoalDNA.restore({**snap, "schema": 99})
    with pytest.raises(SnapshotError):
        GoalDNA.restore({k: v for k, v in snap.items() if k != "history"})
    with pytest.raises(SnapshotError):
        GoalDNA.restore({**snap, "history": ["x"]})
    with pytest.raises(SnapshotError):
        GoalDNA.restore({**snap, "measure": "cosine"})
    with pytest.raises(SnapshotError):
        GoalDNA.restore(snap, embedder=Scripted())
    with pytest.raises(SnapshotError):
        GoalDNA.restore(scripted().snapshot())
    with pytest.raises(SnapshotError):
        GoalDNA.restore([])  # type: ignore[arg-type]


WORDS = ["deploy", "billing", "service", "rollback", "Zurich", "mia_li_3668", "weather", "the", "42"]
texts = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join) | st.text(max_size=30)


@settings(max_examples=150, deadline=None)
@given(text=texts, measure=st.sampled_from(["jaccard", "overlap"]))
def test_similarity_in_unit_interval(text: str, measure: str) -> None:
    s = GoalDNA("deploy the billing service for mia_li_3668", measure=measure).similarity(text)
    assert 0.0 <= s <= 1.0


@settings(max_examples=120, deadline=None)
@given(
    seq=st.lists(st.tuples(texts, st.none() | st.floats(0, 1e9)), max_size=25),
    cut=st.integers(0, 25),
    measure=st.sampled_from(["jaccard", "overlap"]),
)
def test_restore_and_continue_matches_uninterrupted(
    seq: list[tuple[str, float | None]], cut: int, measure: str
) -> None:
    def make() -> GoalDNA:
        return GoalDNA("deploy the billing service", 0.3, 2, 7, measure=measure, plan=["rollback"])

    a, b = make(), make()
    out_a = [a.check_drift(i, t, now=now) for i, (t, now) in enumerate(seq)]
    cut = min(cut, len(seq))
    out_b = [b.check_drift(i, t, now=now) for i, (t, now) in enumerate(seq[:cut])]
    b = GoalDNA.restore(json.loads(json.dumps(b.snapshot())))
    out_b += [b.check_drift(i, t, now=now) for i, (t, now) in enumerate(seq) if i >= cut]
    assert out_a == out_b
    assert a.snapshot() == b.snapshot()
    assert a.get_trend() == b.get_trend()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["jaccard", "overlap"]))
def test_precomputed_vector_gives_the_same_similarity(text: str, measure: str) -> None:
    dna = GoalDNA("Book a direct flight to Seattle", measure=measure, plan=["search flights"])
    vector = LexicalVector(tokens(text), trigrams(text))
    ctx = {"hat136": 1}
    neutral = frozenset({"search"})
    assert dna._similarity(text, ctx, neutral, vector) == dna._similarity(text, ctx, neutral)
