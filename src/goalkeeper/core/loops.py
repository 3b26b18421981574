"""Loop detection: the detectors of :mod:`~goalkeeper.core.loop_rules` fused into one verdict.

:class:`MultiResolutionLoopDetector` is corteX's detector (``check(action_type, description, output,
error)``) grown into what users of peer frameworks ask for:

* **Profiles** (:class:`LoopPolicy`): ``"reference"`` keeps corteX's documented semantics;
  ``"goalkeeper"`` (the default) keys steps on volatile-insensitive action and observation keys, is
  progress-aware (a repeated call whose *result changes* is work, not a loop) and adds the peer
  rules of OpenHands and Gemini CLI.
* **Fusion**: every firing detector contributes a :class:`LoopSignal`; they become one
  :class:`LoopEvent` with ``combined_confidence = min(1, mean + 0.1 * (n - 1))`` and the reference's
  ``recommended_action``.
* **Graded escalation** (:class:`Escalation`): the first event of an episode is a NUDGE with a
  concrete message for the agent, a loop that continues gets REPLAN, one that continues after that
  gets STOP. Never a stop on the first sign.
* **loop_risk** in [0, 1]: rises with evidence (above 0.7 from REPLAN on, the Goal Tracking page's
  "break the loop" level), decays when the agent behaves.
* **Re-entry memory**: ``reset()`` after a replan forgets the windows but not the loops: repeating a
  remembered looping step is flagged at once and resumes the ladder where it was.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from . import _snapshot
from .loop_rules import (
    ActionErrorRule,
    ActionObservationRule,
    AlternationRule,
    CompressionRule,
    DeadEndDetector,
    Detector,
    EmptyResponseRule,
    ExactHashDetector,
    LoopSignal,
    LoopType,
    MonologueRule,
    OscillationDetector,
    SemanticJaccardDetector,
    StepFacts,
    ToolCallStreakRule,
    reference_facts,
    step_facts,
)
from .steps import ContextCompressed, Message, Step
from .text import collapse_ws, mask_volatile, stable_hash

__all__ = [
    "PROFILES",
    "Escalation",
    "Keying",
    "LoopAction",
    "LoopEvent",
    "LoopPolicy",
    "LoopSignal",
    "LoopType",
    "MultiResolutionLoopDetector",
    "combined_confidence",
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
_DIGIT = re.compile(r"\d")


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
        for name in ("progress_aware", "dead_end_counts_steps", "peer_rules", "user_turn_resets"):
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


class MultiResolutionLoopDetector:
    """Detects loops in an agent's stream of steps and messages and escalates gradually.

    Args:
        exact_threshold: overrides the profile's ``exact_threshold`` (default 3).
        jaccard_threshold: overrides ``jaccard_threshold`` (default 0.65).
        oscillation_min_cycles: overrides ``oscillation_min_cycles`` (default 2).
        dead_end_threshold: overrides ``dead_end_threshold`` (default 3).
        profile: a profile name from :data:`PROFILES` (default ``"goalkeeper"``) or a :class:`LoopPolicy`.

    Raises:
        ConfigurationError: unknown profile or invalid threshold.
    """

    KIND = "MultiResolutionLoopDetector"

    def __init__(
        self,
        exact_threshold: int | None = None,
        jaccard_threshold: float | None = None,
        oscillation_min_cycles: int | None = None,
        dead_end_threshold: int | None = None,
        *,
        profile: str | LoopPolicy = "goalkeeper",
    ) -> None:
        policy = profile if isinstance(profile, LoopPolicy) else LoopPolicy.named(profile)
        overrides: dict[str, Any] = {
            "exact_threshold": exact_threshold,
            "jaccard_threshold": jaccard_threshold,
            "oscillation_min_cycles": oscillation_min_cycles,
            "dead_end_threshold": dead_end_threshold,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        self.policy: LoopPolicy = dataclasses.replace(policy, **overrides) if overrides else policy
        self._detectors = self.policy.detectors()
        self._step_number = 0
        self._total_loops = 0
        self._history: deque[LoopEvent] = deque(maxlen=self.policy.history_size)
        self._time = 0.0
        self._risk = 0.0
        self._level = Escalation.NONE
        self._ordinal = 0  # events in the open episode; 0 = no episode
        self._clean = 0  # clean steps since the episode's last event
        self._memory: dict[str, int] = {}  # looping step fingerprint -> highest ordinal reached
        self._armed = False  # reset() was called: remembered loops are flagged at once
        self._approaches: list[str] = []
        self._own: deque[str] = deque(maxlen=8)  # hashes of our recent messages, not user input

    # -- properties -------------------------------------------------------------------------------

    @property
    def loop_risk(self) -> float:
        """Probability-like risk that the agent is looping, in [0, 1]; above 0.7 means "break the loop"."""
        return self._risk

    @property
    def escalation(self) -> Escalation:
        """The open episode's escalation level (NONE when no loop episode is open)."""
        return self._level

    @property
    def step_number(self) -> int:
        """How many steps have been observed."""
        return self._step_number

    @property
    def loop_history(self) -> tuple[LoopEvent, ...]:
        """The most recent loop events, oldest first (at most ``policy.history_size``)."""
        return tuple(self._history)

    @property
    def tried_approaches(self) -> tuple[str, ...]:
        """The most recent distinct approaches (actions) seen, oldest first."""
        return tuple(self._approaches)

    # -- input ------------------------------------------------------------------------------------

    def check(
        self,
        action_type: str,
        description: str,
        output: str,
        error: str | None = None,
        *,
        now: float | None = None,
    ) -> LoopEvent | None:
        """The reference entry point: record one step and return a :class:`LoopEvent` if it loops.

        In the goalkeeper keying the step becomes ``Step(tool=action_type, args={"description":
        description}, output=output, error=error)``, so the description identifies the action.

        Raises:
            InvalidInputError: an argument has the wrong type (``.field`` names it), or ``now`` is not
                a finite number.
        """
        for name, value in (("action_type", action_type), ("description", description), ("output", output)):
            if not isinstance(value, str):
                raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=name)
        if error is not None and not isinstance(error, str):
            raise InvalidInputError(f"must be a string or None, got {type(error).__name__}", field="error")
        if self.policy.keying is Keying.GOALKEEPER:
            args = {"description": description} if description else {}
            return self.observe(Step(action_type, args, "", output, error or None), now=now)
        t = self._clock(now, None)
        if action_type in self.policy.exempt_tools:
            return self._conclude_step(None, t)
        return self._conclude_step(reference_facts(action_type, description, output, error or None), t)

    def observe(
        self, item: Step | Message | ContextCompressed, *, now: float | None = None
    ) -> LoopEvent | None:
        """Record one item of the agent's stream and return a :class:`LoopEvent` if it loops.

        Raises:
            InvalidInputError: ``item`` is not a Step, Message or ContextCompressed, one of its fields
                has the wrong type (``.field`` names it), or ``now`` is not a finite number.
        """
        if isinstance(item, Step):
            _validate_step(item)
            t = self._clock(now, item.ts)
            if item.tool in self.policy.exempt_tools:
                return self._conclude_step(None, t)
            if self.policy.keying is Keying.GOALKEEPER:
                return self._conclude_step(step_facts(item), t)
            return self._conclude_step(reference_facts(item.tool, item.text, item.output, item.error), t)
        if isinstance(item, Message):
            if item.role not in ("user", "assistant", "system"):
                raise InvalidInputError(f"must be user, assistant or system, got {item.role!r}", field="role")
            if not isinstance(item.content, str):
                raise InvalidInputError(
                    f"must be a string, got {type(item.content).__name__}", field="content"
                )
            return self._message(item.role, item.content, self._clock(now, item.ts))
        if isinstance(item, ContextCompressed):
            t = self._clock(now, item.ts)
            return self._conclude([d.on_compressed(t) for d in self._detectors], None, "compressed", t, None)
        raise InvalidInputError(
            f"must be a Step, Message or ContextCompressed, got {type(item).__name__}", field="item"
        )

    def reset(self) -> None:
        """Forget the windows and close the episode (call after a successful replan).

        Unlike the reference, the fingerprints of the loops seen are kept: repeating one of those
        steps is flagged at its first repeat and resumes the ladder where that loop left it.
        """
        for d in self._detectors:
            d.clear()
        self._risk = 0.0
        self._level = Escalation.NONE
        self._ordinal = self._clean = 0
        self._armed = True

    def get_stats(self) -> dict[str, Any]:
        """The reference's statistics: step number, loops detected, history size, recent loop types."""
        return {
            "step_number": self._step_number,
            "total_loops_detected": self._total_loops,
            "loop_history_size": len(self._history),
            "recent_loop_types": [e.loop_type.value for e in list(self._history)[-5:]],
        }

    # -- internals --------------------------------------------------------------------------------

    def _clock(self, now: object, ts: object) -> float:
        for name, value in (("now", now), ("ts", ts)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInputError("must be a finite number of seconds or None", field=name)
            self._time = float(value)
            break
        return self._time

    def _conclude_step(self, facts: StepFacts | None, t: float) -> LoopEvent | None:
        """Run the detectors on one step (``None``: an exempt tool, which only counts as clean)."""
        self._step_number += 1
        if facts is None:
            return self._conclude((), None, "", t, 0.0)
        if facts.approach not in self._approaches:
            self._approaches.append(facts.approach)
            del self._approaches[:-TRIED_APPROACHES]
        found = [d.on_step(facts, t) for d in self._detectors]
        if self._armed and facts.pair in self._memory:
            evidence = "repeats a step of a loop seen before the reset"
            found.append(LoopSignal("ReentryMemory", REENTRY_CONFIDENCE, evidence, LoopType.REENTRY, 1, t))
        pressure = max([d.pressure for d in self._detectors])
        return self._conclude(found, facts, facts.pair, t, pressure)

    def _message(self, role: str, content: str, t: float) -> LoopEvent | None:
        if role != "assistant" and stable_hash(content) in self._own:
            return None  # our own nudge fed back to the agent is not a new user turn
        if role == "system":
            return None
        empty = not content.strip()
        key = ""
        if role == "assistant" and not empty and self.policy.peer_rules:
            # Every volatile pattern contains a digit: skip the costly masking when there is none.
            key = stable_hash(mask_volatile(content) if _DIGIT.search(content) else collapse_ws(content))
        if role == "user" and self.policy.user_turn_resets:
            for d in self._detectors:
                if d.turn_scoped:
                    d.clear()
        found = [d.on_message(role, key, empty, t) for d in self._detectors]
        if role != "assistant":
            return self._conclude(found, None, "", t, None)
        # Only the message rules saw this message, so only their pressure is current.
        pressure = max((d.pressure for d in self._detectors if d.watches_messages), default=0.0)
        return self._conclude(found, None, f"message:{key}", t, pressure)

    def _conclude(
        self,
        found: list[LoopSignal | None] | tuple[()],
        facts: StepFacts | None,
        fingerprint: str,
        t: float,
        pressure: float | None,
    ) -> LoopEvent | None:
        """Turn the signals of one item into an event, or (``pressure`` not ``None``: the agent acted
        and did not loop) let the evidence fade."""
        signals = tuple(s for s in found if s is not None)
        if signals:
            return self._event(signals, facts, fingerprint)
        if pressure is not None:
            self._risk = max(self._risk * self.policy.risk_decay, PARTIAL_RISK_CAP * min(1.0, pressure))
            self._clean += 1
            if self._ordinal and self._clean >= self.policy.episode_close_after:
                self._ordinal = 0
                self._level = Escalation.NONE
        return None

    def _event(self, signals: tuple[LoopSignal, ...], facts: StepFacts | None, fingerprint: str) -> LoopEvent:
        policy = self.policy
        primary = max(signals, key=lambda s: s.confidence)  # max() keeps the first of equals
        combined = combined_confidence(signals)
        repeats = max(s.repeat_count for s in signals)
        ordinal = self._ordinal + 1
        if facts is not None:
            if any(s.loop_type is LoopType.REENTRY for s in signals):
                ordinal = max(ordinal, self._memory[fingerprint] + 1)
            self._memory[fingerprint] = max(ordinal, self._memory.pop(fingerprint, 0))
            while len(self._memory) > policy.memory_size:
                del self._memory[next(iter(self._memory))]
        level = (
            Escalation.STOP
            if ordinal >= policy.stop_at
            else Escalation.REPLAN
            if ordinal >= policy.replan_at
            else Escalation.NUDGE
        )
        self._ordinal, self._level, self._clean = ordinal, level, 0
        low, high = RISK_BANDS[level]
        self._risk = max(self._risk, low + (high - low) * combined)
        told = next(s for kind in _MESSAGES for s in signals if s.loop_type is kind)
        n = told.repeat_count + (1 if told.loop_type is LoopType.SEMANTIC_REPEAT else 0)
        label = facts.label if facts is not None else "step"
        text = _MESSAGES[told.loop_type].format(tool=label, n=n, evidence=told.evidence)
        message = text + _SUFFIX[level]
        self._own.append(stable_hash(message))
        event = LoopEvent(
            primary.loop_type,
            signals,
            combined,
            tuple(self._approaches),
            recommend_action(primary.loop_type, combined, repeats),
            self._step_number,
            level,
            message,
            fingerprint,
            ordinal,
            self._risk,
        )
        self._history.append(event)
        self._total_loops += 1
        return event

    # -- snapshot ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state as a JSON-able dict (see :meth:`restore`)."""
        data = _snapshot.header(self.KIND, 1)
        data.update(
            policy=self.policy.to_dict(),
            step_number=self._step_number,
            total_loops=self._total_loops,
            history=[e.to_dict() for e in self._history],
            time=self._time,
            risk=self._risk,
            level=self._level.value,
            ordinal=self._ordinal,
            clean=self._clean,
            memory=[[k, v] for k, v in self._memory.items()],
            armed=self._armed,
            approaches=list(self._approaches),
            own=list(self._own),
            detectors=[d.snapshot() for d in self._detectors],
        )
        return data

    @classmethod
    def restore(cls, data: object) -> Self:
        """Rebuild a detector from :meth:`snapshot`; continuing it gives the same results as the
        original would have.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        kind = cls.KIND
        snap = _snapshot.check_header(data, kind, (1,))
        get = _snapshot.field
        try:
            policy = LoopPolicy.from_dict(get(snap, "policy", dict, kind))
        except ConfigurationError as exc:
            raise SnapshotError(f"{kind} snapshot has an invalid policy: {exc}") from exc
        obj = cls(profile=policy)
        detectors = get(snap, "detectors", list, kind)
        if len(detectors) != len(obj._detectors):
            raise SnapshotError(
                f"{kind} snapshot has {len(detectors)} detectors, the policy needs {len(obj._detectors)}"
            )
        obj._detectors = [type(d).restore(s) for d, s in zip(obj._detectors, detectors, strict=True)]
        obj._history.extend(LoopEvent.from_dict(e) for e in get(snap, "history", list, kind))
        obj._step_number = get(snap, "step_number", int, kind)
        obj._total_loops = get(snap, "total_loops", int, kind)
        obj._time = get(snap, "time", float, kind)
        obj._risk = get(snap, "risk", float, kind)
        obj._ordinal = get(snap, "ordinal", int, kind)
        obj._clean = get(snap, "clean", int, kind)
        obj._armed = get(snap, "armed", bool, kind)
        try:
            obj._level = Escalation(get(snap, "level", str, kind))
            obj._memory = {str(k): int(v) for k, v in get(snap, "memory", list, kind)}
            obj._approaches = [str(a) for a in get(snap, "approaches", list, kind)]
            obj._own.extend(str(h) for h in get(snap, "own", list, kind))
        except (ValueError, TypeError) as exc:
            raise SnapshotError(f"{kind} snapshot is malformed: {exc}") from exc
        return obj


def _validate_step(step: Step) -> None:
    """Steps built without :meth:`Step.of` are not validated; check what the detectors rely on."""
    for name in ("tool", "description", "output"):
        if not isinstance(getattr(step, name), str):
            raise InvalidInputError(f"must be a string, got {type(getattr(step, name)).__name__}", field=name)
    if step.error is not None and not isinstance(step.error, str):
        raise InvalidInputError("must be a string or None", field="error")
    if not isinstance(step.args, Mapping):
        raise InvalidInputError(f"must be an object, got {type(step.args).__name__}", field="args")
    if step.exit_code is not None and (
        isinstance(step.exit_code, bool) or not isinstance(step.exit_code, int)
    ):
        raise InvalidInputError("must be an integer or None", field="exit_code")
