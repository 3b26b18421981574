"""Tests for core/text.py: tokens, similarity, volatile masking, canonical arguments."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core import text as text_module
from goalkeeper.core.text import (
    STOP_WORDS,
    DenseEmbedder,
    Embedder,
    KeywordMemo,
    LexicalEmbedder,
    TextMemo,
    canonical_args,
    collapse_ws,
    identifiers,
    jaccard,
    keywords,
    mask_volatile,
    stable_hash,
    stem,
    tokens,
    tokens_of_identifiers,
    trigrams,
)
from goalkeeper.errors import ConfigurationError


def test_tokens_follow_reference_recipe() -> None:
    # Identifiers, lower-cased, stop words and words of <= 2 chars removed.
    assert tokens("Book the FLIGHT to SEA on day 20 via get_user_details") == frozenset(
        {"book", "flight", "sea", "day", "get_user_details"}
    )
    assert "the" in STOP_WORDS
    assert len(STOP_WORDS) >= 100


def test_trigrams_collapse_whitespace_and_lowercase() -> None:
    assert trigrams("Ab  C") == frozenset({"ab ", "b c"})
    assert trigrams("ab") == frozenset()


def test_jaccard_edges() -> None:
    assert jaccard(frozenset(), frozenset()) == 0.0
    assert jaccard(frozenset({"a"}), frozenset({"a"})) == 1.0
    assert jaccard(frozenset({"a", "b"}), frozenset({"b", "c"})) == pytest.approx(1 / 3)


def test_lexical_embedder_is_the_reference_fingerprint() -> None:
    emb = LexicalEmbedder()
    a, b = emb.embed("deploy the billing service"), emb.embed("deploy billing service now")
    tok = jaccard(a.tokens, b.tokens)
    tri = jaccard(a.trigrams, b.trigrams)
    assert emb.similarity(a, b) == pytest.approx(0.7 * tok + 0.3 * tri)
    # No signal at all scores the neutral 0.5.
    assert emb.similarity(emb.embed(""), b) == 0.5
    assert isinstance(emb, Embedder)


def test_dense_embedder_cosine_clipped() -> None:
    emb = DenseEmbedder(lambda t: [1.0, 0.0] if t == "x" else [-1.0, 0.0])
    assert emb.similarity(emb.embed("x"), emb.embed("x")) == pytest.approx(1.0)
    assert emb.similarity(emb.embed("x"), emb.embed("y")) == 0.0
    assert emb.similarity((0.0, 0.0), (1.0, 0.0)) == 0.0
    with pytest.raises(ConfigurationError):
        DenseEmbedder(42)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("id 550e8400-e29b-41d4-a716-446655440000 ok", "id <uuid> ok"),
        ("at 2024-05-20T11:03:22.123Z", "at <ts>"),
        ("at 2024-05-20 11:03:22+02:00", "at <ts>"),
        ("took 0.53s", "took <dur>"),
        ("took 120 ms", "took <dur>"),
        ("sha 3f2a9c1e77ab", "sha <hex>"),
        ("epoch 1716203002", "epoch <epoch>"),
        ("obj at 0x7f3a2b1c", "obj at <addr>"),
        ("pid=4242 started", "pid <n> started"),
        ("  a \n\t b  ", "a b"),
    ],
)
def test_mask_volatile(raw: str, masked: str) -> None:
    assert mask_volatile(raw) == masked


def test_mask_volatile_keeps_business_ids_and_small_numbers() -> None:
    # Reservation codes and counts distinguish real work; they must survive masking.
    assert mask_volatile("reservation ABC123 has 3 passengers") == "reservation ABC123 has 3 passengers"
    assert mask_volatile("deadbeef") == "deadbeef"  # hex-looking word without a digit is a word


def test_canonical_args_ignores_order_whitespace_volatile() -> None:
    a = canonical_args({"q": "flights  to SEA", "request_id": "r-1", "page": 2})
    b = canonical_args({"page": 2, "q": "flights to SEA", "request_id": "r-2"})
    assert a == b
    assert canonical_args({"q": "flights to SEA", "page": 3}) != a
    assert canonical_args(None) == canonical_args({}) == "{}"
    assert canonical_args({"x": float("nan")}) == '{"x":"nan"}'
    assert canonical_args({"n": {"b": [1, {"z": 1, "a": 2}]}}) == '{"n":{"b":[1,{"a":2,"z":1}]}}'


def test_stable_hash_is_process_independent() -> None:
    # Pinned: snapshots and suggestion ids depend on this value staying the same across releases.
    assert stable_hash("abc") == "cf4ab791c62b8d2b"
    assert stable_hash("abc") == stable_hash("abc")
    assert stable_hash("abc") != stable_hash("abd")
    assert len(stable_hash("abc", 8)) == 8


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_canonical_args_total_and_valid_json(args: dict[str, object]) -> None:
    out = canonical_args(args)
    json.loads(out)
    # Reordering keys never changes the key.
    assert canonical_args(dict(reversed(list(args.items())))) == out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_lexical_similarity_in_unit_interval(a: str, b: str) -> None:
    emb = LexicalEmbedder()
    s = emb.similarity(emb.embed(a), emb.embed(b))
    assert 0.0 <= s <= 1.0


# -- the fast paths compute exactly what the plain recipes compute ---------------------------------

_VOLATILE_PIECES = [
    "550e8400-e29b-41d4-a716-446655440000", "abcdefab-abcd-abcd-abcd-abcdefabcdef",
    "2024-05-20T11:03:22.123Z", "2024-05-20 11:03:22+02:00", "11:03:22", "1:03:22.5", "0x7f3a2b1c",
    "3f2a9c1e77ab", "deadbeef", "1716203002", "1716203002123.5", "0.53s", "120 ms", "3 seconds",
    "250 µs", "5min", "pid=4242", "PID: 99", "port 8080", "tid=1", "req_8f7a6b5c", "trace-8f7a6b5c9d",
    "id=8f7a6b5c9d0e", "٣٤٥٦٧٨٩٠١٢", "İ", "K", "Σ", "\u00a0", "\u2028", "\x1c", " ", "  ", "\n", "_",
    "-", ":", "=", ".", "x", "R00042", "getUserDetails", "The",
]  # fmt: skip
volatile_text = st.lists(
    st.sampled_from(_VOLATILE_PIECES) | st.text(max_size=6) | st.from_regex(r"[0-9a-fA-F:\- .T_]{0,14}"),
    max_size=12,
).map("".join)


def _mask_reference(text: str) -> str:
    """mask_volatile as documented: every pass in order, then whitespace collapsed."""
    for pattern, repl, _, _ in text_module._VOLATILE_PATTERNS:
        text = pattern.sub(repl, text)
    return re.sub(r"\s+", " ", text).strip()


@settings(max_examples=600, deadline=None)
@given(volatile_text)
def test_mask_volatile_skips_only_passes_that_cannot_match(text: str) -> None:
    assert mask_volatile(text) == _mask_reference(text)
    assert collapse_ws(text) == re.sub(r"\s+", " ", text).strip()


def test_volatile_pass_prechecks_are_pinned() -> None:
    # (shortest match, substring every match contains): a skipped pass must be one that cannot match.
    assert [(n, needs) for _, _, n, needs in text_module._VOLATILE_PATTERNS] == [
        (36, "-"), (16, ":"), (7, ":"), (6, "0x"), (8, ""), (10, ""), (2, ""), (4, ""),
    ]  # fmt: skip
    samples = ["550e8400-e29b-41d4-a716-446655440000", "2024-05-20T11:03", "1:03:22", "0x1234",
               "a1b2c3d4", "1716203002", "1s", "pid1"]  # fmt: skip
    for (pattern, _, n, needs), sample in zip(text_module._VOLATILE_PATTERNS, samples, strict=True):
        assert pattern.fullmatch(sample)
        assert len(sample) == n
        assert needs in sample


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("request req_8f7a6b5c failed", "request req_<hex> failed"),
        ("span trace-8f7a6b5c9d ok", "span trace-<hex> ok"),
        ("id=8f7a6b5c9d0e", "id=<hex>"),
        ("req_550e8400-e29b-41d4-a716-446655440000", "req_<uuid>"),
        ("cache_3f2a9c1e77ab_v1", "cache_<hex>_v1"),
    ],
)
def test_prefixed_ids_are_masked(raw: str, masked: str) -> None:
    assert mask_volatile(raw) == masked


def test_prefixed_ids_keep_words_and_short_or_digit_only_bodies() -> None:
    assert mask_volatile("get_deadbeef") == "get_deadbeef"  # no digit: a word
    assert mask_volatile("model_20240806") == "model_20240806"  # no letter: a number, not an id
    assert mask_volatile("req_8f7a6b5") == "req_8f7a6b5"  # 7 hex chars: too short for an id
    assert mask_volatile("x8f7a6b5c9") == "x8f7a6b5c9"  # glued to a letter: part of a word


def _tokens_reference(text: str) -> frozenset[str]:
    words = (m.lower() for m in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", text))
    return frozenset(w for w in words if len(w) > 2 and w not in STOP_WORDS)


def _keywords_reference(text: str) -> frozenset[str]:
    out = set()
    for ident in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", text):
        for part in re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", ident).split("_"):
            word = part.lower()
            if len(word) > 2 and word not in STOP_WORDS:
                out.add(stem(word))
    return frozenset(out)


@settings(max_examples=400, deadline=None)
@given(volatile_text | st.text(max_size=60))
def test_word_features_match_their_recipes(text: str) -> None:
    assert tokens(text) == _tokens_reference(text) == tokens_of_identifiers(identifiers(text))
    assert keywords(text) == _keywords_reference(text)
    memo = KeywordMemo(size=4)
    assert memo(text) == keywords(text) == memo(text) == memo.of_identifiers(identifiers(text))
    s = re.sub(r"\s+", " ", text.lower()).strip()
    assert trigrams(text) == frozenset(s[i : i + 3] for i in range(len(s) - 2))


def test_stem_is_pinned() -> None:
    words = ("flights", "booking", "queries", "denied", "users", "bus", "a_b", "ations")
    assert [stem(w) for w in words] == ["flight", "book", "query", "deny", "user", "bus", "a_b", "ation"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_canonical_args_is_the_compact_sorted_json_of_the_canonical_value(args: dict[str, object]) -> None:
    expected = json.dumps(
        text_module._canonical(args), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert canonical_args(args) == (expected if args else "{}")


def test_text_memo_is_bounded_first_in_first_out() -> None:
    calls: list[str] = []

    def feature(text: str) -> int:
        calls.append(text)
        return len(text)

    memo = TextMemo(feature, size=2, max_len=5)
    assert [memo("a"), memo("bb"), memo("a")] == [1, 2, 1]
    assert calls == ["a", "bb"]
    assert len(memo) == 2
    memo("ccc")  # evicts "a", the oldest
    assert len(memo) == 2
    memo("a")
    assert calls == ["a", "bb", "ccc", "a"]
    memo("toolong")  # longer than max_len: computed, never stored
    memo("toolong")
    assert calls[-2:] == ["toolong", "toolong"]
    assert len(memo) == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError):
            TextMemo(feature, size=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            TextMemo(feature, max_len=bad)  # type: ignore[arg-type]


def test_keyword_memo_stays_bounded() -> None:
    memo = KeywordMemo(size=16)
    for i in range(500):
        memo(f"word{i} other_{i}_thing reservation")
    assert len(memo) <= 16
