"""Fast paths added for speed are pinned to the plain recipe they replace (no behaviour change)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import text as text_module
from goalkeeper.core.feedback import _json_copy
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
    copied = _json_copy(value)
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
