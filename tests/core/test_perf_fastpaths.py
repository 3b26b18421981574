"""Fast paths added for speed are pinned to the plain recipe they replace (no behaviour change)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_text import volatile_text

from goalkeeper.core import text as text_module
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

_GATE_SAMPLES = [
    "550e8400-e29b-41d4-a716-446655440000", "2024-05-20T11:03:22Z", "2024-05-20 11:03", "11:03:22",
    "0x7ffdeadbeef", "a1b2c3d4e5", "1716203002123", "12ms", "0.53 s", "3.4 seconds", "250 µs", "5min",
    "pid=4242", "PID: 99", "port 8080", "tid=1", "THREAD 7", "p\u0131d 12", "\u0131\u0130 tid 3",
    "record 825082 updated at 2024-05-20T11:51:00Z", "٣٤٥٦٧٨٩٠١٢", "١٢ ms", "2 updated", "R00042",
]  # fmt: skip


def _gate_holds(text: str) -> None:
    for (pattern, _, _, _), gate in text_module._VOLATILE_PASSES:
        if pattern.search(text) is not None:
            assert gate(text), (pattern.pattern, text)


def test_volatile_gates_on_samples() -> None:
    for sample in _GATE_SAMPLES:
        _gate_holds(sample)
        _gate_holds(f"x {sample} y")


@settings(max_examples=800, deadline=None)
@given(
    volatile_text | st.text(alphabet=st.sampled_from("0123456789abcdefxXpPiIdDtTsSmMnNuµ\u0131\u0130 :-."))
)
def test_volatile_gates_are_necessary(text: str) -> None:
    # A pass is skipped only when its gate finds nothing: every match of a pattern satisfies its gate.
    _gate_holds(text)


def test_pid_gate_sends_non_ascii_to_the_pattern() -> None:
    pid = text_module._VOLATILE_PATTERNS[7][0]
    assert pid.search("p\u0131d 12")  # dotless i folds to "i" under IGNORECASE
    assert text_module._pid_gate("p\u0131d 12")
    assert not text_module._pid_gate("record 12 updated")


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
