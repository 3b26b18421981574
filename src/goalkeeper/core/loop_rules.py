"""The loop detectors' base class and the four reference detectors.

Each detector watches one pattern over a bounded window and returns a :class:`LoopSignal` when the
pattern is present. This module holds :class:`Detector` (the hooks, the signal helper and
snapshot/restore every detector shares) and the four **reference** detectors of corteX's
``MultiResolutionLoopDetector``: :class:`ExactHashDetector`, :class:`SemanticJaccardDetector`,
:class:`OscillationDetector` and :class:`DeadEndDetector`. The **peer rules** of other agent
frameworks live in :mod:`~goalkeeper.core.loop_peers`;
:class:`~goalkeeper.core.loops.MultiResolutionLoopDetector` fuses them all.

Detectors see :class:`~goalkeeper.core.loop_keys.StepFacts`, the keys of one step computed once.
Every detector also sets :attr:`Detector.pressure` in [0, 1) after each step: how close it came to
firing, which the fusion turns into a small rise of ``loop_risk`` below the nudge level.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Self

from ..errors import ConfigurationError, SnapshotError
from . import _snapshot
from .loop_keys import StepFacts

__all__ = [
    "DeadEndDetector",
    "Detector",
    "ExactHashDetector",
    "LoopSignal",
    "LoopType",
    "OscillationDetector",
    "SemanticJaccardDetector",
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


LOOP_TYPE_TEXT: Mapping[LoopType, str] = {t: t.value for t in LoopType}
LOOP_TYPE_OF: Mapping[str, LoopType] = {t.value: t for t in LoopType}

#: A :class:`LoopSignal` as plain values, in field order with the loop type as its value. Histories
#: keep this form: the garbage collector stops tracking a tuple of plain values.
SignalFlat = tuple[str, float, str, str, int, float]
_SIGNAL_KEYS = ("detector_name", "confidence", "evidence", "loop_type", "repeat_count", "timestamp")


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

    def flat(self) -> SignalFlat:
        """The signal as a tuple of plain values (see :data:`SignalFlat`); :meth:`unflat` inverts it."""
        kind = LOOP_TYPE_TEXT[self.loop_type]
        return (self.detector_name, self.confidence, self.evidence, kind, self.repeat_count, self.timestamp)

    @classmethod
    def unflat(cls, flat: SignalFlat) -> LoopSignal:
        """Inverse of :meth:`flat`."""
        name, confidence, evidence, loop_type, repeat_count, timestamp = flat
        return cls(name, confidence, evidence, LOOP_TYPE_OF[loop_type], repeat_count, timestamp)

    @staticmethod
    def flat_dict(flat: SignalFlat) -> dict[str, Any]:
        """``unflat(flat).to_dict()`` without building the object."""
        return dict(zip(_SIGNAL_KEYS, flat, strict=True))

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
    :attr:`params` and their state attributes in :attr:`state` (containers are emptied in place;
    scalars are reset to their value in :attr:`initial`).
    """

    loop_type: ClassVar[LoopType]
    base: ClassVar[float]
    step: ClassVar[float]
    params: ClassVar[tuple[str, ...]] = ("threshold",)
    state: ClassVar[tuple[str, ...]] = ()
    #: The initial value of every scalar in :attr:`state` (explicit rather than read from the class:
    #: a class compiled with mypyc keeps instance defaults out of the class namespace).
    initial: ClassVar[Mapping[str, Any]] = {}
    #: Forgotten when a new user turn starts (step windows); message rules keep their runs.
    turn_scoped: ClassVar[bool] = True
    #: Watches chat messages (so its pressure is current after a message), not steps.
    watches_messages: ClassVar[bool] = False
    # int for the counting detectors, float for the Jaccard one: mypyc keeps the value as given.
    threshold: int | float
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
            else:
                setattr(self, attr, self.initial[attr])
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


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _to_json(value: Any) -> Any:
    # Exact types first, scalars inline (a snapshot per goal per worker batch serialises every window);
    # subclasses (enum members, named tuples) take the general path below.
    kind = type(value)
    if kind is deque or kind is tuple or kind is list:
        return [v if type(v) in _SCALARS else _to_json(v) for v in value]
    if kind is dict:
        return {k: v if type(v) in _SCALARS else _to_json(v) for k, v in value.items()}
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
    # Window entries are scalars or short lists of scalars; lists inside entries are token sets,
    # kept as sorted tuples of distinct tokens.
    if isinstance(value, list):
        return tuple(tuple(sorted(set(v))) if isinstance(v, list) else v for v in value)
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
    base = 0.5
    step = 0.15
    params = ("threshold", "window", "progress_reset")
    state = ("_window", "_runs", "_progress")
    initial: ClassVar[Mapping[str, Any]] = {"_progress": 0}
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
    base = 0.4
    step = 0.2
    params = ("threshold", "min_similar", "window", "progress_aware")
    state = ("_window", "_seq", "_since")
    initial: ClassVar[Mapping[str, Any]] = {"_seq": 0, "_since": 0}
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
        self._window: deque[tuple[str, str, tuple[str, ...], int]] = deque(maxlen=self.window)
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
                # threshold only if the size ratio does, which is cheaper to check first. ``t`` is
                # a tuple of distinct tokens: |toks & t| is what jaccard() would count.
                other = len(t)
                if other != size or not toks.issuperset(t):
                    if min(size, other) <= threshold * max(size, other):
                        continue
                    inter = len(toks.intersection(t))
                    if inter / (size + other - inter) <= threshold:
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
        # The window keeps each token set as a sorted tuple: the garbage collector stops tracking a
        # tuple of strings (a frozenset stays tracked), and the snapshot writes it as it is.
        window.append((family, echo, tuple(sorted(toks)), self._seq))
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
    base = 0.5
    step = 0.15
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
    base = 0.6
    step = 0.1
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
