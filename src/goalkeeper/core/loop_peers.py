"""The peer rules: loop patterns other agent frameworks detect, as :class:`~.loop_rules.Detector` s.

OpenHands' stuck detector gives :class:`ActionObservationRule`, :class:`ActionErrorRule`,
:class:`AlternationRule`, :class:`MonologueRule`, :class:`EmptyResponseRule` and
:class:`CompressionRule`; Gemini CLI's tool-call loop gives :class:`ToolCallStreakRule`.
:class:`~goalkeeper.core.loops.MultiResolutionLoopDetector` runs them next to the four reference
detectors of :mod:`~goalkeeper.core.loop_rules` when the policy enables ``peer_rules``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from .loop_keys import StepFacts
from .loop_rules import Detector, LoopSignal, LoopType, _positive

__all__ = [
    "ActionErrorRule",
    "ActionObservationRule",
    "AlternationRule",
    "CompressionRule",
    "EmptyResponseRule",
    "MonologueRule",
    "ToolCallStreakRule",
]


class _Streak(Detector):
    """A run of consecutive steps sharing a key; subclasses choose the key."""

    state: ClassVar[tuple[str, ...]] = ("_last", "_count")
    initial: ClassVar[Mapping[str, Any]] = {"_last": None, "_count": 0}
    _last: str | None = None
    _count = 0
    label: ClassVar[str]

    def __init__(self, threshold: int) -> None:
        self.threshold = _positive(f"{type(self).__name__} threshold", threshold, 2)

    def _key(self, facts: StepFacts) -> str | None:
        raise NotImplementedError

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        key = self._key(facts)
        self._count = 0 if key is None else self._count + 1 if key == self._last else 1
        self._last = key
        return self._check(now, facts.label)

    def _check(self, now: float, label: str) -> LoopSignal | None:
        if self._count < self.threshold:
            self.pressure = self._streak_pressure(self._count)
            return None
        return self._signal(self._count, f"{self._count} consecutive {self.label} ({label})", now)


class ActionObservationRule(_Streak):
    """OpenHands rule 1: the same action with the same observation ``threshold`` (4) times in a row.
    Confidence ``0.6 + 0.1 * (count - threshold)``."""

    loop_type = LoopType.REPEATING_ACTION_OBSERVATION
    base = 0.6
    step = 0.1
    label = "identical steps with identical results"

    def __init__(self, threshold: int = 4) -> None:
        super().__init__(threshold)

    def _key(self, facts: StepFacts) -> str | None:
        return facts.pair


class ActionErrorRule(_Streak):
    """OpenHands rule 2: the same action failing ``threshold`` (3) times in a row, whatever the error
    text says. Confidence ``0.6 + 0.1 * (count - threshold)``."""

    loop_type = LoopType.REPEATING_ACTION_ERROR
    base = 0.6
    step = 0.1
    label = "failures of the same call"

    def __init__(self, threshold: int = 3) -> None:
        super().__init__(threshold)

    def _key(self, facts: StepFacts) -> str | None:
        return facts.action if facts.failed else None


class ToolCallStreakRule(_Streak):
    """Gemini CLI: ``threshold`` (5) consecutive identical calls.

    Confidence ``0.6 + 0.1 * (count - threshold)``. With ``progress_aware`` (goalkeeper) a call
    counts only if its result already came back earlier in the streak: polling a job whose status
    changes is progress, while a result that flaps between known values is not. The remembered
    results are capped at 32.
    """

    loop_type = LoopType.TOOL_CALL_STREAK
    base = 0.6
    step = 0.1
    params = ("threshold", "progress_aware")
    state = ("_last", "_count", "_seen")
    label = "identical calls"

    def __init__(self, threshold: int = 5, progress_aware: bool = False) -> None:
        super().__init__(threshold)
        self.progress_aware = bool(progress_aware)
        self._seen: deque[str] = deque(maxlen=32)

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        if facts.action != self._last:
            self._last, self._count = facts.action, 1
            self._seen.clear()
        elif not self.progress_aware or facts.observation in self._seen:
            self._count += 1
        if facts.observation not in self._seen:
            self._seen.append(facts.observation)
        return self._check(now, facts.label)


class AlternationRule(Detector):
    """OpenHands rule 4: two different steps (action and result) alternating for ``threshold`` (3)
    cycles, i.e. six events A B A B A B. Confidence ``0.6 + 0.1 * (cycles - threshold)``."""

    loop_type = LoopType.ALTERNATING_PATTERN
    base = 0.6
    step = 0.1
    state = ("_prev", "_prev2", "_run")
    initial: ClassVar[Mapping[str, Any]] = {"_prev": None, "_prev2": None, "_run": 0}
    _prev: str | None = None
    _prev2: str | None = None
    _run = 0  # length of the alternating tail

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = _positive("alternation_cycles", threshold, 2)

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        key = facts.pair
        if key == self._prev:
            self._run = 1
        elif key == self._prev2:
            self._run += 1
        else:
            self._run = 2 if self._prev is not None else 1
        self._prev2, self._prev = self._prev, key
        cycles = self._run // 2
        if cycles < self.threshold:
            self.pressure = max(0.0, (self._run - 2) / (2 * self.threshold - 2))
            return None
        return self._signal(cycles, f"two steps alternating for {cycles} cycles ({facts.label})", now)


class _MessageStreak(Detector):
    """A run of chat messages or markers; any step breaks it."""

    turn_scoped = False
    watches_messages = True
    state = ("_last", "_count")
    initial: ClassVar[Mapping[str, Any]] = {"_last": None, "_count": 0}
    _last: str | None = None
    _count = 0
    evidence: ClassVar[str]

    def __init__(self, threshold: int) -> None:
        self.threshold = _positive(f"{type(self).__name__} threshold", threshold, 2)

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        self._last, self._count, self.pressure = None, 0, 0.0  # cheaper than clear() on the hot path
        return None

    def _bump(self, key: str, now: float) -> LoopSignal | None:
        self._count = self._count + 1 if key == self._last else 1
        self._last = key
        if self._count < self.threshold:
            self.pressure = self._streak_pressure(self._count)
            return None
        return self._signal(self._count, self.evidence.format(n=self._count), now)


class MonologueRule(_MessageStreak):
    """OpenHands rule 3: ``threshold`` (3) identical assistant messages with no step between them.
    A user message also breaks the run: a canned reply to several different requests is not a loop.
    Confidence ``0.5 + 0.15 * (count - threshold)``."""

    loop_type = LoopType.MONOLOGUE
    base = 0.5
    step = 0.15
    evidence = "the same assistant message {n} times with no action between"

    def __init__(self, threshold: int = 3) -> None:
        super().__init__(threshold)

    def on_message(self, role: str, key: str, empty: bool, now: float) -> LoopSignal | None:
        if role != "assistant" or empty:
            self.clear()
            return None
        return self._bump(key, now)


class EmptyResponseRule(_MessageStreak):
    """OpenHands rule 6: ``threshold`` (3) consecutive empty (or whitespace-only) assistant messages.
    User messages do not break the run; a step, a compression or a real reply does.
    Confidence ``0.5 + 0.15 * (count - threshold)``."""

    loop_type = LoopType.EMPTY_RESPONSE
    base = 0.5
    step = 0.15
    evidence = "{n} empty assistant responses in a row"

    def __init__(self, threshold: int = 3) -> None:
        super().__init__(threshold)

    def on_message(self, role: str, key: str, empty: bool, now: float) -> LoopSignal | None:
        if role != "assistant":
            return None
        if not empty:
            self.clear()
            return None
        return self._bump("", now)

    def on_compressed(self, now: float) -> LoopSignal | None:
        self.clear()
        return None


class CompressionRule(_MessageStreak):
    """OpenHands rule 5: context compressions back to back, ``threshold`` (2) with nothing but user
    messages between them. Confidence ``0.5 + 0.15 * (count - threshold)``."""

    loop_type = LoopType.CONTEXT_WINDOW
    base = 0.5
    step = 0.15
    evidence = "{n} context compressions back to back"

    def __init__(self, threshold: int = 2) -> None:
        super().__init__(threshold)

    def on_message(self, role: str, key: str, empty: bool, now: float) -> LoopSignal | None:
        if role == "assistant":
            self.clear()
        return None

    def on_compressed(self, now: float) -> LoopSignal | None:
        return self._bump("", now)
