"""DriftEngine: the per-step ``drift_score``, fused from five signals (reference section 2.7).

Each signal is a drift contribution in [0, 1], weighted as in the reference:

===================== ====== ==========================================================================
signal                weight definition
===================== ====== ==========================================================================
goal_relevance        0.35   ``1 - relevance`` of the step text to the goal (see below)
token_budget_ratio    0.15   tokens consumed so far / ``token_budget``, capped at 1
topic_divergence      0.20   share of the step's entities (capitalised words, identifiers with ``_`` or
                             a digit, words of 8+ letters; all content words when there are none)
                             found neither in the goal nor in the context
output_quality_trend  0.15   ``1 - max(len of the last 3 outputs) / mean(len of the earlier outputs in
                             the window)``, clipped to [0, 1]; 0 until 3 + 2 non-empty outputs were seen
prediction_surprise   0.15   ``max(prediction_surprise argument, negative-surprise EWMA)``
===================== ====== ==========================================================================

``score = clip(sum(weight * signal) + 0.15 * [>= consecutive_drift_threshold low-relevance steps in a
row], 0, 1)``; a step is "low relevance" when its relevance is below 0.35. Severity and action follow
the score bands 0.1 / 0.3 / 0.5 / 0.7 / 0.85.

Relevance is not the reference's Jaccard: a long goal and a short step share a small fraction of their
*union* even when the step is squarely on topic. The engine uses its :class:`~.goal_dna.GoalDNA` with
the overlap measure (``0.7 * token overlap + 0.3 * trigram overlap``) against the goal, the plan, and a
*context*: the words of the last ``history_window`` steps (description and head of the output) that
the engine itself let continue (score < 0.3). Agents work on the objects their earlier on-topic
results revealed (the reservation id a lookup returned); a step from another task names objects
nobody in this task has seen.

Because the token-budget signal grows with every token spent, a long on-topic run drifts upward by up
to 0.15 on its own; that is the reference's weighting and is kept (it reads as "the budget is being
used up"), see ``docs/decisions/drift-progress.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_count, check_now, check_number, check_str, clip01, config_int, snapshot_number
from ._snapshot import check_header, field, header, scalar_fields
from .goal_dna import (
    SEVERITY_OF,
    DriftEvent,
    DriftSeverity,
    DriftTrend,
    GoalDNA,
    SimilarityMeasure,
    TrendDirection,
    config_goal,
    entities,
    entities_of_identifiers,
    vocabulary,
)
from .text import Embedder, LexicalVector, TextMemo, identifiers, tokens, tokens_of_identifiers, trigrams

__all__ = [
    "DriftAction",
    "DriftAssessment",
    "DriftEngine",
    "DriftEvent",
    "DriftSeverity",
    "DriftSignals",
    "DriftTrend",
    "GoalDNA",
    "SimilarityMeasure",
    "TrendDirection",
    "action_for",
    "entities",
    "severity_for_score",
    "vocabulary",
]

#: Weights of the five drift signals (reference 2.7); they sum to 1.
SIGNAL_WEIGHTS: Mapping[str, float] = {
    "goal_relevance": 0.35,
    "token_budget_ratio": 0.15,
    "topic_divergence": 0.20,
    "output_quality_trend": 0.15,
    "prediction_surprise": 0.15,
}
#: Added to the score once ``consecutive_drift_threshold`` low-relevance steps happened in a row.
CONSECUTIVE_BONUS = 0.15
#: Relevance below which a step counts as "low similarity" for the consecutive bonus.
LOW_RELEVANCE = 0.35
#: Steps scoring below this (severity NONE/LOW, action CONTINUE) feed the context vocabulary.
ABSORB_BELOW = 0.3
#: Negative-surprise EWMA: ``acc = 0.7 * acc + 0.3 * |direction|`` when direction < -0.3.
SURPRISE_DECAY = 0.7
NEGATIVE_SURPRISE = -0.3
#: Characters of each output that feed the context vocabulary (bounds the per-step cost).
CONTEXT_OUTPUT_CHARS = 4000
#: Output-length trend: the longest of the last 3 outputs against the mean of at least 3 before them.
QUALITY_RECENT = 3
QUALITY_MIN_SAMPLES = 3
#: Assessments kept.
ENGINE_HISTORY = 100
#: History size of the engine's GoalDNA (reference default).
DNA_HISTORY = 200
#: A signal is named in the explanation when its weighted contribution reaches this.
EXPLAIN_MIN = 0.05
#: Signal names as they read in the explanation, in weight order.
_LABELS = tuple(name.replace("_", " ") for name in SIGNAL_WEIGHTS)
_WEIGHTS = tuple(SIGNAL_WEIGHTS.values())
_NAMES = tuple(SIGNAL_WEIGHTS)


class DriftAction(StrEnum):
    """What to do about drift, one per severity (NONE and LOW both continue)."""

    CONTINUE = "continue"
    INJECT_REMINDER = "inject_reminder"
    SUMMARIZE_REPLAN = "summarize_replan"
    CHECKPOINT_RESET = "checkpoint_reset"
    ASK_USER = "ask_user"


_SCORE_BANDS: tuple[tuple[float, DriftSeverity], ...] = (
    (0.85, DriftSeverity.EMERGENCY),
    (0.7, DriftSeverity.CRITICAL),
    (0.5, DriftSeverity.HIGH),
    (0.3, DriftSeverity.MODERATE),
    (0.1, DriftSeverity.LOW),
)
_ACTIONS: Mapping[DriftSeverity, DriftAction] = {
    DriftSeverity.NONE: DriftAction.CONTINUE,
    DriftSeverity.LOW: DriftAction.CONTINUE,
    DriftSeverity.MODERATE: DriftAction.INJECT_REMINDER,
    DriftSeverity.HIGH: DriftAction.SUMMARIZE_REPLAN,
    DriftSeverity.CRITICAL: DriftAction.CHECKPOINT_RESET,
    DriftSeverity.EMERGENCY: DriftAction.ASK_USER,
}


_SEVERITY_TEXT: Mapping[DriftSeverity, str] = {sev: sev.value for sev in DriftSeverity}
_ACTION_TEXT: Mapping[DriftAction, str] = {a: a.value for a in DriftAction}
_ACTION_OF: Mapping[str, DriftAction] = {a.value: a for a in DriftAction}

#: A :class:`DriftAssessment` as plain values: ``(score, the five signals in SIGNAL_WEIGHTS order,
#: severity value, action value, explanation, step_number, timestamp)``. Histories keep this form:
#: the garbage collector stops tracking a tuple of plain values, so a service holding many goals does
#: not traverse their assessments on every full collection. It is one level deep on purpose: a young
#: collection untracks a tuple only once the tuples inside it are untracked, one level per collection.
DriftFlat = tuple[float, float, float, float, float, float, str, str, str, int, float]
_FLAT_KEYS = (
    "score",
    *SIGNAL_WEIGHTS,
    "severity",
    "recommended_action",
    "explanation",
    "step_number",
    "timestamp",
)


def severity_for_score(score: float) -> DriftSeverity:
    """Severity band of a drift score in [0, 1]; every lower bound is inclusive."""
    for bound, sev in _SCORE_BANDS:
        if score >= bound:
            return sev
    return DriftSeverity.NONE


def action_for(severity: DriftSeverity) -> DriftAction:
    """The recommended action for a severity."""
    return _ACTIONS[severity]


@dataclass(frozen=True, slots=True)
class DriftSignals:
    """The five drift contributions of one step, each in [0, 1] (1 = as drifted as it gets).

    Attributes:
        goal_relevance: ``1 - relevance`` of the step text to the goal, plan and context.
        token_budget_ratio: tokens consumed so far over the token budget, capped at 1.
        topic_divergence: share of the step's entities unseen in the goal, plan and context.
        output_quality_trend: how far this output is shorter than the recent average.
        prediction_surprise: the larger of the step's surprise and the negative-surprise EWMA.
    """

    goal_relevance: float
    token_budget_ratio: float
    topic_divergence: float
    output_quality_trend: float
    prediction_surprise: float

    def weighted(self) -> dict[str, float]:
        """Each signal times its weight (the parts of the score before the bonus)."""
        return {name: SIGNAL_WEIGHTS[name] * getattr(self, name) for name in SIGNAL_WEIGHTS}


@dataclass(frozen=True, slots=True)
class DriftAssessment:
    """The drift verdict on one step.

    Attributes:
        score: the drift score in [0, 1].
        signals: the five contributions it was fused from.
        severity: band of ``score``.
        recommended_action: what to do at that severity.
        explanation: one line naming the main contributors.
        step_number: 1-based number of the assessed step.
        timestamp: ``now`` of the assessment (the last known time when none was given).
    """

    score: float
    signals: DriftSignals
    severity: DriftSeverity
    recommended_action: DriftAction
    explanation: str
    step_number: int
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (enum values as strings)."""
        return {
            **scalar_fields(self),
            "signals": scalar_fields(self.signals),
            "severity": self.severity.value,
            "recommended_action": self.recommended_action.value,
        }

    def flat(self) -> DriftFlat:
        """The assessment as a tuple of plain values (see :data:`DriftFlat`); :meth:`unflat` inverts it."""
        s = self.signals
        return (
            self.score, s.goal_relevance, s.token_budget_ratio, s.topic_divergence, s.output_quality_trend,
            s.prediction_surprise, _SEVERITY_TEXT[self.severity], _ACTION_TEXT[self.recommended_action],
            self.explanation, self.step_number, self.timestamp,
        )  # fmt: skip

    @classmethod
    def unflat(cls, flat: DriftFlat) -> DriftAssessment:
        """Inverse of :meth:`flat`."""
        return cls(
            flat[0],
            DriftSignals(flat[1], flat[2], flat[3], flat[4], flat[5]),
            SEVERITY_OF[flat[6]],
            _ACTION_OF[flat[7]],
            flat[8],
            flat[9],
            flat[10],
        )

    @staticmethod
    def flat_dict(flat: DriftFlat) -> dict[str, Any]:
        """``unflat(flat).to_dict()`` without building the objects (snapshots write one per record)."""
        return {
            "score": flat[0],
            "signals": dict(zip(_NAMES, flat[1:6], strict=True)),
            "severity": flat[6],
            "recommended_action": flat[7],
            "explanation": flat[8],
            "step_number": flat[9],
            "timestamp": flat[10],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftAssessment:
        """Inverse of :meth:`to_dict`; raises SnapshotError on a malformed dict."""
        k = "DriftAssessment"
        sig = field(data, "signals", dict, k)
        try:
            return cls(
                field(data, "score", float, k),
                DriftSignals(**{n: snapshot_number(field(sig, n, float, k)) for n in SIGNAL_WEIGHTS}),
                DriftSeverity(field(data, "severity", str, k)),
                DriftAction(field(data, "recommended_action", str, k)),
                field(data, "explanation", str, k),
                field(data, "step_number", int, k),
                field(data, "timestamp", float, k),
            )
        except ValueError as exc:
            raise SnapshotError(f"{k} is malformed: {exc}") from exc


class DriftEngine:
    """Scores every step for drift away from the goal (reference 2.7, with the relevance fix above).

    Args:
        goal: the goal text (non-empty).
        token_budget: tokens the task may spend (>= 1); the budget signal is consumed / budget.
        history_window: steps kept for the output-length average and the on-topic context (>= 1).
        consecutive_drift_threshold: low-relevance steps in a row that add the 0.15 bonus (>= 1).
        embedder: optional :class:`~goalkeeper.core.text.Embedder` for relevance.
        plan: optional plan step texts; their words count as on-topic.
        max_history: assessments retained for :meth:`get_history` and the trend (>= 1; default 100).

    Raises:
        ConfigurationError: an argument is out of range or of the wrong type.
    """

    KIND = "DriftEngine"
    #: 2: ``history`` entries are :data:`DriftFlat` arrays (1: objects, still restored).
    SCHEMA = 2

    def __init__(
        self,
        goal: str,
        token_budget: int = 50000,
        history_window: int = 20,
        consecutive_drift_threshold: int = 3,
        *,
        embedder: Embedder[Any] | None = None,
        plan: Sequence[str] | None = None,
        max_history: int = ENGINE_HISTORY,
    ) -> None:
        self._token_budget = config_int("token_budget", token_budget, 1)
        self._window = config_int("history_window", history_window, 1)
        self._consecutive_limit = config_int("consecutive_drift_threshold", consecutive_drift_threshold, 1)
        self._embedder = embedder
        self._dna = self._new_dna(*config_goal(goal, plan))
        # Each step's words as a tuple: the collector stops tracking a tuple of strings.
        self._context: deque[tuple[str, ...]] = deque()
        self._context_counts: dict[str, int] = {}
        self._lengths: deque[int] = deque(maxlen=self._window)
        self._history: deque[DriftFlat] = deque(maxlen=config_int("max_history", max_history, 1))
        self._step = 0
        self._tokens = 0
        self._surprise = 0.0
        self._last_ts = 0.0
        # The words of tool names, which repeat on nearly every step: a pure function of the name,
        # so not part of the snapshot.
        self._tool_words = TextMemo(tokens)

    def _new_dna(self, goal: str, plan: Sequence[str]) -> GoalDNA:
        return GoalDNA(
            goal,
            drift_threshold=LOW_RELEVANCE,
            consecutive_limit=self._consecutive_limit,
            history_size=DNA_HISTORY,
            embedder=self._embedder,
            measure=SimilarityMeasure.OVERLAP,
            plan=plan,
        )

    @property
    def goal_dna(self) -> GoalDNA:
        """The engine's goal fingerprint (overlap measure); its history holds every step's relevance."""
        return self._dna

    @property
    def goal(self) -> str:
        """The current goal text."""
        return self._dna.goal_text

    @property
    def token_budget(self) -> int:
        """The token budget the budget signal is measured against."""
        return self._token_budget

    def set_goal(self, goal: str, plan: Sequence[str] | None = None) -> None:
        """Re-anchor on a new goal or plan (after a replan).

        The fingerprint, the consecutive-drift run and the on-topic context start afresh; step count,
        tokens consumed, output lengths, surprise and the assessment history carry on.

        Raises:
            InvalidInputError: ``goal`` is empty or not a string, or ``plan`` is not a list of strings.
        """
        try:
            dna = self._new_dna(*config_goal(goal, plan))
        except ConfigurationError as exc:
            raise InvalidInputError(str(exc), field="plan" if "plan" in str(exc) else "goal") from None
        self._dna = dna
        self._context.clear()
        self._context_counts.clear()

    # -- signals ------------------------------------------------------------------------------

    def _divergence(self, text: str, words: frozenset[str], neutral: frozenset[str]) -> float:
        """Share of ``text``'s entities (``words``: its tokens, when it has no entities) unseen in the
        goal and the context."""
        goal, ctx = self._dna.tokens, self._context_counts
        # Without entity-like words, all content words stand in (else "git commit parser fix" would
        # look perfectly on topic for a flight booking); the tool's own name is no evidence either way.
        counted = unseen = 0
        for e in words:
            seen = e in goal or e in ctx
            if seen or e not in neutral:
                counted += 1
                unseen += not seen
        return unseen / counted if counted else 0.0

    def _quality(self, length: int) -> float:
        # Tool outputs vary in length by orders of magnitude from one call to the next, so one short
        # output says nothing. "Collapse" is the last QUALITY_RECENT outputs (this one included) *all*
        # being shorter than the mean of the earlier ones in the window: 1 - longest recent / mean.
        if not length:
            return 0.0
        lengths = self._lengths
        base_n = len(lengths) - (QUALITY_RECENT - 1)
        if base_n < QUALITY_MIN_SAMPLES:
            return 0.0
        # Lengths are integers, so "all minus the recent ones" is the exact sum of the earlier ones.
        recent = [lengths[-i] for i in range(1, QUALITY_RECENT)]
        base = (sum(lengths) - sum(recent)) / base_n
        return clip01(1.0 - max(length, *recent) / base)

    def _absorb(self, description: str, output: str) -> None:
        # Words of the goal are never stored: relevance relies on the context being disjoint from it.
        self._push_context(
            (vocabulary(description) | vocabulary(output[:CONTEXT_OUTPUT_CHARS])) - self._dna.tokens
        )

    def _push_context(self, words: frozenset[str]) -> None:
        if len(self._context) == self._window:
            for w in self._context.popleft():
                left = self._context_counts[w] - 1
                if left:
                    self._context_counts[w] = left
                else:
                    del self._context_counts[w]
        self._context.append(tuple(words))
        for w in words:
            self._context_counts[w] = self._context_counts.get(w, 0) + 1

    # -- assessment ---------------------------------------------------------------------------

    def assess_step(
        self,
        description: str,
        output: str,
        tokens_used: int = 0,
        prediction_surprise: float = 0.0,
        *,
        tool: str = "",
        now: float | None = None,
    ) -> DriftAssessment:
        """Score one step.

        Args:
            description: what the step did (tool, arguments, description): compared with the goal.
            output: the step's result: feeds the output-length trend and the on-topic context.
            tokens_used: tokens the step spent (>= 0).
            prediction_surprise: how surprising the step's outcome was, in [0, 1].
            tool: the tool's name when it is part of ``description``: its words count for relevance
                when the goal or context has them and are ignored otherwise (a tool is how, not what).
            now: time of the step in seconds; defaults to the last known time (0.0 at first).

        Raises:
            InvalidInputError: an argument has the wrong type or is out of range (state is unchanged).
        """
        check_str("description", description)
        check_str("output", output)
        check_str("tool", tool)
        check_count("tokens_used", tokens_used)
        surprise = check_number("prediction_surprise", prediction_surprise, 0.0, 1.0)
        ts = check_now(now)
        return self._assess(description, output, tokens_used, surprise, tool, ts)

    def _assess(
        self,
        description: str,
        output: str,
        tokens_used: int,
        surprise: float,
        tool: str,
        ts: float | None,
        idents: list[str] | tuple[str, ...] | None = None,
        words: tuple[frozenset[str], frozenset[str], frozenset[str] | None] | None = None,
    ) -> DriftAssessment:
        """:meth:`assess_step` on validated arguments (GoalTracker validates a step once and calls
        this); each text feature is computed once and shared by the signals. ``idents``, when given,
        are ``identifiers(description)``; ``words``, when given, are ``(tokens(description),
        entities(description), trigrams(description))`` (the trigrams may be None: computed here)."""
        neutral = self._tool_words(tool)
        if ts is not None:
            self._last_ts = ts
        length = len(output.strip())
        self._step += 1
        self._tokens += tokens_used
        dna = self._dna
        if words is None:
            if idents is None:
                idents = identifiers(description)
            toks, ents = tokens_of_identifiers(idents), entities_of_identifiers(description, idents)
            trigs = None
        else:
            toks, ents, trigs = words
        vector = None
        if self._embedder is None:
            vector = LexicalVector(toks, trigrams(description) if trigs is None else trigs)
        relevance = dna._similarity(description, self._context_counts, neutral, vector)
        dna._record(self._step, description, relevance, ts)
        # The five signals, in DriftSignals' field order.
        v0 = clip01(1.0 - relevance)
        v1 = min(1.0, self._tokens / self._token_budget)
        v2 = self._divergence(description, ents or toks, neutral)
        v3 = self._quality(length)
        v4 = max(surprise, self._surprise)
        signals = DriftSignals(v0, v1, v2, v3, v4)
        w0, w1, w2, w3, w4 = _WEIGHTS
        # Same products, same summation order as DriftSignals.weighted() (sum() of a sequence, so
        # the result is bit-identical on every Python version).
        weighted = [w0 * v0, w1 * v1, w2 * v2, w3 * v3, w4 * v4]
        bonus = CONSECUTIVE_BONUS if dna.is_drifting() else 0.0
        score = clip01(sum(weighted) + bonus)
        severity = severity_for_score(score)
        # Largest contribution first; ties go by signal name, as sorting (value, name) pairs does.
        values = (v0, v1, v2, v3, v4)
        items = zip(weighted, _NAMES, _LABELS, values, strict=True)
        main = [item for item in items if item[0] >= EXPLAIN_MIN]
        if len(main) > 1:
            main.sort(reverse=True)
        why = ", ".join([f"{label} {value:.2f}" for _, _, label, value in main]) or "no signal"
        if bonus:
            why += f"; {dna.consecutive_drift_count} low-relevance steps in a row (+{bonus:.2f})"
        assessment = DriftAssessment(
            score,
            signals,
            severity,
            _ACTIONS[severity],
            # _SEVERITY_TEXT[s] is s.value without the enum property's Python-level lookup.
            f"drift {score:.2f} ({_SEVERITY_TEXT[severity]}): {why}",
            self._step,
            self._last_ts,
        )
        if score < ABSORB_BELOW:
            self._absorb(description, output)
        if length:
            # Many tools return nothing (think, acknowledge); silence is no evidence of collapse.
            self._lengths.append(length)
        self._history.append(assessment.flat())
        return assessment

    def observe_context(self, text: str) -> None:
        """Count the words of ``text`` as on-topic from now on (a user message, the task's data).

        The text takes one slot of the ``history_window`` context, like an accepted step.

        Raises:
            InvalidInputError: ``text`` is not a string.
        """
        self._push_context(vocabulary(check_str("text", text)) - self._dna.tokens)

    def record_negative_surprise(self, surprise_direction: float) -> None:
        """Feed the direction of a prediction surprise, in [-1, 1] (negative = worse than predicted).

        Below -0.3 it accumulates: ``acc = 0.7 * acc + 0.3 * |direction|``; otherwise the accumulator
        only decays (``acc *= 0.7``), so good outcomes wash old bad ones out.

        Raises:
            InvalidInputError: ``surprise_direction`` is not a finite number in [-1, 1].
        """
        d = check_number("surprise_direction", surprise_direction, -1.0, 1.0)
        self._surprise *= SURPRISE_DECAY
        if d < NEGATIVE_SURPRISE:
            self._surprise += (1.0 - SURPRISE_DECAY) * -d

    def get_drift_trend(self, last_n: int = 5) -> float:
        """Mean score of the last ``last_n`` assessments (0.0 before the first).

        Raises:
            InvalidInputError: ``last_n`` is not a positive integer.
        """
        check_count("last_n", last_n, 1)
        recent = list(self._history)[-last_n:]
        return sum(a[0] for a in recent) / len(recent) if recent else 0.0

    def get_history(self) -> list[DriftAssessment]:
        """The retained assessments, oldest first (at most :attr:`max_history`)."""
        return [DriftAssessment.unflat(a) for a in self._history]

    @property
    def max_history(self) -> int:
        """How many assessments are retained (100 by default, as in the reference)."""
        return self._history.maxlen or 0

    def get_stats(self) -> dict[str, Any]:
        """The reference's seven statistics (``total_assessments`` counts the retained ones)."""
        return {
            "step_number": self._step,
            "tokens_consumed": self._tokens,
            "token_budget": self._token_budget,
            "current_drift_trend": self.get_drift_trend(),
            "consecutive_low_similarity": self._dna.consecutive_drift_count,
            "total_assessments": len(self._history),
            "surprise_accumulator": self._surprise,
        }

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state; the embedder itself is not included (pass it again to :meth:`restore`)."""
        return {
            **header(self.KIND, self.SCHEMA),
            "token_budget": self._token_budget,
            "history_window": self._window,
            "consecutive_drift_threshold": self._consecutive_limit,
            "goal_dna": self._dna.snapshot(),
            "context": [sorted(words) for words in self._context],
            "lengths": list(self._lengths),
            "max_history": self.max_history,
            "history": [list(a) for a in self._history],
            "step": self._step,
            "tokens": self._tokens,
            "surprise": self._surprise,
            "last_ts": self._last_ts,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any], *, embedder: Embedder[Any] | None = None) -> Self:
        """Rebuild an engine from :meth:`snapshot` output.

        Raises:
            SnapshotError: wrong kind or schema, a missing or malformed field, or an embedder mismatch.
        """
        k = cls.KIND
        d = check_header(data, k, (1, cls.SCHEMA))
        dna = GoalDNA.restore(field(d, "goal_dna", dict, k), embedder=embedder)
        try:
            obj = cls(
                dna.goal_text,
                field(d, "token_budget", int, k),
                field(d, "history_window", int, k),
                field(d, "consecutive_drift_threshold", int, k),
                embedder=embedder,
                plan=dna.plan,
                # Snapshots written before the limit was configurable kept the reference's 100.
                max_history=field(d, "max_history", int, k) if "max_history" in d else ENGINE_HISTORY,
            )
            obj._dna = dna
            for words in field(d, "context", list, k):
                obj._push_context(frozenset(check_str("context", w) for w in words))
            obj._lengths.extend(check_count("lengths", n) for n in field(d, "lengths", list, k))
            compact = d["schema"] == cls.SCHEMA
            for a in field(d, "history", list, k):
                if compact:  # validated as the object form is
                    if not isinstance(a, list) or len(a) != len(_FLAT_KEYS):
                        raise SnapshotError(f"{k} history entry is not an array of {len(_FLAT_KEYS)} values")
                    a = DriftAssessment.flat_dict(tuple(a))
                obj._history.append(DriftAssessment.from_dict(a).flat())
            obj._step = check_count("step", field(d, "step", int, k))
            obj._tokens = check_count("tokens", field(d, "tokens", int, k))
            obj._surprise = snapshot_number(field(d, "surprise", float, k))
            obj._last_ts = snapshot_number(field(d, "last_ts", float, k))
        except SnapshotError:
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc}") from exc
        return obj
