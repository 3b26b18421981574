"""How the loop detectors are configured and how their signals become one verdict.

* :class:`LoopPolicy` holds every knob of loop detection; :data:`PROFILES` names the two profiles,
  ``"reference"`` (corteX's documented semantics) and ``"goalkeeper"`` (the default).
* **Fusion**: every firing detector contributes a :class:`~.loop_rules.LoopSignal`; they become one
  :class:`LoopEvent` with :func:`combined_confidence` ``= min(1, mean + 0.1 * (n - 1))``, the
  reference's :func:`recommend_action`, and a message for the agent (:func:`loop_message`).
* :class:`Escalation` is the graded ladder (NUDGE, REPLAN, STOP) and :data:`RISK_BANDS` the
  ``loop_risk`` each level maps to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ..errors import ConfigurationError, SnapshotError
from . import _snapshot
from .loop_peers import (
    ActionErrorRule,
    ActionObservationRule,
    AlternationRule,
    CompressionRule,
    EmptyResponseRule,
    MonologueRule,
    ToolCallStreakRule,
)
from .loop_rules import (
    LOOP_TYPE_OF,
    LOOP_TYPE_TEXT,
    DeadEndDetector,
    Detector,
    ExactHashDetector,
    LoopSignal,
    LoopType,
    OscillationDetector,
    SemanticJaccardDetector,
    SignalFlat,
)

__all__ = [
    "PARTIAL_RISK_CAP",
    "PROFILES",
    "REENTRY_CONFIDENCE",
    "RISK_BANDS",
    "TRIED_APPROACHES",
    "Escalation",
    "Keying",
    "LoopAction",
    "LoopEvent",
    "LoopPolicy",
    "combined_confidence",
    "loop_message",
    "recommend_action",
]


class Escalation(StrEnum):
    """How hard the detector pushes back, in ladder order."""

    NONE = "none"
    NUDGE = "nudge"
    REPLAN = "replan"
    STOP = "stop"


class LoopAction(StrEnum):
    """The reference's ``recommended_action`` of a :class:`LoopEvent`."""

    REPLAN = "replan"
    BACKTRACK = "backtrack"
    ESCALATE = "escalate"


class Keying(StrEnum):
    """How a step becomes the keys the detectors compare (see :class:`.loop_rules.StepFacts`)."""

    REFERENCE = "reference"
    GOALKEEPER = "goalkeeper"


#: ``loop_risk`` bands per escalation level: ``low + (high - low) * combined_confidence``.
RISK_BANDS: Mapping[Escalation, tuple[float, float]] = MappingProxyType(
    {Escalation.NUDGE: (0.5, 0.7), Escalation.REPLAN: (0.75, 0.9), Escalation.STOP: (0.9, 1.0)}
)
#: Evidence below every threshold raises ``loop_risk`` to at most this (below the nudge band).
PARTIAL_RISK_CAP = 0.4
#: Confidence of a re-entry signal: the step already looped once, so one repeat is strong evidence.
REENTRY_CONFIDENCE = 0.75
#: How many distinct approaches ``tried_approaches`` keeps (the most recent).
TRIED_APPROACHES = 10


@dataclass(frozen=True, slots=True)
class LoopPolicy:
    """Every knob of loop detection. Use a named profile from :data:`PROFILES` or build your own.

    Attributes:
        name: profile name, for display.
        keying: ``"reference"`` (hash of description|output, oscillation on the action type) or
            ``"goalkeeper"`` (volatile-insensitive action + observation keys; near-duplicates only
            within the same tool and identifiers, and only with the same result).
        exact_threshold: same step this many times -> exact repeat (3).
        exact_window: steps the exact detector remembers (500).
        progress_aware: a repetition counts only while the agent gets results it has already seen:
            the exact count starts over after ``progress_reset`` new steps, near-duplicates count only
            since the last step that had none, and the tool-call streak counts only calls whose result
            already came back (off in the reference).
        progress_reset: with ``progress_aware``, this many new steps between two repeats restart the
            exact repeat count (4).
        jaccard_threshold: near-duplicate if token Jaccard is above this (0.65).
        semantic_min_similar: near-duplicates needed among past steps (2).
        semantic_window: steps compared for near-duplicates (30).
        oscillation_min_cycles: cycles of a period-2/3/4 pattern needed (2).
        oscillation_periods: the periods looked for ((2, 3, 4)).
        oscillation_window: steps the oscillation detector remembers (20).
        dead_end_threshold: same error this many times -> dead end (3).
        dead_end_window: errors (reference) or steps (goalkeeper) remembered (15).
        dead_end_counts_steps: the dead-end window counts steps, not only failed ones.
        peer_rules: run the peer rules (OpenHands, Gemini CLI) next to the four reference detectors.
        action_observation_threshold: identical action + observation in a row (OpenHands: 4).
        action_error_threshold: identical action failing in a row (OpenHands: 3).
        alternation_cycles: A/B cycles with repeating observations (OpenHands: 3, i.e. 6 events).
        monologue_threshold: identical assistant messages with no step between (OpenHands: 3).
        empty_response_threshold: empty assistant messages in a row (OpenHands: 3).
        compression_threshold: context compressions back to back (2).
        tool_call_streak: identical calls in a row (Gemini CLI: 5).
        user_turn_resets: a user message starts a new turn: step windows are forgotten (the agent
            answering a new request is not looping on its own).
        escalate_across_turns: the ladder climbs (NUDGE -> REPLAN -> STOP) even when a user message
            came between two loop events. Off in the goalkeeper profile: a repeat that follows a new
            user turn answers the user, not the nudge, so it is nudged again at the same level; the
            ladder climbs only when the agent repeats after a nudge on its own (see
            docs/decisions/loops.md). On in the reference, whose ladder knows no turns.
        replan_at: the episode's n-th event escalates to REPLAN (2; the 1st is always a NUDGE).
        stop_at: the episode's n-th event escalates to STOP (4).
        episode_close_after: consecutive clean steps that close an episode (3).
        risk_decay: ``loop_risk`` is multiplied by this on every clean step (0.7).
        memory_size: looping step fingerprints remembered across ``reset()`` (64).
        history_size: loop events kept in the history (50, as in the reference).
        exempt_tools: tools never counted as looping (e.g. ``"sleep"``, a debugger's ``next``).
    """

    name: str = "goalkeeper"
    keying: Keying = Keying.GOALKEEPER
    exact_threshold: int = 3
    exact_window: int = 500
    progress_aware: bool = True
    progress_reset: int = 4
    jaccard_threshold: float = 0.65
    semantic_min_similar: int = 2
    semantic_window: int = 30
    oscillation_min_cycles: int = 2
    oscillation_periods: tuple[int, ...] = (2, 3, 4)
    oscillation_window: int = 20
    dead_end_threshold: int = 3
    dead_end_window: int = 15
    dead_end_counts_steps: bool = True
    peer_rules: bool = True
    action_observation_threshold: int = 4
    action_error_threshold: int = 3
    alternation_cycles: int = 3
    monologue_threshold: int = 3
    empty_response_threshold: int = 3
    compression_threshold: int = 2
    tool_call_streak: int = 5
    user_turn_resets: bool = True
    escalate_across_turns: bool = False
    replan_at: int = 2
    stop_at: int = 4
    episode_close_after: int = 3
    risk_decay: float = 0.7
    memory_size: int = 64
    history_size: int = 50
    exempt_tools: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ConfigurationError("LoopPolicy.name must be a string")
        try:
            object.__setattr__(self, "keying", Keying(self.keying))
        except ValueError:
            raise ConfigurationError(
                f"LoopPolicy.keying must be one of {[k.value for k in Keying]}"
            ) from None
        tools, periods = self.exempt_tools, self.oscillation_periods
        if (
            isinstance(tools, str)
            or not isinstance(tools, Iterable)
            or not all(isinstance(t, str) for t in tools)
        ):
            raise ConfigurationError("LoopPolicy.exempt_tools must be a collection of tool names")
        if not isinstance(periods, Iterable):
            raise ConfigurationError("LoopPolicy.oscillation_periods must be a sequence of integers")
        object.__setattr__(self, "exempt_tools", frozenset(tools))
        object.__setattr__(self, "oscillation_periods", tuple(periods))
        for name in ("progress_reset", "episode_close_after", "memory_size", "history_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"LoopPolicy.{name} must be an integer >= 1, got {value!r}")
        for name in (
            "progress_aware",
            "dead_end_counts_steps",
            "peer_rules",
            "user_turn_resets",
            "escalate_across_turns",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"LoopPolicy.{name} must be True or False")
        ladder = (self.replan_at, self.stop_at)
        if (
            any(isinstance(v, bool) or not isinstance(v, int) for v in ladder)
            or not 2 <= ladder[0] < ladder[1]
        ):
            raise ConfigurationError(f"LoopPolicy needs 2 <= replan_at < stop_at, got {ladder}")
        decay = self.risk_decay
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ConfigurationError(f"LoopPolicy.risk_decay must be in [0, 1), got {decay!r}")
        self.detectors(all_rules=True)  # the detectors validate their own parameters

    def detectors(self, *, all_rules: bool = False) -> list[Detector]:
        """Build fresh detectors for this policy (the peer rules only if enabled or ``all_rules``)."""
        found: list[Detector] = [
            ExactHashDetector(
                self.exact_threshold, self.exact_window, self.progress_reset if self.progress_aware else None
            ),
            SemanticJaccardDetector(
                self.jaccard_threshold, self.semantic_min_similar, self.semantic_window, self.progress_aware
            ),
            OscillationDetector(
                self.oscillation_min_cycles, self.oscillation_periods, self.oscillation_window
            ),
            DeadEndDetector(self.dead_end_threshold, self.dead_end_window, self.dead_end_counts_steps),
        ]
        if self.peer_rules or all_rules:
            found += [
                ActionObservationRule(self.action_observation_threshold),
                ActionErrorRule(self.action_error_threshold),
                AlternationRule(self.alternation_cycles),
                ToolCallStreakRule(self.tool_call_streak, self.progress_aware),
                MonologueRule(self.monologue_threshold),
                EmptyResponseRule(self.empty_response_threshold),
                CompressionRule(self.compression_threshold),
            ]
        return found

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a JSON-able dict."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["keying"] = self.keying.value
        data["oscillation_periods"] = list(self.oscillation_periods)
        data["exempt_tools"] = sorted(self.exempt_tools)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopPolicy:
        """Rebuild a policy from :meth:`to_dict`; raises :class:`ConfigurationError` if invalid."""
        names = [f.name for f in dataclasses.fields(cls)]
        # A policy written before a field existed behaves as it did then.
        data = {**_ADDED_LATER, **data}
        missing = [n for n in names if n not in data]
        if missing:
            raise ConfigurationError(f"LoopPolicy is missing {missing[0]!r}")
        try:
            return cls(**{n: data[n] for n in names})
        except TypeError as exc:
            raise ConfigurationError(f"LoopPolicy is malformed: {exc}") from exc

    @classmethod
    def named(cls, name: str) -> LoopPolicy:
        """Return the named profile; raises :class:`ConfigurationError` listing the known ones."""
        if name not in PROFILES:
            raise ConfigurationError(f"unknown loop profile {name!r}; known: {', '.join(sorted(PROFILES))}")
        return PROFILES[name]


#: Fields added after policies were first persisted, with the value that reproduces the behaviour of
#: a policy written without them (snapshots restored by :meth:`LoopPolicy.from_dict`).
_ADDED_LATER: Mapping[str, Any] = MappingProxyType({"escalate_across_turns": True})

#: The named profiles: ``"reference"`` (corteX's documented behaviour) and ``"goalkeeper"`` (default).
PROFILES: Mapping[str, LoopPolicy] = MappingProxyType(
    {
        "reference": LoopPolicy(
            name="reference",
            keying=Keying.REFERENCE,
            progress_aware=False,
            dead_end_counts_steps=False,
            peer_rules=False,
            user_turn_resets=False,
            escalate_across_turns=True,
        ),
        "goalkeeper": LoopPolicy(),
    }
)


def combined_confidence(signals: tuple[LoopSignal, ...] | list[LoopSignal]) -> float:
    """``min(1, mean(confidence) + 0.1 * (n - 1))``: agreeing detectors add confidence; 0 for none."""
    if not signals:
        return 0.0
    mean = sum(s.confidence for s in signals) / len(signals)
    return max(0.0, min(1.0, mean + 0.1 * (len(signals) - 1)))


def recommend_action(loop_type: LoopType, combined: float, repeat_count: int) -> LoopAction:
    """The reference rule: ESCALATE if ``combined > 0.85`` or ``repeat_count > 5``; else BACKTRACK for
    a dead end (or the same call failing again and again); else REPLAN."""
    if combined > 0.85 or repeat_count > 5:
        return LoopAction.ESCALATE
    if loop_type in (LoopType.DEAD_END, LoopType.REPEATING_ACTION_ERROR):
        return LoopAction.BACKTRACK
    return LoopAction.REPLAN


#: ``Escalation.value`` by member, without the enum property's Python-level lookup (a hot path).
ESCALATION_TEXT: Mapping[Escalation, str] = {e: e.value for e in Escalation}
ESCALATION_OF: Mapping[str, Escalation] = {e.value: e for e in Escalation}
_LOOP_ACTION_TEXT: Mapping[LoopAction, str] = {a: a.value for a in LoopAction}
_LOOP_ACTION_OF: Mapping[str, LoopAction] = {a.value: a for a in LoopAction}

#: A :class:`LoopEvent` as plain values, in field order: enum members as their values, the signals'
#: :data:`~goalkeeper.core.loop_rules.SignalFlat` values one after another in a single tuple (six per
#: signal; nesting them would take the collector one more collection to untrack). The loop history
#: keeps this form: the garbage collector stops tracking a tuple of plain values, so a service holding
#: many goals does not traverse their loop events on every full collection.
EventFlat = tuple[str, tuple[Any, ...], float, tuple[str, ...], str, int, str, str, str, int, float]


def _signal_flats(values: Sequence[Any]) -> list[SignalFlat]:
    """Split an :data:`EventFlat`'s run of signal values into one :data:`SignalFlat` per signal."""
    return [tuple(values[i : i + 6]) for i in range(0, len(values), 6)]


_EVENT_KEYS = (
    "loop_type", "signals", "combined_confidence", "tried_approaches", "recommended_action", "step_number",
    "escalation", "message", "fingerprint", "ordinal", "loop_risk",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LoopEvent:
    """One detected loop: the fused signals and what to do about it.

    Attributes:
        loop_type: the type of the highest-confidence signal (the first one on a tie).
        signals: every signal that fired on this step.
        combined_confidence: see :func:`combined_confidence`, in [0, 1].
        tried_approaches: the most recent distinct approaches (actions) seen.
        recommended_action: the reference's advice, see :func:`recommend_action`.
        step_number: how many steps had been observed when the loop was detected.
        escalation: where the episode's ladder stands: NUDGE, REPLAN or STOP.
        message: text for the agent, e.g. "You called `search` with the same arguments 3 times...".
        fingerprint: identity of the looping step (action and result); remembered across ``reset()``.
        ordinal: the event's position in its episode (1 for the first).
        loop_risk: the detector's ``loop_risk`` after this event, in [0, 1].
    """

    loop_type: LoopType
    signals: tuple[LoopSignal, ...]
    combined_confidence: float
    tried_approaches: tuple[str, ...]
    recommended_action: LoopAction
    step_number: int
    escalation: Escalation
    message: str
    fingerprint: str
    ordinal: int
    loop_risk: float

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-able dict."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["signals"] = [s.to_dict() for s in self.signals]
        data["tried_approaches"] = list(self.tried_approaches)
        for key in ("loop_type", "recommended_action", "escalation"):
            data[key] = str(data[key])
        return data

    def flat(self) -> EventFlat:
        """The event as a tuple of plain values (see :data:`EventFlat`); :meth:`unflat` inverts it."""
        return (
            LOOP_TYPE_TEXT[self.loop_type],
            tuple([value for s in self.signals for value in s.flat()]),
            self.combined_confidence,
            self.tried_approaches,
            _LOOP_ACTION_TEXT[self.recommended_action],
            self.step_number,
            ESCALATION_TEXT[self.escalation],
            self.message,
            self.fingerprint,
            self.ordinal,
            self.loop_risk,
        )

    @classmethod
    def unflat(cls, flat: EventFlat) -> LoopEvent:
        """Inverse of :meth:`flat`."""
        kind, signals, confidence, tried, action, step, level, message, fingerprint, ordinal, risk = flat
        return cls(
            LOOP_TYPE_OF[kind], tuple([LoopSignal.unflat(s) for s in _signal_flats(signals)]), confidence,
            tried, _LOOP_ACTION_OF[action], step, ESCALATION_OF[level], message, fingerprint, ordinal, risk,
        )  # fmt: skip

    @staticmethod
    def flat_dict(flat: Sequence[Any]) -> dict[str, Any]:
        """``unflat(flat).to_dict()`` without building the objects; ``flat`` is an :data:`EventFlat`
        or its array form in a snapshot."""
        data = dict(zip(_EVENT_KEYS, flat, strict=True))
        data["signals"] = [LoopSignal.flat_dict(s) for s in _signal_flats(flat[1])]
        data["tried_approaches"] = list(flat[3])
        return data

    @staticmethod
    def compact_dict(entry: object) -> dict[str, Any]:
        """The object form of a snapshot's compact history entry (an :data:`EventFlat` as an array),
        for :meth:`from_dict` to validate; raises :class:`SnapshotError` if it is not one."""
        if not isinstance(entry, list) or len(entry) != len(_EVENT_KEYS):
            raise SnapshotError(f"LoopEvent entry is not an array of {len(_EVENT_KEYS)} values")
        signals, tried = entry[1], entry[3]
        if not isinstance(signals, list) or len(signals) % 6 or not isinstance(tried, list):
            raise SnapshotError("LoopEvent entry has malformed signals or tried approaches")
        return LoopEvent.flat_dict(entry)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopEvent:
        """Rebuild an event written by :meth:`to_dict`; raises :class:`SnapshotError` if malformed."""
        kind = "LoopEvent"
        get = _snapshot.field
        try:
            return cls(
                LoopType(get(data, "loop_type", str, kind)),
                tuple(LoopSignal.from_dict(s) for s in get(data, "signals", list, kind)),
                get(data, "combined_confidence", float, kind),
                tuple(str(a) for a in get(data, "tried_approaches", list, kind)),
                LoopAction(get(data, "recommended_action", str, kind)),
                get(data, "step_number", int, kind),
                Escalation(get(data, "escalation", str, kind)),
                get(data, "message", str, kind),
                get(data, "fingerprint", str, kind),
                get(data, "ordinal", int, kind),
                get(data, "loop_risk", float, kind),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"LoopEvent is malformed: {exc}") from exc


# Message templates, most specific first: the message describes the first of these types among the
# signals (an exact repeat always fires the semantic detector too, with a higher confidence, but
# "the same arguments" tells the agent more than "nearly the same"). {tool}, {n}, {evidence} are
# filled in.
_MESSAGES: Mapping[LoopType, str] = MappingProxyType(
    {
        LoopType.REENTRY: "You went back to calling `{tool}` with the same arguments and result as in a "
        "loop you were already warned about; do not repeat it.",
        LoopType.REPEATING_ACTION_OBSERVATION: "You called `{tool}` with the same arguments {n} times in a "
        "row and got the same result; try something else.",
        LoopType.TOOL_CALL_STREAK: "You called `{tool}` with the same arguments {n} times in a row without "
        "getting anything new; try something else.",
        LoopType.EXACT_REPEAT: "You called `{tool}` with the same arguments {n} times and got the same "
        "result; try something else.",
        LoopType.REPEATING_ACTION_ERROR: "`{tool}` failed {n} times in a row with the same arguments; "
        "repeating the exact same call will not work, try a different approach.",
        LoopType.ALTERNATING_PATTERN: "You are alternating between the same two steps ({evidence}) and "
        "the results repeat; step back and try a different approach.",
        LoopType.OSCILLATION: "You are going round in a cycle ({evidence}) and the results repeat; step "
        "back and try a different approach.",
        LoopType.DEAD_END: "The same error came back {n} times ({evidence}); this approach does not work, "
        "try a different one.",
        LoopType.SEMANTIC_REPEAT: "You called `{tool}` with nearly the same arguments {n} times and got the "
        "same result; rewording will not help, try a different approach.",
        LoopType.MONOLOGUE: "You sent the same message {n} times without acting; take a concrete step or "
        "ask the user.",
        LoopType.EMPTY_RESPONSE: "Your last {n} responses were empty; answer or call a tool.",
        LoopType.CONTEXT_WINDOW: "The context was compressed {n} times in a row with no step between; "
        "load less into the context.",
    }
)
_SUFFIX: Mapping[Escalation, str] = MappingProxyType(
    {
        Escalation.NUDGE: "",
        Escalation.REPLAN: " This continued after a warning: stop and make a new plan.",
        Escalation.STOP: " The loop continued after a replan: stopping.",
    }
)


def loop_message(signals: tuple[LoopSignal, ...], label: str, level: Escalation) -> str:
    """The text for the agent: the template of the most specific signal type present, filled in, plus
    what the escalation level means (nothing at NUDGE)."""
    told = next(s for kind in _MESSAGES for s in signals if s.loop_type is kind)
    n = told.repeat_count + (1 if told.loop_type is LoopType.SEMANTIC_REPEAT else 0)
    return _MESSAGES[told.loop_type].format(tool=label, n=n, evidence=told.evidence) + _SUFFIX[level]
