"""Text utilities shared by the detectors: tokens, trigrams, similarity, normalisation.

Everything here is a pure function of its input. Two families live here:

* **Similarity** (goal relevance, near-duplicate steps): :func:`tokens` (the reference recipe:
  identifiers matched by ``[a-zA-Z_][a-zA-Z0-9_]*``, lower-cased, English stop words removed, longer
  than 2 characters), :func:`trigrams`, :func:`jaccard`, and the :class:`Embedder` protocol with its
  lexical default :class:`LexicalEmbedder` (``0.7 * token Jaccard + 0.3 * trigram Jaccard``).
* **Normalisation** for loop detection: :func:`mask_volatile` replaces details that change between
  otherwise identical calls (UUIDs, long hex ids, timestamps, durations, addresses) with
  placeholders, and :func:`canonical_args` turns tool arguments into one canonical string (sorted
  keys, collapsed whitespace, volatile keys and values masked). Two calls that differ only in such
  details get the same key; two calls on different business objects (``reservation_id="ABC123"``
  vs ``"XYZ789"``) keep different keys, because checking five reservations is work, not a loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Generic, TypeVar

from ..errors import ConfigurationError
from ._protocols import Embedder

__all__ = [
    "REASONING_ARG_KEYS",
    "STOP_WORDS",
    "VOLATILE_ARG_KEYS",
    "DenseEmbedder",
    "Embedder",
    "KeywordMemo",
    "LexicalEmbedder",
    "LexicalVector",
    "TextMemo",
    "canonical_args",
    "collapse_ws",
    "collapsed_trigrams",
    "identifiers",
    "jaccard",
    "joined_trigrams",
    "keywords",
    "mask_volatile",
    "stable_hash",
    "stem",
    "tokens",
    "tokens_of_identifiers",
    "trigrams",
]

#: English stop words removed before lexical comparison (the reference uses "100+").
STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have haven't
    having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll
    i'm i've if in into is isn't it it's its itself just let's me more most mustn't my myself no
    nor not now of off on once only or other ought our ours ourselves out over own same shan't she
    she'd she'll she's should shouldn't so some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those through to
    too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's which while who who's whom why why's will with won't would wouldn't you
    you'd you'll you're you've your yours yourself yourselves get got let may might must shall
    use used using via yet
    """.split()
)

_TOKEN_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def identifiers(text: str) -> list[str]:
    """The identifiers of ``text`` in order (``[a-zA-Z_][a-zA-Z0-9_]*``): what :func:`tokens`,
    :func:`keywords` and ``goal_dna.entities`` are built from. Find them once per text and pass them
    to the ``*_of_identifiers`` variants when a text needs several of these features."""
    return _TOKEN_RE.findall(text)


def tokens(text: str) -> frozenset[str]:
    """Return the content words of ``text``: identifiers, lower-cased, stop words and words of
    two characters or fewer removed."""
    return tokens_of_identifiers(_TOKEN_RE.findall(text))


def tokens_of_identifiers(idents: list[str] | tuple[str, ...]) -> frozenset[str]:
    """:func:`tokens` of a text given its :func:`identifiers`."""
    if not idents:
        return frozenset()
    # Identifiers are ASCII and contain no whitespace, so one lower() over the joined list gives the
    # same words as one lower() per identifier, at a fraction of the calls. (Lower-casing the text
    # *before* matching would not: U+212A KELVIN SIGN lower-cases to an ASCII "k".)
    return frozenset([t for t in " ".join(idents).lower().split() if len(t) > 2 and t not in STOP_WORDS])


_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ied", "ers", "er", "es", "ed", "s")


def stem(word: str) -> str:
    """A deliberately light suffix stripper: ``flights -> flight``, ``booking -> book``.

    Good enough to match a step's keywords against the goal's; not a linguistic stemmer.
    Words of 4 characters or fewer are left alone, and a stem keeps at least 3 characters.
    """
    # One C-level endswith() rejects most words before the per-suffix loop (a hot path: every
    # keyword of every step is stemmed).
    if len(word) <= 4 or not word.endswith(_SUFFIXES):
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            return base + "y" if suffix in ("ies", "ied") else base
    return word


def keywords(text: str) -> frozenset[str]:
    """Content keywords of ``text`` for goal alignment: like :func:`tokens`, but identifiers are
    split into their parts (``get_user_details`` and ``getUserDetails`` give ``user``, ``detail``)
    and every word is lightly stemmed (:func:`stem`), so a tool call can match the goal's prose."""
    out: set[str] = set()
    for ident in _TOKEN_RE.findall(text):
        out.update(_ident_keywords(ident))
    return frozenset(out)


def _ident_keywords(ident: str) -> tuple[str, ...]:
    """The keywords of one identifier (see :func:`keywords`)."""
    # A camelCase boundary is an upper-case letter after the first character: without one (ids
    # such as "R00042", all-lower words), skip the regex.
    if ident.islower():
        parts = ident.split("_")
    elif (tail := ident[1:]) == tail.lower():
        parts = ident.lower().split("_")
    else:
        parts = _CAMEL_RE.sub("_", ident).lower().split("_")
    return tuple([stem(word) for word in parts if len(word) > 2 and word not in STOP_WORDS])


def trigrams(text: str) -> frozenset[str]:
    """Return every 3-character substring of ``text`` lower-cased with whitespace collapsed."""
    s = collapse_ws(text.lower())
    # zip over three shifted views builds the substrings in C; about 25% faster than slicing.
    return frozenset(map("".join, zip(s, s[1:], s[2:], strict=False)))


def collapsed_trigrams(text: str) -> tuple[str, frozenset[str]]:
    """``(collapsed, trigrams(text))`` where ``collapsed`` is ``text`` lower-cased with whitespace
    collapsed (the string the trigrams are taken from): the memoised half of :func:`joined_trigrams`."""
    s = collapse_ws(text.lower())
    return s, frozenset(map("".join, zip(s, s[1:], s[2:], strict=False)))


def joined_trigrams(
    head: str, rest: str, head_trigrams: Callable[[str], tuple[str, frozenset[str]]] = collapsed_trigrams
) -> frozenset[str]:
    """``trigrams(head + " " + rest)``, taking the head's part from ``head_trigrams`` (a memo of
    :func:`collapsed_trigrams`).

    A step's text is its tool and description (which repeat from step to step) followed by its
    argument values (which change): with the head memoised, only the trigrams that touch the rest are
    built. Every trigram of the joined text lies within the head or starts at most two characters
    before its end. Lower-casing the parts one by one equals lower-casing the whole, because the only
    context-dependent mapping (final sigma) looks through neither a space nor the ends of a part.
    """
    hc, head_set = head_trigrams(head)
    rc = collapse_ws(rest.lower())
    if not hc:
        return frozenset(map("".join, zip(rc, rc[1:], rc[2:], strict=False)))
    if not rc:
        return head_set
    s = hc[-2:] + " " + rc
    return head_set.union(map("".join, zip(s, s[1:], s[2:], strict=False)))


def jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    """Jaccard index ``|a & b| / |a | b|``; two empty sets give 0.0 (no evidence of similarity)."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def collapse_ws(text: str) -> str:
    """Strip ``text`` and collapse every run of whitespace to one space."""
    # str.split() splits on exactly the characters regex \s matches (both use Py_UNICODE_ISSPACE),
    # so this equals re.sub(r"\s+", " ", text).strip(), about four times faster.
    return " ".join(text.split())


def stable_hash(text: str, length: int = 16) -> str:
    """A process-independent hex digest of ``text`` (BLAKE2b; ``hash()`` is salted per process)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()[:length]


# ---------------------------------------------------------------------------------------------
# Volatile-detail masking
# ---------------------------------------------------------------------------------------------

# Ids are often glued to a prefix with "_" ("req_8f7a6b5c", "trace_id_<uuid>"), and "\b" does not
# separate "_" from a hex digit (both are word characters). Where an id may start or end, any
# character but a letter or a digit may stand next to it.
_ID_START = r"(?<![^\W_])"
_ID_END = r"(?![^\W_])"

# Order matters: the most specific patterns run first so that, for example, the digits inside an
# ISO timestamp are not first eaten by the generic long-number rule.
#
# Each pattern comes with the shortest text it can match and a substring every match contains
# ("" if none): masking runs on every step's output and arguments, and skipping a pass that cannot
# match (checked on the text as the earlier passes left it) saves most of the regex scans.
# Placeholders contain no digit, "-", ":" or "0x", so a skipped pass could never have matched later.
_VOLATILE_PATTERNS: tuple[tuple[re.Pattern[str], str, int, str], ...] = (
    # UUIDs (any version), with or without braces, also after a prefix such as "req_" (see _ID_START).
    (
        re.compile(
            rf"{_ID_START}[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}{_ID_END}"
        ),
        "<uuid>",
        36,
        "-",
    ),
    # ISO-8601 / RFC 3339 date-times, e.g. 2024-05-20T11:03:22.123Z or 2024-05-20 11:03:22+02:00.
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b"),
        "<ts>",
        16,
        ":",
    ),
    # Clock times such as 11:03:22 or 11:03:22.123.
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>", 7, ":"),
    # Memory addresses and hex literals.
    (re.compile(r"\b0x[0-9a-fA-F]{4,}\b"), "<addr>", 6, "0x"),
    # Long hex ids (git shas, request ids, hashes): 8+ hex chars containing a digit and a letter,
    # also inside a snake_case identifier ("req_8f7a6b5c").
    (
        re.compile(rf"{_ID_START}(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{{8,}}{_ID_END}"),
        "<hex>",
        8,
        "",
    ),
    # Epoch timestamps in seconds or milliseconds (10 or 13 digits), possibly fractional.
    (re.compile(r"\b\d{10}(?:\d{3})?(?:\.\d+)?\b"), "<epoch>", 10, ""),
    # Durations: 12ms, 0.53s, 1.2 sec, 3.4 seconds, 250 µs.
    (
        re.compile(r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|min|mins|minutes?)\b"),
        "<dur>",
        2,
        "",
    ),
    # Process ids and ports as they appear in tool output: "pid 1234", "pid=1234", "PID: 1234".
    (re.compile(r"\b(pid|port|thread|tid)\s*[:=]?\s*\d+\b", re.IGNORECASE), r"\1 <n>", 4, ""),
)
_UUID_RE = _VOLATILE_PATTERNS[0][0]
#: Every pattern but the UUID one needs a (Unicode) digit: \d, [0-9] or the "0" of "0x".
_DIGIT_RE = re.compile(r"\d")

#: Argument keys whose values are volatile by nature and never distinguish two calls.
VOLATILE_ARG_KEYS: frozenset[str] = frozenset(
    {
        "request_id",
        "requestid",
        "trace_id",
        "traceid",
        "span_id",
        "spanid",
        "nonce",
        "timestamp",
        "ts",
        "time",
        "idempotency_key",
        "idempotencykey",
        "correlation_id",
        "correlationid",
        "call_id",
        "callid",
        "tool_call_id",
        "message_id",
        "messageid",
        "seed",
        "thought",
        "thoughts",
        "reasoning",
        "rationale",
    }
)
#: Volatile keys that carry the agent's reasoning. They never distinguish two calls of a tool with
#: other arguments, but a tool whose *only* arguments they are (tau-bench's ``think``) is keyed on
#: their text (see :attr:`~goalkeeper.core.steps.Step.action_key`).
REASONING_ARG_KEYS: frozenset[str] = frozenset({"thought", "thoughts", "reasoning", "rationale"})


def mask_volatile(text: str) -> str:
    """Replace volatile details in ``text`` with placeholders and collapse whitespace.

    >>> mask_volatile("job 3f2a9c1e77 done at 2024-05-20T11:03:22Z in 0.53s")
    'job <hex> done at <ts> in <dur>'
    """
    if _DIGIT_RE.search(text) is None:
        # Digit-free text (most prose) can only hold a UUID made of the letters a-f.
        if len(text) >= 36 and "-" in text:
            text = _UUID_RE.sub("<uuid>", text)
        return collapse_ws(text)
    for pattern, repl, min_len, needs in _VOLATILE_PATTERNS:
        # search() first: most passes find nothing, and a search costs half a sub() that finds
        # nothing (sub() with a group reference in the replacement also re-parses it every call).
        if len(text) >= min_len and needs in text and pattern.search(text) is not None:
            text = pattern.sub(repl, text)
    return collapse_ws(text)


def _key_text(item: tuple[Any, Any]) -> str:
    return str(item[0])


def _canonical(value: Any) -> Any:
    """Canonicalise a JSON-like value: masked strings, sorted keys, volatile keys dropped."""
    if type(value) is str:  # the common case first: the Mapping check below is an ABC check
        return mask_volatile(value)
    if isinstance(value, Mapping):
        return {
            str(k): _canonical(v)
            for k, v in sorted(value.items(), key=_key_text)
            if str(k).lower() not in VOLATILE_ARG_KEYS
        }
    if isinstance(value, str):
        return mask_volatile(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    return mask_volatile(repr(value))


# Built once: json.dumps() with non-default options constructs a new encoder on every call, which
# cost more than the encoding itself. The encoder holds only these options, no state.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_args(args: Mapping[str, Any] | None) -> str:
    """One canonical string for tool arguments.

    Key order, whitespace inside string values, volatile keys (:data:`VOLATILE_ARG_KEYS`) and
    volatile values (:func:`mask_volatile`) do not change the result.
    """
    if not args:
        return "{}"
    return _CANONICAL_JSON.encode(_canonical(args))


# ---------------------------------------------------------------------------------------------
# Memo
# ---------------------------------------------------------------------------------------------

R = TypeVar("R")
_MISSING: Any = object()


class TextMemo(Generic[R]):
    """A bounded memo of one pure text feature (``str -> value``), owned by one instance.

    Agents call the same tools with the same descriptions and many of the same arguments again and
    again; a memo per detector turns their repeated feature extraction into a dict lookup. It is
    never module-level state: each owner has its own, it is not part of any snapshot (the values are
    pure functions of the keys, so a restored owner recomputes them to the same results).

    Args:
        fn: the feature function; must be pure.
        size: entries kept; past that the oldest entry is dropped (first in, first out).
        max_len: texts longer than this are computed but not stored (long outputs rarely repeat
            exactly, and storing them would make the memo's memory unbounded in practice).

    Raises:
        ConfigurationError: ``size`` or ``max_len`` is not a positive integer.
    """

    __slots__ = ("_data", "_fn", "_max_len", "_order", "_size")

    def __init__(self, fn: Callable[[str], R], size: int = 256, max_len: int = 128) -> None:
        for name, value in (("size", size), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"TextMemo {name} must be an integer >= 1, got {value!r}")
        self._fn = fn
        self._size = size
        self._max_len = max_len
        self._data: dict[str, R] = {}
        # Insertion order kept apart: finding a dict's first key after many deletions from its
        # front scans the deleted slots, which made eviction cost more than the feature.
        self._order: deque[str] = deque()

    def __call__(self, text: str) -> R:
        """Return ``fn(text)``, from the memo when ``text`` was seen recently."""
        data = self._data
        value = data.get(text, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        value = self._fn(text)
        if len(text) <= self._max_len:
            if len(data) >= self._size:
                del data[self._order.popleft()]
            data[text] = value
            self._order.append(text)
        return value

    def __len__(self) -> int:
        return len(self._data)


class KeywordMemo:
    """:func:`keywords` with a bounded memo per identifier, owned by one instance.

    The words of an agent's steps and results repeat far more than whole texts do ("record",
    "updated", the tool's name, the booking's city), and splitting and stemming an identifier costs
    more than looking it up. ``KeywordMemo()(text) == keywords(text)`` for every text.

    Args:
        size: identifiers remembered (first in, first out); identifiers longer than 64 characters
            are not stored. The default keeps a tracker's memo under about 100 KB.
    """

    __slots__ = ("_memo", "_names")

    def __init__(self, size: int = 512) -> None:
        self._memo = TextMemo(_ident_keywords, size, 64)
        # Whole names (a step's tool), which repeat on nearly every step: one lookup instead of a
        # regex scan and a lookup per identifier.
        self._names: TextMemo[frozenset[str]] = TextMemo(self, 64, 64)

    def __len__(self) -> int:
        return len(self._memo)

    def __call__(self, text: str) -> frozenset[str]:
        """Return ``keywords(text)``."""
        return self.of_identifiers(_TOKEN_RE.findall(text))

    def of_name(self, name: str) -> frozenset[str]:
        """Return ``keywords(name)`` for a short text that repeats, like a tool's name (memoised
        whole; longer texts are computed but not stored)."""
        return self._names(name)

    def of_identifiers(self, idents: list[str] | tuple[str, ...]) -> frozenset[str]:
        """Return the keywords of a text given its :func:`identifiers`."""
        memo = self._memo
        get = memo._data.get  # looked up inline: a call per identifier cost as much as the lookup
        pairs = zip(idents, map(get, idents), strict=True)
        found = [memo(ident) if words is None else words for ident, words in pairs]
        return frozenset(chain.from_iterable(found))


# ---------------------------------------------------------------------------------------------
# Embedders
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LexicalVector:
    """The lexical representation of a text: its content tokens and character trigrams."""

    tokens: frozenset[str]
    trigrams: frozenset[str]


@dataclass(frozen=True, slots=True)
class LexicalEmbedder:
    """Lexical similarity: ``token_weight * Jaccard(tokens) + (1 - token_weight) * Jaccard(trigrams)``.

    The 0.7/0.3 split is the reference GoalDNA fingerprint. Texts with no tokens and no trigrams carry
    no signal and score ``empty_score`` (0.5, as in the reference: neither similar nor dissimilar).
    """

    token_weight: float = 0.7
    empty_score: float = 0.5

    def embed(self, text: str) -> LexicalVector:
        """Return the tokens and trigrams of ``text``."""
        return LexicalVector(tokens(text), trigrams(text))

    def similarity(self, a: LexicalVector, b: LexicalVector) -> float:
        """Weighted token/trigram Jaccard of two lexical vectors, in [0, 1]."""
        if not (a.tokens or a.trigrams) or not (b.tokens or b.trigrams):
            return self.empty_score
        tw = self.token_weight
        return tw * jaccard(a.tokens, b.tokens) + (1.0 - tw) * jaccard(a.trigrams, b.trigrams)


class DenseEmbedder:
    """Adapts any ``text -> vector`` function (a sentence-embedding model) to :class:`Embedder`.

    Similarity is the cosine of the two vectors clipped at 0, so unrelated texts score 0 and the same
    direction scores 1. Zero vectors score 0.

    >>> emb = DenseEmbedder(lambda text: [1.0, float(len(text))])
    >>> round(emb.similarity(emb.embed("ab"), emb.embed("ab")), 6)
    1.0
    """

    def __init__(self, fn: Any) -> None:
        if not callable(fn):
            raise ConfigurationError("DenseEmbedder needs a callable text -> sequence of floats")
        self._fn = fn

    def embed(self, text: str) -> tuple[float, ...]:
        """Return the vector the wrapped function gives for ``text``."""
        return tuple(float(x) for x in self._fn(text))

    def similarity(self, a: Sequence[float], b: Sequence[float]) -> float:
        """Cosine similarity clipped to [0, 1]."""
        dot = sum(x * y for x, y in zip(a, b, strict=False))
        na = math.sqrt(sum(x * x for x in a))
        nb = math.sqrt(sum(y * y for y in b))
        if na == 0.0 or nb == 0.0:
            return 0.0
        return max(0.0, min(1.0, dot / (na * nb)))


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; 0.0 for no values."""
    total = 0.0
    n = 0
    for v in values:
        total += v
        n += 1
    return total / n if n else 0.0
