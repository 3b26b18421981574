"""Fast paths added for speed are pinned to the plain recipe they replace (no behaviour change)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import text as text_module
from goalkeeper.core._snapshot import json_copy, scalar_fields
from goalkeeper.core.drift import DriftAssessment
from goalkeeper.core.goal_dna import entities
from goalkeeper.core.step_words import StepWordMemo
from goalkeeper.core.steps import Step
from goalkeeper.core.text import (
    KeywordMemo,
    TextMemo,
    collapsed_trigrams,
    identifiers,
    joined_trigrams,
    keywords,
    tokens,
    trigrams,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["get_user", "search", "", "bash", "readFile", "x" * 70, "Ünïcode_tool"]), max_size=8
    )
)
def test_keyword_memo_of_name_equals_keywords(names: list[str]) -> None:
    memo = KeywordMemo()
    for name in names:
        assert memo.of_name(name) == keywords(name)


_texts = st.text(alphabet=st.sampled_from("aB_Σσς İıK \t\n.'0123x-:"), max_size=20) | st.text(max_size=12)


@settings(max_examples=600, deadline=None)
@given(_texts, _texts)
def test_joined_trigrams_equals_trigrams_of_the_joined_text(head: str, rest: str) -> None:
    memo = TextMemo(collapsed_trigrams, 4, 64)
    assert joined_trigrams(head, rest, memo) == trigrams(head + " " + rest)
    assert joined_trigrams(head, rest, memo) == trigrams(head + " " + rest)  # from the memo


_values = st.one_of(
    st.text(max_size=10), st.integers(-5, 99), st.floats(allow_nan=False), st.none(), st.booleans()
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=10), st.text(max_size=15), st.dictionaries(st.text(max_size=4), _values, max_size=4))
def test_step_text_is_head_then_argument_values(tool: str, description: str, args: dict[str, object]) -> None:
    step = Step(tool=tool, args=args, description=description)
    head = step.text_head
    rest = step.text[len(head) + 1 :] if head else step.text
    assert step.text.startswith(head)
    assert joined_trigrams(head, rest) == trigrams(step.text)


_idents_text = st.lists(
    st.sampled_from(["The", "Seattle", "get_user_details", "R00042", "booking", "JFK", "Sea", "ab", "and",
                     "Flights", "getUserDetails", ". ", " ", "\n", "9Ab", "(", "x_1", "İ", "Calculate"]),
    max_size=14,
).map("".join)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(_idents_text, min_size=1, max_size=4))
def test_step_word_memo_equals_the_three_features(texts: list[str]) -> None:
    memo = StepWordMemo(size=8)  # small: entries are evicted and recomputed along the way
    for text in texts:
        assert memo.of(text, identifiers(text)) == (keywords(text), tokens(text), entities(text))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json)
def test_json_copy_is_a_deep_copy(value: object) -> None:
    copied = json_copy(value)
    assert copied == copy.deepcopy(value)
    assert type(copied) is type(value)

    def containers(v: object) -> list[int]:
        if isinstance(v, dict):
            return [id(v), *(i for x in v.values() for i in containers(x))]
        if isinstance(v, list):
            return [id(v), *(i for x in v for i in containers(x))]
        if isinstance(v, tuple):
            return [i for x in v for i in containers(x)]
        return []

    # No mutable container is shared between the original and the copy.
    assert not set(containers(value)) & set(containers(copied))


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True))
def test_identifier_keywords_fast_paths_equal_the_camel_case_split(ident: str) -> None:
    parts = text_module._CAMEL_RE.sub("_", ident).lower().split("_")
    expected = tuple(text_module.stem(w) for w in parts if len(w) > 2 and w not in text_module.STOP_WORDS)
    assert text_module._ident_keywords(ident) == expected


def _records() -> list[object]:
    """One instance of every record class whose snapshot form is built with ``scalar_fields``,
    taken from a real tracker and budget (so their fields hold what the engine stores)."""
    from goalkeeper import GoalTracker

    tracker = GoalTracker("Book the cheapest flight to Seattle")
    verdict = None
    for i in range(6):
        verdict = tracker.verify(Step.of(tool="dance", args={"n": i % 2}, output="music playing"))
    assert verdict is not None
    assert verdict.drift is not None
    updates = tracker.weights.get_recent_updates(3)
    dna_events = tracker.drift_engine.goal_dna.get_drift_events()
    from goalkeeper.core.budget import AdaptiveBudget

    budget = AdaptiveBudget()
    for i in range(3):
        budget.update(progress=0.1 * (i + 1), tokens_used=100 * i)
    budget_records = list(budget._records)
    return [verdict, verdict.drift, verdict.drift.signals, *updates, *dna_events, *budget_records]


def test_scalar_fields_equals_asdict_on_scalar_records() -> None:
    import dataclasses

    records = _records()
    assert len(records) >= 8
    for record in records:
        plain = scalar_fields(record)
        deep = dataclasses.asdict(record)  # type: ignore[call-overload]
        nested = ("loop_event", "drift", "signals")  # dataclasses inside; to_dict converts them
        assert list(plain) == list(deep)
        assert {k: v for k, v in plain.items() if k not in nested} == {
            k: v for k, v in deep.items() if k not in nested
        }
    drift = records[1]
    assert isinstance(drift, DriftAssessment)
    assert drift.to_dict() == {
        **dataclasses.asdict(drift),
        "severity": drift.severity.value,
        "recommended_action": drift.recommended_action.value,
    }


def test_task_state_to_dict_is_a_deep_copy_like_asdict() -> None:
    import dataclasses

    from goalkeeper import TaskState

    state = TaskState(
        current_goal="fix it",
        sub_goals=[{"goal": "a", "status": "done"}],
        active_entities={"file": "a.py"},
        constraints=["no network"],
        tool_usage_summary={"bash": {"calls": 2, "successes": 1, "success_rate": 0.5}},
    )
    data = state.to_dict()
    assert data == dataclasses.asdict(state)
    data["sub_goals"][0]["status"] = "open"
    data["tool_usage_summary"]["bash"]["calls"] = 9
    assert state.sub_goals[0]["status"] == "done"
    assert state.tool_usage_summary["bash"]["calls"] == 2


def test_audit_histories_cost_the_garbage_collector_nothing() -> None:
    import gc

    from goalkeeper import GoalTracker, WeightCategory, WeightUpdate

    tracker = GoalTracker("Book the cheapest flight to Seattle")
    for i in range(20):
        tracker.verify(Step.of(tool="search_flights", args={"to": "SEA", "n": i}, output=f"{i} flights"))
        tracker.verify(Step.of(tool="dance", args={"n": i}, output="music playing"))
    tracker.weights.apply_update(WeightUpdate(WeightCategory.BEHAVIORAL, "verbosity", 0.1, "user asked", 1.0))
    history = list(tracker.weights._history)
    assert len(history) > 20
    gc.collect()
    # Flat tuples of str and float: untracked once the collector has seen them, so a long-lived
    # goal's 1,000-record audit trail adds nothing to a full collection.
    assert not any(gc.is_tracked(record) for record in history)
    dna = tracker.drift_engine.goal_dna
    assert dna._events  # the dancing steps drifted
    assert not any(gc.is_tracked(record) for record in dna._events)
    # What callers read is unchanged: full WeightChange records, newest last.
    last = tracker.weights.get_recent_changes(1)[0]
    assert (last.update.category, last.update.key, last.update.reason) == (
        WeightCategory.BEHAVIORAL,
        "verbosity",
        "user asked",
    )
