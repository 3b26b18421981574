"""The individual loop detectors that :class:`~goalkeeper.core.loops.MultiResolutionLoopDetector` fuses.

Each detector watches one pattern over a bounded window and returns a :class:`LoopSignal` when the
pattern is present. There are two families:

* the four **reference** detectors of corteX's ``MultiResolutionLoopDetector``:
  :class:`ExactHashDetector`, :class:`SemanticJaccardDetector`, :class:`OscillationDetector` and
  :class:`DeadEndDetector`;
* the **peer rules** of other agent frameworks (OpenHands' stuck detector, Gemini CLI's tool-call
  loop): :class:`ActionObservationRule`, :class:`ActionErrorRule`, :class:`AlternationRule`,
  :class:`MonologueRule`, :class:`EmptyResponseRule`, :class:`CompressionRule` and
  :class:`ToolCallStreakRule`.

Detectors never see raw steps: they see :class:`StepFacts`, the keys of one step computed once by
:func:`step_facts` (goalkeeper keying: volatile-insensitive action and observation keys) or
:func:`reference_facts` (the reference keying: a hash of ``description|output``). Every detector
also sets :attr:`Detector.pressure` in [0, 1) after each step: how close it came to firing, which
the fusion turns into a small rise of ``loop_risk`` below the nudge level.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, NamedTuple, Self

from ..errors import ConfigurationError, SnapshotError
from . import _snapshot
from .steps import Step
from .text import collapse_ws, jaccard, mask_volatile, stable_hash, tokens

__all__ = [
    "ActionErrorRule",
    "ActionObservationRule",
    "AlternationRule",
    "CompressionRule",
    "DeadEndDetector",
    "Detector",
    "EmptyResponseRule",
    "ExactHashDetector",
    "LoopSignal",
    "LoopType",
    "MonologueRule",
    "OscillationDetector",
    "SemanticJaccardDetector",
    "StepFacts",
    "ToolCallStreakRule",
    "reference_facts",
    "step_facts",
]


class LoopType(StrEnum):
    """What kind of loop a signal reports (reference values first, then one per peer rule)."""

    EXACT_REPEAT = "exact_repeat"
    SEMANTIC_REPEAT = "semantic_repeat"
    OSCILLATION = "oscillation"
    DEAD_END = "dead_end"
    REPEATING_ACTION_OBSERVATION = "repeating_action_observation"
    REPEATING_ACTION_ERROR = "repeating_action_error"
    ALTERNATING_PATTERN = "repeating_action_observation_pattern"
    MONOLOGUE = "monologue"
    EMPTY_RESPONSE = "empty_response_loop"
    CONTEXT_WINDOW = "context_window_error"
    TOOL_CALL_STREAK = "consecutive_identical_tool_calls"
    REENTRY = "loop_reentry"


@dataclass(frozen=True, slots=True)
class LoopSignal:
    """One detector's finding.

    Attributes:
        detector_name: the detector that fired (``"ExactHashDetector"``...).
        confidence: how sure the detector is, in [0, 1].
        evidence: a short human-readable reason.
        loop_type: the pattern found.
        repeat_count: how many repetitions (or cycles) the detector counted.
        timestamp: when it fired (seconds; the ``now`` of the call, else the last known time).
    """

    detector_name: str
    confidence: float
    evidence: str
    loop_type: LoopType
    repeat_count: int
    timestamp: float

    def to_dict(self) -> dict[str, Any]:
        """Return the signal as a JSON-able dict."""
        return {
            "detector_name": self.detector_name,
            "confidence": self.confidence,
            "evidence": self.evidence,
            "loop_type": self.loop_type.value,
            "repeat_count": self.repeat_count,
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopSignal:
        """Rebuild a signal written by :meth:`to_dict`; raises :class:`SnapshotError` if malformed."""
        kind = "LoopSignal"
        try:
            loop_type = LoopType(_snapshot.field(data, "loop_type", str, kind))
        except ValueError as exc:
            raise SnapshotError(f"LoopSignal has an unknown loop_type: {exc}") from exc
        return cls(
            _snapshot.field(data, "detector_name", str, kind),
            _snapshot.field(data, "confidence", float, kind),
            _snapshot.field(data, "evidence", str, kind),
            loop_type,
            _snapshot.field(data, "repeat_count", int, kind),
            _snapshot.field(data, "timestamp", float, kind),
        )


class StepFacts(NamedTuple):
    """The keys of one step that the detectors compare, computed once per step.

    Attributes:
        label: tool name (or action type) shown in messages.
        action: identity of the action alone (goalkeeper: ``Step.action_key``; reference: action type).
        pair: identity of action *and* result (goalkeeper: hash of action and observation keys;
            reference: SHA-256 of the normalised ``description|output``, 16 hex chars).
        cycle: what the oscillation detector sequences (goalkeeper: ``pair``; reference: action type).
        family: near-duplicate family: steps are compared by Jaccard only within one family
            (goalkeeper: tool plus arguments with free-text values blanked; reference: ``""``).
        tokens: token set compared by Jaccard.
        echo: what near-duplicates must share as result (goalkeeper: observation with the step's
            own free text blanked out; reference: ``""``, i.e. no requirement).
        error: normalised head of the error text, or ``None`` when the step has no error text.
        failed: the step failed (error or non-zero exit code).
        observation: identity of the result alone (``Step.observation_key``; reference: ``""``).
        approach: short text recorded in ``tried_approaches``.
    """

    label: str
    action: str
    pair: str
    cycle: str
    family: str
    tokens: frozenset[str]
    echo: str
    error: str | None
    failed: bool
    observation: str
    approach: str


#: Error heads compared by the dead-end detector are this long (the reference's 60 characters).
ERROR_HEAD_CHARS = 60
#: How much of a step's output the reference keying tokenises (bounds the per-step cost).
REFERENCE_TOKEN_CHARS = 1000
#: How much of the output the echo-insensitive observation looks at (the observation key's span).
_ECHO_CHARS = 2500
_APPROACH_CHARS = 120
# Argument keys that carry the agent's reasoning. Step.action_key drops them so that varying thought
# text cannot hide a loop; a tool whose *only* arguments are reasoning (tau-bench's ``think``) would
# then collapse into one action, so for such tools the text is the action.
_THOUGHT_KEYS = frozenset({"thought", "thoughts", "reasoning", "rationale"})
_TEXT_SLOT = "\x00text"
_NUMBERED = re.compile(r"[a-z_]*[0-9][a-z0-9_]*")


def _error_head(error: str) -> str:
    return collapse_ws(mask_volatile(error).lower())[:ERROR_HEAD_CHARS]


def _blank_free_text(value: Any, texts: list[str]) -> Any:
    """Replace every string containing whitespace (free text) by a placeholder, collecting them."""
    if isinstance(value, dict):
        return {k: _blank_free_text(v, texts) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_free_text(v, texts) for v in value]
    if isinstance(value, str) and " " in value:
        texts.append(value)
        return _TEXT_SLOT
    return value


def _echo_key(step: Step, texts: list[str], observation: str) -> str:
    """The observation with the step's own free text blanked out, so that a reworded query whose
    error message quotes the query still counts as the same result. Falls back to ``observation``
    when no free text is echoed (the common case, which then costs one substring scan)."""
    raw = f"{step.output[:_ECHO_CHARS]}\x1f{step.error or ''}"
    low = raw.lower()
    echoed = [t.lower() for t in texts if t.lower() in low]
    if not echoed:
        return observation
    text = mask_volatile(raw).lower()
    for t in sorted(echoed, key=len, reverse=True):
        text = text.replace(t, "<echo>")
    return stable_hash(f"{text}\x1f{step.exit_code}")


def step_facts(step: Step) -> StepFacts:
    """The goalkeeper keying of ``step``: built on ``Step.action_key`` / ``Step.observation_key``.

    Volatile details (ids, timestamps, whitespace, key order, thought text) do not change the keys;
    different business objects (another reservation id, another file) do.
    """
    action = step.action_key
    tool = step.tool
    if step.args and action.endswith(":{}") and all(str(k).lower() in _THOUGHT_KEYS for k in step.args):
        action = action[:-2] + mask_volatile(json.dumps(step.args, sort_keys=True, default=str))
    observation = step.observation_key
    pair = stable_hash(f"{action}\x1f{observation}")
    texts: list[str] = []
    if not tool and not step.args:
        family = "desc:"
        texts.append(action[5:])
    else:
        canonical = action[len(tool) + 1 :]
        family = action
        # Canonical JSON has no whitespace outside string values, so a space means free text.
        if " " in canonical:
            try:
                skeleton = _blank_free_text(json.loads(canonical), texts)
                family = f"{tool}:{json.dumps(skeleton, sort_keys=True, separators=(',', ':'))}"
            except ValueError:  # not JSON (the thought-only form above): compare it as free text
                family, texts = f"{tool}:", [canonical]
    toks = frozenset({f"\x00{tool}"})
    if texts:
        joined = " ".join(texts)
        # tokens() drops short words and numbers, but "order A1" and "order B2", "page 2" and
        # "page 3" are different objects, not rewordings: words with a digit are kept as well.
        toks = toks | tokens(joined) | frozenset(_NUMBERED.findall(joined.lower()))
    echo = _echo_key(step, texts, observation) if texts else observation
    error = _error_head(step.error) if step.error else None
    return StepFacts(
        tool or "step", action, pair, pair, family, toks, echo, error, step.failed, observation,
        action[:_APPROACH_CHARS],
    )  # fmt: skip


def reference_facts(action_type: str, description: str, output: str, error: str | None) -> StepFacts:
    """The reference keying: SHA-256 of ``"description|output"`` (lower-cased, whitespace collapsed)
    truncated to 16 hex chars, token set of description and output, oscillation on ``action_type``."""
    text = f"{collapse_ws(description.lower())}|{collapse_ws(output.lower())}"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    toks = tokens(f"{description} {output[:REFERENCE_TOKEN_CHARS]}")
    err = collapse_ws(error.lower())[:ERROR_HEAD_CHARS] if error else None
    approach = (description or action_type)[:_APPROACH_CHARS]
    return StepFacts(
        action_type or "step", action_type, digest, action_type, "", toks, "", err, bool(error), "", approach
    )


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------


def _positive(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class Detector:
    """Base of every detector: the step/message hooks, the signal helper and snapshot/restore.

    Subclasses set :attr:`loop_type`, :attr:`base` and :attr:`step` (confidence is
    ``base + step * (count - threshold)`` clipped to [0, 1]), list their constructor parameters in
    :attr:`params` and their state attributes in :attr:`state` (scalars with their initial value as
    a class attribute; containers are emptied in place).
    """

    loop_type: ClassVar[LoopType]
    base: ClassVar[float]
    step: ClassVar[float]
    params: ClassVar[tuple[str, ...]] = ("threshold",)
    state: ClassVar[tuple[str, ...]] = ()
    #: Forgotten when a new user turn starts (step windows); message rules keep their runs.
    turn_scoped: ClassVar[bool] = True
    #: Watches chat messages (so its pressure is current after a message), not steps.
    watches_messages: ClassVar[bool] = False
    threshold: float
    #: How close the last update came to firing, in [0, 1); 0 when it fired or saw nothing.
    pressure: float = 0.0

    @property
    def name(self) -> str:
        """The detector's name, as recorded in :attr:`LoopSignal.detector_name`."""
        return type(self).__name__

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        """Feed one step; return a signal when the pattern is present (default: no effect)."""
        return None

    def on_message(self, role: str, key: str, empty: bool, now: float) -> LoopSignal | None:
        """Feed one chat message (``key`` is its volatile-insensitive identity); default: no effect."""
        return None

    def on_compressed(self, now: float) -> LoopSignal | None:
        """Feed one context-compression marker; default: no effect."""
        return None

    def clear(self) -> None:
        """Forget the window (called on a new user turn and on ``reset()``); parameters stay."""
        for attr in self.state:
            value = getattr(self, attr)
            if isinstance(value, (deque, dict)):
                value.clear()
            else:  # scalars have their initial value as a class attribute
                setattr(self, attr, getattr(type(self), attr))
        self._rebuild()
        self.pressure = 0.0

    def _signal(self, count: int, evidence: str, now: float, confidence: float | None = None) -> LoopSignal:
        self.pressure = 0.0
        if confidence is None:
            confidence = self.base + self.step * (count - self.threshold)
        return LoopSignal(self.name, min(1.0, max(0.0, confidence)), evidence, self.loop_type, count, now)

    def _streak_pressure(self, count: int) -> float:
        return (count - 1) / (self.threshold - 1) if count > 1 else 0.0

    def snapshot(self) -> dict[str, Any]:
        """Return the detector's parameters and window as a JSON-able dict."""
        data = _snapshot.header(self.name, 1)
        for attr in self.params:
            value = getattr(self, attr)
            data[attr] = list(value) if isinstance(value, tuple) else value
        data["state"] = {attr: _to_json(getattr(self, attr)) for attr in self.state}
        return data

    @classmethod
    def restore(cls, data: object) -> Self:
        """Rebuild a detector from :meth:`snapshot`; raises :class:`SnapshotError` if malformed."""
        kind = cls.__name__
        snap = _snapshot.check_header(data, kind, (1,))
        missing = [p for p in (*cls.params, "state") if p not in snap]
        if missing:
            raise SnapshotError(f"{kind} snapshot is missing field {missing[0]!r}")
        state = _snapshot.field(snap, "state", dict, kind)
        try:
            # The constructor validates the parameters; JSON keeps ints and floats apart.
            obj = cls(**{p: tuple(snap[p]) if isinstance(snap[p], list) else snap[p] for p in cls.params})
            for attr in cls.state:
                if attr not in state:
                    raise SnapshotError(f"{kind} snapshot state is missing {attr!r}")
                current = getattr(obj, attr)
                setattr(obj, attr, _from_json(current, state[attr]))
            obj._rebuild()
        except (ConfigurationError, TypeError, ValueError, KeyError) as exc:
            raise SnapshotError(f"{kind} snapshot is malformed: {exc}") from exc
        return obj

    def _rebuild(self) -> None:
        """Recompute derived indexes after a restore (default: nothing derived)."""


def _to_json(value: Any) -> Any:
    if isinstance(value, deque):
        return [_to_json(v) for v in value]
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _from_json(template: Any, value: Any) -> Any:
    """Convert ``value`` (from JSON) to the type of the attribute it replaces."""
    if isinstance(template, deque):
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return deque((_entry(v) for v in value), maxlen=template.maxlen)
    if isinstance(template, dict):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return {str(k): _entry(v) for k, v in value.items()}
    if template is None or isinstance(value, type(template)):
        if value is not None and not isinstance(value, (str, int, float)):
            raise TypeError(f"unexpected value {value!r}")
        return value
    raise TypeError(f"expected {type(template).__name__}, got {type(value).__name__}")


def _entry(value: Any) -> Any:
    # Window entries are scalars or short lists of scalars; lists inside entries are token sets.
    if isinstance(value, list):
        return tuple(frozenset(v) if isinstance(v, list) else v for v in value)
    if value is not None and not isinstance(value, (str, int, float)):
        raise TypeError(f"unexpected entry {value!r}")
    return value


class _Counted(Detector):
    """A window of keys with a running count per key, so a lookup never rescans the window."""

    _window: deque[Any]
    _counts: dict[str, int]

    def _push(self, key: str | None) -> int:
        window = self._window
        if len(window) == window.maxlen:
            old = window[0]
            if old is not None:
                left = self._counts[old] - 1
                if left:
                    self._counts[old] = left
                else:
                    del self._counts[old]
                    self._forget(old)
        window.append(key)
        if key is None:
            return 0
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        return count

    def _forget(self, key: str) -> None:
        """A key left the window entirely."""

    def _rebuild(self) -> None:
        self._counts = {}
        for key in self._window:
            if key is not None:
                self._counts[key] = self._counts.get(key, 0) + 1


# ---------------------------------------------------------------------------------------------
# The four reference detectors
# ---------------------------------------------------------------------------------------------


class ExactHashDetector(_Counted):
    """Same step (``StepFacts.pair``) seen ``threshold`` (3) times in the last ``window`` (500) steps.

    Confidence ``0.5 + 0.15 * (count - threshold)``. With ``progress_reset`` set (goalkeeper), a
    repeat separated from the previous one by at least that many *new* steps (pairs not in the
    window: progress) starts counting again from 1, so re-reading a file after real work is not a loop.
    """

    loop_type = LoopType.EXACT_REPEAT
    base, step = 0.5, 0.15
    params = ("threshold", "window", "progress_reset")
    state = ("_window", "_runs", "_progress")
    _progress = 0  # new steps seen so far

    def __init__(self, threshold: int = 3, window: int = 500, progress_reset: int | None = None) -> None:
        self.threshold = _positive("exact_threshold", threshold, 2)
        self.window = _positive("exact_window", window)
        self.progress_reset = None if progress_reset is None else _positive("progress_reset", progress_reset)
        self._window: deque[str | None] = deque(maxlen=self.window)
        self._counts: dict[str, int] = {}
        self._runs: dict[str, tuple[int, int]] = {}  # key -> (count since progress, progress mark)

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        key = facts.pair
        if key not in self._counts:
            self._progress += 1
        count = self._push(key)
        if self.progress_reset is not None:
            run, mark = self._runs.get(key, (0, self._progress))
            run = 1 if self._progress - mark >= self.progress_reset else run + 1
            self._runs[key] = (run, self._progress)
            count = min(count, run)
        if count < self.threshold:
            self.pressure = self._streak_pressure(count)
            return None
        return self._signal(count, f"same step seen {count} times in the last {self.window} steps", now)

    def _forget(self, key: str) -> None:
        self._runs.pop(key, None)


class SemanticJaccardDetector(Detector):
    """At least ``min_similar`` (2) of the last ``window`` (30) steps are near-duplicates of this one:
    same family and echo, token-set Jaccard above ``threshold`` (0.65).

    Confidence ``0.4 + 0.2 * similar_count``. With ``progress_aware`` (goalkeeper) only the
    near-duplicates since the last *progress* step count, a progress step being one with no
    near-duplicate in the window: an edit, a test run with a new result, the next edit of the same
    file is not a rewording loop, while rewordings that keep returning the same result are.
    """

    loop_type = LoopType.SEMANTIC_REPEAT
    base, step = 0.4, 0.2
    params = ("threshold", "min_similar", "window", "progress_aware")
    state = ("_window", "_seq", "_since")
    _seq = 0  # sequence number of the next step
    _since = 0  # sequence number of the last progress step

    def __init__(
        self, threshold: float = 0.65, min_similar: int = 2, window: int = 30, progress_aware: bool = False
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise ConfigurationError(f"jaccard_threshold must be in (0, 1), got {threshold!r}")
        self.threshold = float(threshold)
        self.min_similar = _positive("semantic_min_similar", min_similar)
        self.window = _positive("semantic_window", window)
        self.progress_aware = bool(progress_aware)
        self._window: deque[tuple[str, str, frozenset[str], int]] = deque(maxlen=self.window)
        self._families: dict[str, int] = {}  # family -> entries in the window, to skip the scan

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        family, echo, toks = facts.family, facts.echo, facts.tokens
        size = len(toks)
        threshold = self.threshold
        similar = recent = 0
        if family in self._families:  # most steps start a family of their own: no scan
            since = self._since
            for f, e, t, seq in self._window:
                if f != family or e != echo or not size:
                    continue
                # Equal sets are the common case in a loop; otherwise Jaccard can exceed the
                # threshold only if the size ratio does, which is cheaper to check first.
                if t != toks:
                    other = len(t)
                    if min(size, other) <= threshold * max(size, other) or jaccard(t, toks) <= threshold:
                        continue
                similar += 1
                recent += seq >= since
        if self.progress_aware:
            if not similar:
                self._since = self._seq
            similar = recent
        window, families = self._window, self._families
        if len(window) == window.maxlen:
            old = window[0][0]
            families[old] -= 1
            if not families[old]:
                del families[old]
        window.append((family, echo, toks, self._seq))
        families[family] = families.get(family, 0) + 1
        self._seq += 1
        if similar < self.min_similar:
            self.pressure = similar / self.min_similar
            return None
        evidence = f"{similar} of the last {self.window} steps are near-duplicates (Jaccard > {threshold})"
        return self._signal(similar, evidence, now, self.base + self.step * similar)

    def _rebuild(self) -> None:
        self._families = {}
        for entry in self._window:
            self._families[entry[0]] = self._families.get(entry[0], 0) + 1


class OscillationDetector(Detector):
    """The last steps repeat a cycle of period 2, 3 or 4 at least ``threshold`` (2) times, within a
    window of 20 steps. Confidence ``0.5 + 0.15 * (cycles - threshold)``.

    A cycle needs at least two different steps in it: four identical steps are a repeat, not an
    oscillation. The period with the most cycles wins (the shorter one on a tie).
    """

    loop_type = LoopType.OSCILLATION
    base, step = 0.5, 0.15
    params = ("threshold", "periods", "window")
    state = ("_window",)

    def __init__(self, threshold: int = 2, periods: Iterable[int] = (2, 3, 4), window: int = 20) -> None:
        self.threshold = _positive("oscillation_min_cycles", threshold, 2)
        self.periods = tuple(sorted(_positive("oscillation_periods", p, 2) for p in periods))
        self.window = _positive("oscillation_window", window)
        if not self.periods or self.periods[-1] * self.threshold > self.window:
            raise ConfigurationError("oscillation_window must hold min_cycles cycles of the longest period")
        self._window: deque[tuple[str, str]] = deque(maxlen=self.window)

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        window = self._window
        window.append((facts.cycle, facts.label))
        n = len(window)
        best, best_period = 0, 0
        last = window[-1][0]
        for p in self.periods:
            if n < p * self.threshold:
                break  # periods are sorted: the longer ones do not fit either
            if window[-1 - p][0] != last or all(window[-1 - i][0] == last for i in range(1, p)):
                continue  # no cycle of this period, or a plain repeat (one step, not a cycle)
            j = n - 1
            while j >= p and window[j][0] == window[j - p][0]:
                j -= 1
            cycles = (n - j - 1 + p) // p
            if cycles > best:
                best, best_period = cycles, p
        if best < self.threshold:
            return None
        labels = [window[i][1] for i in range(n - best_period, n)]
        evidence = f"cycle of {best_period} steps ({', '.join(labels)}) repeated {best} times"
        return self._signal(best, evidence, now)


class DeadEndDetector(_Counted):
    """The same error (first 60 characters, normalised) ``threshold`` (3) times within ``window`` (15).

    Confidence ``0.6 + 0.1 * (count - threshold)``. With ``counts_steps`` (goalkeeper) the window is
    the last 15 *steps*; without it (reference) it is the last 15 *errors*, however far apart.
    """

    loop_type = LoopType.DEAD_END
    base, step = 0.6, 0.1
    # An error is never progress: the same failure after the user's next message still counts.
    turn_scoped = False
    params = ("threshold", "window", "counts_steps")
    state = ("_window",)

    def __init__(self, threshold: int = 3, window: int = 15, counts_steps: bool = False) -> None:
        self.threshold = _positive("dead_end_threshold", threshold, 2)
        self.window = _positive("dead_end_window", window)
        self.counts_steps = bool(counts_steps)
        self._window: deque[str | None] = deque(maxlen=self.window)
        self._counts: dict[str, int] = {}

    def on_step(self, facts: StepFacts, now: float) -> LoopSignal | None:
        error = facts.error
        if error is None and not self.counts_steps:
            self.pressure = 0.0
            return None
        count = self._push(error)
        if count < self.threshold:
            self.pressure = self._streak_pressure(count)
            return None
        return self._signal(count, f"same error {count} times: {error!r}", now)


# ---------------------------------------------------------------------------------------------
# Peer rules
# ---------------------------------------------------------------------------------------------


class _Streak(Detector):
    """A run of consecutive steps sharing a key; subclasses choose the key."""

    state: ClassVar[tuple[str, ...]] = ("_last", "_count")
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
    base, step = 0.6, 0.1
    label = "identical steps with identical results"

    def __init__(self, threshold: int = 4) -> None:
        super().__init__(threshold)

    def _key(self, facts: StepFacts) -> str | None:
        return facts.pair


class ActionErrorRule(_Streak):
    """OpenHands rule 2: the same action failing ``threshold`` (3) times in a row, whatever the error
    text says. Confidence ``0.6 + 0.1 * (count - threshold)``."""

    loop_type = LoopType.REPEATING_ACTION_ERROR
    base, step = 0.6, 0.1
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
    base, step = 0.6, 0.1
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
    base, step = 0.6, 0.1
    state = ("_prev", "_prev2", "_run")
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
    base, step = 0.5, 0.15
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
    base, step = 0.5, 0.15
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
    base, step = 0.5, 0.15
    evidence = "{n} context compressions back to back"

    def __init__(self, threshold: int = 2) -> None:
        super().__init__(threshold)

    def on_message(self, role: str, key: str, empty: bool, now: float) -> LoopSignal | None:
        if role == "assistant":
            self.clear()
        return None

    def on_compressed(self, now: float) -> LoopSignal | None:
        return self._bump("", now)
