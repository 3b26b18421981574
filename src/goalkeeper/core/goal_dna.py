"""GoalDNA: a lexical fingerprint of a goal that flags steps whose text strays from it.

This is the reference's standalone ``GoalDNA`` (section 2.9): ``similarity(text) = 0.7 * token
Jaccard + 0.3 * trigram Jaccard`` against the goal (0.5 when either side has no signal), a
:class:`DriftEvent` whenever a step scores below ``drift_threshold``, severity bands at
``0.7t / 0.4t / 0.2t`` and a least-squares trend of the recent similarities.

Raw Jaccard between a long goal and a short step is small for *every* step, on-topic or not, so a
second measure is available: ``measure="overlap"`` uses the overlap coefficient
``|A & B| / min(|A|, |B|)`` instead, which is high when the step is about the goal however short it is.
:class:`~goalkeeper.core.drift.DriftEngine` uses that one. A user :class:`~.text.Embedder` replaces both.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from ..errors import ConfigurationError, SnapshotError
from ._checks import check_count, check_now, check_str, clip01, config_int, config_number, snapshot_number
from ._snapshot import check_header, field, header
from .text import STOP_WORDS, Embedder, LexicalEmbedder, LexicalVector, tokens, trigrams

__all__ = [
    "DriftEvent",
    "DriftSeverity",
    "DriftTrend",
    "GoalDNA",
    "SimilarityMeasure",
    "TrendDirection",
    "entities",
    "entities_of_identifiers",
    "overlap",
    "regression_slope",
    "vocabulary",
]

#: Token / trigram split of the lexical similarity (reference 0.7 / 0.3).
TOKEN_WEIGHT = 0.7
#: Similarity when a text has no tokens and no trigrams: neither similar nor dissimilar.
NO_SIGNAL = 0.5
#: DriftEvent.action_text is cut to this many characters.
EVENT_TEXT_CHARS = 200
#: Trend slope beyond which the trend is improving / worsening.
TREND_SLOPE = 0.02
#: Severity bands as fractions of the drift threshold, best first.
SEVERITY_FACTORS = (0.7, 0.4, 0.2)
#: A word this long (or longer) is an entity even when lower-case and without ``_`` or a digit.
ENTITY_MIN_LEN = 8

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SimilarityMeasure(StrEnum):
    """How :class:`GoalDNA` compares a text with its goal.

    ``JACCARD`` is the reference (``0.7 * token Jaccard + 0.3 * trigram Jaccard``); ``OVERLAP`` uses
    the overlap coefficient instead of Jaccard, so a short step that is entirely about the goal scores
    high.
    """

    JACCARD = "jaccard"
    OVERLAP = "overlap"


class DriftSeverity(StrEnum):
    """How bad drift is.

    DriftEngine bands on its score: NONE < 0.1 <= LOW < 0.3 <= MODERATE < 0.5 <= HIGH < 0.7 <= CRITICAL
    < 0.85 <= EMERGENCY. GoalDNA uses NONE..CRITICAL on similarity bands relative to its threshold.
    """

    NONE = "none"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    CRITICAL = "critical"
    EMERGENCY = "emergency"


class TrendDirection(StrEnum):
    """Direction of a trend of similarities."""

    IMPROVING = "improving"
    STABLE = "stable"
    WORSENING = "worsening"


def overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap coefficient ``|a & b| / min(|a|, |b|)``; 0.0 when either set is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def regression_slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against 0, 1, 2, ...; 0.0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mx = (n - 1) / 2.0
    my = sum(values) / n
    sxy = sum((i - mx) * (v - my) for i, v in enumerate(values))
    sxx = sum((i - mx) ** 2 for i in range(n))
    return sxy / sxx


def entities(text: str) -> frozenset[str]:
    """Entity-like words of ``text``, lower-cased.

    Identifiers containing ``_`` or a digit, capitalised words that do not start a sentence, and words
    of :data:`ENTITY_MIN_LEN` or more letters. Stop words and words of two characters or fewer never
    count, so every entity is also one of :func:`~goalkeeper.core.text.tokens`.
    """
    return entities_of_identifiers(text, _WORD_RE.findall(text))


def entities_of_identifiers(text: str, words: Sequence[str]) -> frozenset[str]:
    """:func:`entities` of ``text`` given its identifiers (:func:`~goalkeeper.core.text.identifiers`)."""
    # A word is ASCII letters, digits and "_" only, so "not all letters" means "has a "_" or a digit".
    found = {w.lower() for w in words if len(w) > 2 and (len(w) >= ENTITY_MIN_LEN or not w.isalpha())}
    found -= STOP_WORDS
    # Short capitalised words count unless they open a sentence ("The", "Calculate" are capitalised
    # by grammar, not because they name something); only they need their position in the text.
    capitalised = {w for w in words if 2 < len(w) < ENTITY_MIN_LEN and w[0].isupper() and w.isalpha()}
    if capitalised:
        add_capitalised_entities(text, capitalised, found)
    return frozenset(found)


def add_capitalised_entities(text: str, capitalised: Iterable[str], found: set[str]) -> None:
    """Add to ``found`` (lower-cased) the short capitalised words of ``text`` that count as entities:
    those that are no stop word and appear somewhere in ``text`` not opening a sentence."""
    for w in capitalised:
        low = w.lower()
        if low in STOP_WORDS or low in found:
            continue
        # Visit this word's occurrences (usually one) rather than every word of the text.
        at = text.find(w)
        while at >= 0:
            if _is_word_at(text, at, len(w)) and not _starts_sentence(text, at):
                found.add(low)
                break
            at = text.find(w, at + 1)


_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _is_word_at(text: str, start: int, length: int) -> bool:
    """True when ``text[start:start + length]`` is a whole word as :data:`_WORD_RE` splits the text.

    A word ends where word characters end; it starts at a letter or "_" that is not inside an
    earlier word, i.e. that follows a non-word character, the start, or digits that themselves follow
    one (``_WORD_RE`` cannot start a word with a digit, so "9Ab" holds the word "Ab").
    """
    end = start + length
    if end < len(text) and text[end] in _WORD_CHARS:
        return False
    i = start - 1
    while i >= 0 and "0" <= text[i] <= "9":
        i -= 1
    return i < 0 or text[i] not in _WORD_CHARS


def _starts_sentence(text: str, i: int) -> bool:
    """True when the word at ``text[i]`` opens the text, a line or a sentence."""
    j = i - 1
    while j >= 0 and text[j] in " \t\r\"'(":
        j -= 1
    return j < 0 or text[j] in ".!?:\n"


def vocabulary(text: str) -> frozenset[str]:
    """:func:`~goalkeeper.core.text.tokens` of ``text`` plus the parts of its ``snake_case``
    identifiers (``reservation_id`` also yields ``reservation``): the words a result talks about."""
    words = tokens(text)
    parts = {p for w in words if "_" in w for p in w.split("_") if len(p) > 2 and p not in STOP_WORDS}
    return words | parts


def config_goal(goal: object, plan: object) -> tuple[str, tuple[str, ...]]:
    """Validate a goal text and an optional plan (sequence of step texts); raise ConfigurationError."""
    if not isinstance(goal, str) or not goal.strip():
        raise ConfigurationError("goal must be a non-empty string")
    if plan is None:
        return goal, ()
    if isinstance(plan, str) or not isinstance(plan, Sequence) or not all(isinstance(p, str) for p in plan):
        raise ConfigurationError("plan must be a sequence of strings")
    return goal, tuple(plan)


def config_embedder(embedder: object) -> Embedder[Any] | None:
    """Validate an optional embedder (anything with ``embed`` and ``similarity``)."""
    if embedder is not None and not isinstance(embedder, Embedder):
        raise ConfigurationError("embedder must implement embed(text) and similarity(a, b)")
    return embedder


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One GoalDNA check whose similarity fell below the drift threshold.

    Attributes:
        step_number: the step checked.
        similarity: its similarity to the goal, in [0, 1].
        action_text: the step text, cut to 200 characters.
        severity: band of ``similarity`` relative to the threshold (NONE..CRITICAL).
        timestamp: ``now`` of the check (the last known time when none was given).
    """

    step_number: int
    similarity: float
    action_text: str
    severity: DriftSeverity
    timestamp: float


@dataclass(frozen=True, slots=True)
class DriftTrend:
    """Summary of the last similarities checked by a :class:`GoalDNA`.

    ``trend_slope`` is the least-squares slope of similarity per check; beyond +-0.02 the direction is
    improving / worsening. With no checks every number is 0.0 and the direction is stable.
    """

    direction: TrendDirection
    average_similarity: float
    min_similarity: float
    max_similarity: float
    consecutive_drifts: int
    total_drift_events: int
    trend_slope: float


class GoalDNA:
    """A lexical fingerprint of a goal that flags steps whose text strays from it.

    Args:
        goal: the goal text (non-empty).
        drift_threshold: similarity below which a check is a drift event, in (0, 1].
        consecutive_limit: ``is_drifting()`` once this many drift events happened in a row (>= 1).
        history_size: similarities kept for the trend, and drift events kept (>= 1).
        embedder: optional :class:`~goalkeeper.core.text.Embedder`; when given, similarity comes from it.
        measure: ``"jaccard"`` (reference) or ``"overlap"`` for the lexical similarity.
        plan: optional plan step texts; their words count as part of the goal.

    Raises:
        ConfigurationError: an argument is out of range or of the wrong type.
    """

    KIND = "GoalDNA"
    SCHEMA = 1

    def __init__(
        self,
        goal: str,
        drift_threshold: float = 0.15,
        consecutive_limit: int = 3,
        history_size: int = 200,
        *,
        embedder: Embedder[Any] | None = None,
        measure: SimilarityMeasure | str = SimilarityMeasure.JACCARD,
        plan: Sequence[str] | None = None,
    ) -> None:
        self._goal, self._plan = config_goal(goal, plan)
        self._threshold = config_number("drift_threshold", drift_threshold, 0.0, 1.0, open_low=True)
        self._limit = config_int("consecutive_limit", consecutive_limit, 1)
        self._history_size = config_int("history_size", history_size, 1)
        try:
            self._measure = SimilarityMeasure(measure)
        except ValueError:
            raise ConfigurationError(f"measure must be 'jaccard' or 'overlap', got {measure!r}") from None
        self._embedder = config_embedder(embedder)
        texts = (self._goal, *self._plan)
        self._vec = LexicalVector(
            frozenset().union(*(tokens(t) for t in texts)), frozenset().union(*(trigrams(t) for t in texts))
        )
        self._anchors = [self._embedder.embed(t) for t in texts] if self._embedder is not None else []
        self._history: deque[float] = deque(maxlen=self._history_size)
        self._events: deque[_FlatEvent] = deque(maxlen=self._history_size)
        self._consecutive = 0
        self._total_checks = 0
        self._total_events = 0
        self._last_ts = 0.0

    # -- properties ---------------------------------------------------------------------------

    @property
    def goal_text(self) -> str:
        """The goal text."""
        return self._goal

    @property
    def plan(self) -> tuple[str, ...]:
        """The plan step texts that count as part of the goal."""
        return self._plan

    @property
    def tokens(self) -> frozenset[str]:
        """Content tokens of the goal (and plan)."""
        return self._vec.tokens

    @property
    def trigrams(self) -> frozenset[str]:
        """Character trigrams of the goal (and plan)."""
        return self._vec.trigrams

    @property
    def drift_threshold(self) -> float:
        """Similarity below which a check is a drift event."""
        return self._threshold

    @property
    def measure(self) -> SimilarityMeasure:
        """The lexical similarity measure in use."""
        return self._measure

    @property
    def consecutive_drift_count(self) -> int:
        """Drift events in a row up to the latest check."""
        return self._consecutive

    @property
    def total_checks(self) -> int:
        """Checks made since construction."""
        return self._total_checks

    # -- similarity ---------------------------------------------------------------------------

    def similarity(self, text: str) -> float:
        """Similarity of ``text`` to the goal, in [0, 1].

        Lexical: ``0.7 * J(tokens) + 0.3 * J(trigrams)`` where ``J`` is Jaccard (or the overlap
        coefficient with ``measure="overlap"``); 0.5 when either side has neither tokens nor trigrams.
        With an embedder: the best embedder similarity to the goal or a plan step; a non-finite value
        counts as "no signal" (0.5) and values outside [0, 1] are clipped.

        Raises:
            InvalidInputError: ``text`` is not a string.
        """
        return self._similarity(check_str("text", text))

    def _similarity(
        self,
        text: str,
        context: Mapping[str, int] | None = None,
        neutral: frozenset[str] = frozenset(),
        vector: LexicalVector | None = None,
    ) -> float:
        """Similarity of ``text``.

        ``context`` adds words (never goal words) to the goal's token set; words in ``neutral`` (the
        tool's name) count for the step when the goal or context has them and are ignored otherwise.
        ``vector``, when given, is ``text``'s tokens and trigrams already computed by the caller.
        """
        if self._embedder is not None:
            vec = self._embedder.embed(text)
            best = max(self._embedder.similarity(a, vec) for a in self._anchors)
            return clip01(best) if math.isfinite(best) else NO_SIGNAL
        step = vector if vector is not None else LexicalVector(tokens(text), trigrams(text))
        if self._measure is SimilarityMeasure.JACCARD:
            return LexicalEmbedder(TOKEN_WEIGHT, NO_SIGNAL).similarity(self._vec, step)
        if not (step.tokens or step.trigrams):
            return NO_SIGNAL
        ref, ctx = self._vec.tokens, context or {}
        counted = matched = 0  # the step's words that count, and those the goal or context has
        for t in step.tokens:
            known = t in ref or t in ctx
            if known or t not in neutral:
                counted += 1
                matched += known
        # The context never repeats a goal word, so the reference set has len(ref) + len(ctx) members.
        size = min(counted, len(ref) + len(ctx))
        tok = matched / size if size else (0.0 if counted else NO_SIGNAL)
        return TOKEN_WEIGHT * tok + (1.0 - TOKEN_WEIGHT) * overlap(step.trigrams, self._vec.trigrams)

    # -- checks -------------------------------------------------------------------------------

    def check_drift(
        self, step_number: int, action_text: str, *, now: float | None = None
    ) -> DriftEvent | None:
        """Score a step against the goal and record the check.

        Returns:
            A :class:`DriftEvent` when the similarity is below ``drift_threshold`` (the consecutive
            counter then grows), else ``None`` (the counter resets to 0).

        Raises:
            InvalidInputError: a bad step number, text or ``now``.
        """
        check_count("step_number", step_number)
        text = check_str("action_text", action_text)
        ts = check_now(now)
        return self._record(step_number, text, self._similarity(text), ts)

    def _record(self, step_number: int, text: str, sim: float, now: float | None) -> DriftEvent | None:
        if now is not None:
            self._last_ts = now
        self._history.append(sim)
        self._total_checks += 1
        if sim >= self._threshold:
            self._consecutive = 0
            return None
        event = DriftEvent(step_number, sim, text[:EVENT_TEXT_CHARS], self.severity(sim), self._last_ts)
        self._events.append(_flat(event))
        self._total_events += 1
        self._consecutive += 1
        return event

    def severity(self, similarity: float) -> DriftSeverity:
        """Severity of a similarity ``s`` for threshold ``t``: ``s >= t`` NONE, ``>= 0.7t`` LOW,
        ``>= 0.4t`` MODERATE, ``>= 0.2t`` HIGH, else CRITICAL."""
        t = self._threshold
        if similarity >= t:
            return DriftSeverity.NONE
        for factor, sev in zip(
            SEVERITY_FACTORS, (DriftSeverity.LOW, DriftSeverity.MODERATE, DriftSeverity.HIGH), strict=True
        ):
            if similarity >= factor * t:
                return sev
        return DriftSeverity.CRITICAL

    def is_drifting(self) -> bool:
        """True once ``consecutive_limit`` drift events happened in a row (``>=``, not ``>``)."""
        return self._consecutive >= self._limit

    def reset_consecutive(self) -> None:
        """Forget the current run of drift events (call after a replan)."""
        self._consecutive = 0

    def get_drift_events(self) -> list[DriftEvent]:
        """The retained drift events, oldest first (at most ``history_size``)."""
        return [_event(flat) for flat in self._events]

    def get_trend(self, window: int = 10) -> DriftTrend:
        """Trend over the last ``window`` similarities (``window >= 1``).

        Raises:
            InvalidInputError: ``window`` is not a positive integer.
        """
        check_count("window", window, 1)
        recent = list(self._history)[-window:]
        slope = regression_slope(recent)
        if slope > TREND_SLOPE:
            direction = TrendDirection.IMPROVING
        elif slope < -TREND_SLOPE:
            direction = TrendDirection.WORSENING
        else:
            direction = TrendDirection.STABLE
        return DriftTrend(
            direction=direction,
            average_similarity=sum(recent) / len(recent) if recent else 0.0,
            min_similarity=min(recent, default=0.0),
            max_similarity=max(recent, default=0.0),
            consecutive_drifts=self._consecutive,
            total_drift_events=self._total_events,
            trend_slope=slope,
        )

    def get_summary(self) -> dict[str, Any]:
        """Goal, token count, checks, drift events, trend direction and current state."""
        return {
            "goal": self._goal,
            "token_count": len(self._vec.tokens),
            "total_checks": self._total_checks,
            "drift_events": self._total_events,
            "consecutive_drifts": self._consecutive,
            "trend_direction": self.get_trend().direction.value,
            "current_state": "drifting" if self.is_drifting() else "on_track",
        }

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state; the embedder itself is not included (pass it again to :meth:`restore`)."""
        return {
            **header(self.KIND, self.SCHEMA),
            "goal": self._goal,
            "plan": list(self._plan),
            "drift_threshold": self._threshold,
            "consecutive_limit": self._limit,
            "history_size": self._history_size,
            "measure": self._measure.value,
            "uses_embedder": self._embedder is not None,
            "history": list(self._history),
            "events": [dict(zip(_EVENT_FIELDS, flat, strict=True)) for flat in self._events],
            "consecutive": self._consecutive,
            "total_checks": self._total_checks,
            "total_events": self._total_events,
            "last_ts": self._last_ts,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any], *, embedder: Embedder[Any] | None = None) -> Self:
        """Rebuild a GoalDNA from :meth:`snapshot` output.

        Raises:
            SnapshotError: wrong kind or schema, a missing or malformed field, or a snapshot taken with
                an embedder restored without one (or the reverse).
        """
        k = cls.KIND
        d = check_header(data, k, (cls.SCHEMA,))
        if field(d, "uses_embedder", bool, k) != (embedder is not None):
            raise SnapshotError(f"{k} snapshot uses_embedder must match the embedder passed to restore")
        try:
            obj = cls(
                field(d, "goal", str, k),
                field(d, "drift_threshold", float, k),
                field(d, "consecutive_limit", int, k),
                field(d, "history_size", int, k),
                embedder=embedder,
                measure=field(d, "measure", str, k),
                plan=field(d, "plan", list, k),
            )
            obj._history.extend(snapshot_number(v) for v in field(d, "history", list, k))
            for e in field(d, "events", list, k):
                obj._events.append(
                    _flat(
                        DriftEvent(
                            field(e, "step_number", int, k),
                            snapshot_number(field(e, "similarity", float, k)),
                            field(e, "action_text", str, k),
                            DriftSeverity(field(e, "severity", str, k)),
                            field(e, "timestamp", float, k),
                        )
                    )
                )
            obj._consecutive = field(d, "consecutive", int, k)
            obj._total_checks = field(d, "total_checks", int, k)
            obj._total_events = field(d, "total_events", int, k)
            obj._last_ts = snapshot_number(field(d, "last_ts", float, k))
        except SnapshotError:
            raise
        except (ConfigurationError, ValueError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc}") from exc
        return obj


#: A retained drift event, flat: step number, similarity, action text, severity value, timestamp
#: (the keys of its snapshot form, in order). A tuple of atomic values is untracked by the garbage
#: collector, so 200 retained events per goal add nothing to a full collection.
_FlatEvent = tuple[int, float, str, str, float]
_EVENT_FIELDS = ("step_number", "similarity", "action_text", "severity", "timestamp")
#: ``DriftSeverity`` by value (flat records keep the value).
SEVERITY_OF: Mapping[str, DriftSeverity] = {s.value: s for s in DriftSeverity}


def _flat(event: DriftEvent) -> _FlatEvent:
    return (event.step_number, event.similarity, event.action_text, event.severity.value, event.timestamp)


def _event(flat: _FlatEvent) -> DriftEvent:
    step_number, similarity, action_text, severity, timestamp = flat
    return DriftEvent(step_number, similarity, action_text, SEVERITY_OF[severity], timestamp)
