"""Goal targets and the strategies that nudge proposed actions toward them.

A goal is a set of :class:`GoalTarget` values (one per metric) parsed from the wire form
``goal_state={"progress": 10}`` plus optional ``directions={"progress": "increase"}``. A target
knows its *satisfying region* (``increase``: at least the target; ``decrease``: at most the target;
``range``: between two bounds), and everything else is measured as the distance to that region:
whether the goal is reached, the trend of two readings and the progress ratio. A target without a
direction is resolved from its baseline (the first reading): below the target means ``increase``,
above means ``decrease``, equal means ``range`` (hold the value). Booleans are conditions, not
quantities: ``{"done": True}`` is reached when ``done`` is measured as ``True`` and is never nudged.

Strategies implement :class:`GoalFeedbackStrategy`. The built-in ones share one algorithm: for
every numeric goal metric, start from the action's own value (else the last measured value, else
leave the key alone) and move ``step`` of the way toward the target, unless the start is already in
the satisfying region. They differ only in the step: :class:`SimpleGoalFeedbackStrategy` 0.5,
:class:`PersonalityGoalFeedbackStrategy` 0.25/0.5/0.75, :class:`AdaptiveGoalFeedbackStrategy`
learned per metric from feedback outcomes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import config_number
from ._snapshot import check_header, header

__all__ = [
    "FEEDBACK_KEY",
    "MAX_MAGNITUDE",
    "PERSONALITY_FACTORS",
    "SIMPLE_STEP",
    "AdaptiveGoalFeedbackStrategy",
    "Direction",
    "FeedbackContext",
    "FeedbackOutcome",
    "GoalFeedbackStrategy",
    "GoalSpec",
    "GoalTarget",
    "LearningGoalFeedbackStrategy",
    "Personality",
    "PersonalityGoalFeedbackStrategy",
    "SimpleGoalFeedbackStrategy",
    "Trend",
    "strategy_from_dict",
]

#: Largest accepted magnitude of a reading, target or tolerance. Differences of two such values stay
#: finite (a float overflows past ~1.8e308), so no distance, gap or nudge can become inf or NaN.
MAX_MAGNITUDE = 1e300
#: Step of :class:`SimpleGoalFeedbackStrategy` (the reference's hard-coded 0.5).
SIMPLE_STEP = 0.5
#: Key under which the loop puts its metadata into every suggestion.
FEEDBACK_KEY = "goal_feedback"
_MAX_DEPTH = 32
_SPEC_KEYS = frozenset({"target", "direction", "tolerance", "min", "max"})


class Direction(StrEnum):
    """Which readings satisfy a numeric goal."""

    INCREASE = "increase"
    DECREASE = "decrease"
    RANGE = "range"


class Trend(StrEnum):
    """How the last reading moved relative to the goal (distance-based)."""

    STABLE = "stable"
    TOWARD_GOAL = "toward_goal"
    AWAY_FROM_GOAL = "away_from_goal"


class FeedbackOutcome(StrEnum):
    """What became of a suggestion, as reported by the agent or the user."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    HELPED = "helped"
    HURT = "hurt"


class Personality(StrEnum):
    """Step personalities of :class:`PersonalityGoalFeedbackStrategy`."""

    CAUTIOUS = "cautious"
    NEUTRAL = "neutral"
    AGGRESSIVE = "aggressive"


#: Step factor per personality (reference values).
PERSONALITY_FACTORS: Mapping[Personality, float] = MappingProxyType(
    {Personality.CAUTIOUS: 0.25, Personality.NEUTRAL: 0.5, Personality.AGGRESSIVE: 0.75}
)


# ---------------------------------------------------------------------------------------------
# Value helpers
# ---------------------------------------------------------------------------------------------


def as_number(value: object) -> float | None:
    """Return ``value`` as a float if it is an int or float (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond the float range: infinite for every purpose here
        return math.inf if value > 0 else -math.inf


def _number(value: object, name: str) -> float:
    """A finite number of magnitude at most :data:`MAX_MAGNITUDE`, else InvalidInputError."""
    number = as_number(value)
    if number is None or not math.isfinite(number) or abs(number) > MAX_MAGNITUDE:
        raise InvalidInputError(f"must be a finite number of magnitude <= 1e300, got {value!r}", field=name)
    return number


def check_json(value: object, name: str, depth: int = 0) -> Any:
    """Return a deep copy of a JSON-like ``value`` after validating it.

    Accepted: dicts with string keys, lists/tuples (copied as lists), strings, bools, None, ints and
    floats that are finite with magnitude at most :data:`MAX_MAGNITUDE`. Anything else (datetime
    objects, NaN, sets...) raises :class:`InvalidInputError` naming the dotted field, so nothing that
    would break ``json.dumps`` or the arithmetic ever reaches the loop's state.
    """
    if depth > _MAX_DEPTH:
        raise InvalidInputError(f"is nested deeper than {_MAX_DEPTH} levels", field=name)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        _number(value, name)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"keys must be strings, got {key!r}", field=name)
            out[key] = check_json(item, f"{name}.{key}", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [check_json(item, f"{name}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidInputError(f"must be JSON-like data, got {type(value).__name__}", field=name)


def parse_time(value: object, *, numbers: bool) -> float | None:
    """Epoch seconds from an ISO-8601 string (naive means UTC) or, if ``numbers``, a number.

    Returns None for anything else, so a domain value that merely sits in the timestamp field is
    left alone instead of being read as a time.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return as_number(value) if numbers else None


def parse_outcome(value: object) -> FeedbackOutcome:
    """Return ``value`` as a :class:`FeedbackOutcome`, else raise InvalidInputError naming ``outcome``."""
    if isinstance(value, str) and value in FeedbackOutcome.__members__.values():
        return FeedbackOutcome(value)
    known = ", ".join(o.value for o in FeedbackOutcome)
    raise InvalidInputError(f"must be one of {known}, got {value!r}", field="outcome")


# ---------------------------------------------------------------------------------------------
# Goals
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoalTarget:
    """The target of one goal metric.

    Attributes:
        metric: name of the metric (the key in readings and actions).
        target: the value nudges aim at (the midpoint of a ``range`` given as min/max); for a
            boolean goal 1.0 (True) or 0.0 (False).
        direction: ``increase``, ``decrease``, ``range``, or None to infer it from the baseline.
        tolerance: how far short of the target still counts as reached. For a ``range`` it is turned
            into ``low``/``high`` and stored as 0.0.
        low: lower bound of a ``range`` goal (target - tolerance if not given).
        high: upper bound of a ``range`` goal (target + tolerance if not given).
        boolean: the goal is a condition (``{"done": True}``) rather than a quantity.

    Raises:
        InvalidInputError: a field is out of range; ``.field`` is ``goal_state.<metric>``.
    """

    metric: str
    target: float
    direction: Direction | None = None
    tolerance: float = 0.0
    low: float | None = None
    high: float | None = None
    boolean: bool = False

    def __post_init__(self) -> None:
        name = f"goal_state.{self.metric}"
        if not isinstance(self.metric, str) or not self.metric:
            raise InvalidInputError("metric names must be non-empty strings", field="goal_state")
        object.__setattr__(self, "target", _number(self.target, name))
        tolerance = _number(self.tolerance, f"{name}.tolerance")
        if tolerance < 0:
            raise InvalidInputError("must be >= 0", field=f"{name}.tolerance")
        object.__setattr__(self, "tolerance", tolerance)
        if self.direction is not None:
            object.__setattr__(self, "direction", Direction(self.direction))
        if self.boolean and (self.direction is not None or tolerance or self.target not in (0.0, 1.0)):
            raise InvalidInputError("a boolean goal takes no direction or tolerance", field=name)
        if self.direction is not Direction.RANGE:
            if self.low is not None or self.high is not None:
                raise InvalidInputError("min/max bounds need direction 'range'", field=name)
            return
        if self.low is None and self.high is None:
            # The bounds carry the tolerance from here on, so both spellings of one range are equal.
            object.__setattr__(self, "low", self.target - tolerance)
            object.__setattr__(self, "high", self.target + tolerance)
            object.__setattr__(self, "tolerance", 0.0)
            return
        low, high = _number(self.low, f"{name}.min"), _number(self.high, f"{name}.max")
        if tolerance or not low <= self.target <= high:
            raise InvalidInputError("needs min <= target <= max and no tolerance", field=name)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def from_wire(cls, metric: str, value: object, direction: object = None) -> GoalTarget | None:
        """Parse one ``goal_state`` entry; return None for a qualitative (non-numeric) goal.

        Accepted forms: a number; a bool; ``{"target": t, "direction": d, "tolerance": x}``;
        ``{"min": a, "max": b}`` (a range, optionally with a ``target`` inside it); ``{"min": a}``
        (increase to ``a``); ``{"max": b}`` (decrease to ``b``). ``direction`` comes from the separate
        ``directions`` mapping and must not contradict one given inside the entry.
        """
        name = f"goal_state.{metric}"
        if direction is not None:
            direction = _direction(direction, f"directions.{metric}")
        if isinstance(value, bool):
            if direction is not None:
                raise InvalidInputError("a boolean goal takes no direction", field=f"directions.{metric}")
            return cls(metric, 1.0 if value else 0.0, boolean=True)
        if isinstance(value, (int, float)):
            return cls(metric, _number(value, name), direction)
        if not isinstance(value, Mapping) or not _SPEC_KEYS & value.keys():
            return None
        return cls._from_spec(metric, value, direction)

    @classmethod
    def _from_spec(cls, metric: str, value: Mapping[str, Any], direction: Direction | None) -> GoalTarget:
        """Parse the dict form of a ``goal_state`` entry (see :meth:`from_wire`)."""
        name = f"goal_state.{metric}"
        unknown = sorted(str(k) for k in value.keys() - _SPEC_KEYS)
        if unknown:
            raise InvalidInputError(f"unknown keys {unknown}", field=name)
        inner = value.get("direction")
        inner = None if inner is None else _direction(inner, f"{name}.direction")
        if direction is not None and inner is not None and direction != inner:
            raise InvalidInputError(f"contradicts {name}.direction", field=f"directions.{metric}")
        direction = direction or inner
        low, high = value.get("min"), value.get("max")
        if low is None and high is None:
            if "target" not in value:
                raise InvalidInputError("needs 'target' or 'min'/'max'", field=name)
            target = _number(value["target"], f"{name}.target")
            return cls(metric, target, direction, value.get("tolerance", 0.0))
        if "tolerance" in value:
            raise InvalidInputError("min/max and tolerance exclude each other", field=name)
        implied = Direction.RANGE if low is not None and high is not None else None
        implied = implied or (Direction.INCREASE if low is not None else Direction.DECREASE)
        if direction not in (None, implied):
            raise InvalidInputError(f"min/max imply direction {implied.value!r}", field=name)
        if implied is not Direction.RANGE:
            bound = _number(low if low is not None else high, f"{name}.{'min' if low is not None else 'max'}")
            if "target" in value and _number(value["target"], f"{name}.target") != bound:
                raise InvalidInputError("a one-sided bound is the target itself", field=name)
            return cls(metric, bound, implied)
        lo, hi = _number(low, f"{name}.min"), _number(high, f"{name}.max")
        if lo > hi:
            raise InvalidInputError("min must be <= max", field=name)
        target = value["target"] if "target" in value else lo + (hi - lo) / 2
        return cls(metric, _number(target, f"{name}.target"), Direction.RANGE, low=lo, high=hi)

    def to_wire(self) -> Any:
        """The ``goal_state`` entry that :meth:`from_wire` parses back into an equal target."""
        if self.boolean:
            return self.target == 1.0
        if self.direction is Direction.RANGE:
            return {"min": self.low, "max": self.high, "target": self.target, "direction": "range"}
        if self.direction is None and not self.tolerance:
            return self.target
        wire: dict[str, Any] = {"target": self.target, "tolerance": self.tolerance}
        if self.direction is not None:
            wire["direction"] = self.direction.value
        return wire

    def resolve(self, reference: float | None) -> GoalTarget:
        """Fix an unspecified direction from ``reference`` (the baseline): below the target means
        ``increase``, above ``decrease``, equal ``range`` (hold). Returns ``self`` when there is
        nothing to resolve."""
        if self.direction is not None or self.boolean or reference is None:
            return self
        if reference == self.target:
            return GoalTarget(self.metric, self.target, Direction.RANGE, self.tolerance)
        direction = Direction.INCREASE if reference < self.target else Direction.DECREASE
        return GoalTarget(self.metric, self.target, direction, self.tolerance)

    def region(self) -> tuple[float, float]:
        """The satisfying interval ``(lo, hi)``; open sides are infinite. Unresolved: the target."""
        if self.direction is Direction.INCREASE:
            return self.target - self.tolerance, math.inf
        if self.direction is Direction.DECREASE:
            return -math.inf, self.target + self.tolerance
        if self.direction is Direction.RANGE:
            return self.low, self.high  # type: ignore[return-value]
        return self.target - self.tolerance, self.target + self.tolerance

    def distance(self, value: float) -> float:
        """Distance from ``value`` to the satisfying region (0.0 inside it)."""
        lo, hi = self.region()
        return lo - value if value < lo else value - hi if value > hi else 0.0

    def is_reached(self, value: float) -> bool:
        """Whether ``value`` satisfies the goal."""
        return self.distance(value) == 0.0

    def trend(self, previous: float | None, current: float) -> Trend:
        """``toward_goal`` if the distance to the region shrank, ``away_from_goal`` if it grew,
        ``stable`` if it did not change (including moves inside the region) or there is no
        previous reading."""
        if previous is None:
            return Trend.STABLE
        before, after = self.distance(previous), self.distance(current)
        return (
            Trend.TOWARD_GOAL if after < before else Trend.AWAY_FROM_GOAL if after > before else Trend.STABLE
        )

    def progress(self, baseline: float | None, current: float) -> float | None:
        """``1 - distance(current) / distance(baseline)`` clipped to [0, 1]; None without a baseline.

        A baseline already in the region gives 1.0 while ``current`` is in it and 0.0 otherwise.
        """
        if baseline is None:
            return None
        start, now = self.distance(baseline), self.distance(current)
        if start == 0.0:
            return 1.0 if now == 0.0 else 0.0
        return min(1.0, max(0.0, 1.0 - now / start))

    def nudge(self, base: float, step: float, *, monotonic: bool = False) -> float:
        """Move ``base`` the fraction ``step`` of the way toward the target.

        A base already in the satisfying region is returned unchanged (overshooting an ``increase``
        goal is not pulled back); with ``monotonic`` a move that would decrease the value is
        blocked. The result never leaves the interval between ``base`` and the target.
        """
        if self.is_reached(base):
            return base
        delta = self.target - base
        if monotonic and delta < 0:
            return base
        moved = base + delta * step
        return min(max(moved, min(base, self.target)), max(base, self.target))


def _direction(value: object, name: str) -> Direction:
    if isinstance(value, str) and value in Direction.__members__.values():
        return Direction(value)
    known = ", ".join(d.value for d in Direction)
    raise InvalidInputError(f"must be one of {known}, got {value!r}", field=name)


@dataclass(frozen=True, slots=True)
class GoalSpec:
    """A whole goal: its numeric/boolean targets and the qualitative entries kept as they are.

    Attributes:
        targets: one :class:`GoalTarget` per numeric or boolean metric, in ``goal_state`` order.
        extras: entries that are not targets (``{"mood": "happy"}``); kept, never nudged.
    """

    targets: tuple[GoalTarget, ...] = ()
    extras: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        metrics = [t.metric for t in self.targets if isinstance(t, GoalTarget)]
        if len(metrics) != len(self.targets) or len(set(metrics)) != len(metrics):
            raise InvalidInputError(
                "targets must be GoalTarget values with distinct metrics", field="goal_state"
            )
        if self.extras is not None:
            extras = check_json(self.extras, "goal_state")
            if not isinstance(extras, dict) or extras.keys() & set(metrics):
                raise InvalidInputError("extras must be an object apart from the targets", field="goal_state")
            object.__setattr__(self, "extras", extras or None)

    @classmethod
    def parse(cls, goal_state: object, directions: object = None) -> GoalSpec:
        """Parse the wire form (see :meth:`GoalTarget.from_wire`); None means no goal.

        Raises:
            InvalidInputError: a malformed entry; ``.field`` names it (``goal_state.<metric>`` or
                ``directions.<metric>``).
        """
        if isinstance(goal_state, GoalSpec) and directions is None:
            return goal_state
        state = {} if goal_state is None else goal_state
        if not isinstance(state, Mapping):
            raise InvalidInputError(f"must be an object, got {type(state).__name__}", field="goal_state")
        dirs = {} if directions is None else directions
        if not isinstance(dirs, Mapping):
            raise InvalidInputError(f"must be an object, got {type(dirs).__name__}", field="directions")
        for key in dirs:
            if key not in state:
                raise InvalidInputError("names a metric that has no target", field=f"directions.{key}")
        targets: list[GoalTarget] = []
        extras: dict[str, Any] = {}
        for key, value in state.items():
            if not isinstance(key, str) or not key:
                raise InvalidInputError("metric names must be non-empty strings", field="goal_state")
            target = GoalTarget.from_wire(key, value, dirs.get(key))
            if target is None:
                extras[key] = check_json(value, f"goal_state.{key}")
            else:
                targets.append(target)
        return cls(tuple(targets), extras or None)

    def to_goal_state(self) -> dict[str, Any]:
        """The wire form with directions folded into the entries; :meth:`parse` gives this back."""
        state: dict[str, Any] = {t.metric: t.to_wire() for t in self.targets}
        state.update(copy.deepcopy(dict(self.extras or {})))
        return state


@dataclass(frozen=True, slots=True)
class FeedbackContext:
    """What a strategy needs to know about the goal (passed fresh on every call).

    Attributes:
        targets: the goal's targets by metric, directions resolved where a baseline is known.
        latest: the last measured value of each goal metric (booleans as 1.0/0.0).
    """

    targets: Mapping[str, GoalTarget]
    latest: Mapping[str, float]


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class GoalFeedbackStrategy(Protocol):
    """Turns proposed actions into suggested actions.

    ``suggest_actions`` must return exactly one JSON-like dict per action, in order, and must not
    keep references to its arguments. ``to_dict`` returns ``{"name": ..., **params}`` for
    :func:`strategy_from_dict` (custom strategies are restored by passing them to ``restore``).
    """

    def suggest_actions(
        self, current_actions: Sequence[Mapping[str, Any]], context: FeedbackContext
    ) -> list[dict[str, Any]]:
        """Return one suggested action per proposed action."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Return the strategy's name and parameters (and learned state) as JSON-able data."""
        ...


@runtime_checkable
class LearningGoalFeedbackStrategy(GoalFeedbackStrategy, Protocol):
    """A strategy that learns from the outcomes of its earlier suggestions."""

    def record_feedback(self, metric_or_suggestion: str | Mapping[str, Any], outcome: str) -> bool:
        """Learn from one outcome; return True if the strategy's state changed."""
        ...


class _StepStrategy:
    """The shared nudge algorithm; subclasses only choose the step per metric."""

    name: ClassVar[str]

    def __init__(self, one_direction_layers: Iterable[str] | None = None) -> None:
        # A bare string is iterable too, but "time" must not become {"t", "i", "m", "e"}.
        layers = () if one_direction_layers is None else one_direction_layers
        if isinstance(layers, str) or not isinstance(layers, Iterable):
            raise ConfigurationError("one_direction_layers must be an iterable of metric names")
        layers = tuple(layers)
        if not all(isinstance(k, str) for k in layers):
            raise ConfigurationError("one_direction_layers must contain metric names (strings)")
        #: Metrics whose value is never nudged downward.
        self.one_direction_layers: frozenset[str] = frozenset(layers)

    def step_for(self, metric: str) -> float:
        """The fraction of the way toward the target that one nudge of ``metric`` moves."""
        raise NotImplementedError

    def suggest_actions(
        self, current_actions: Sequence[Mapping[str, Any]], context: FeedbackContext
    ) -> list[dict[str, Any]]:
        """Nudge every numeric goal metric of every action toward its target.

        The start value is the action's own number; if the action lacks the key (or has None) the
        last measured value is used and the key is added only when it moves; with neither, the key
        is left as it is. Non-numeric values (text, booleans) are never touched.
        """
        suggestions = []
        for action in current_actions:
            suggestion = copy.deepcopy(dict(action))
            for metric, target in context.targets.items():
                own = action.get(metric)
                base = as_number(own)
                if target.boolean or (base is None and own is not None):
                    continue
                if base is None:
                    base = context.latest.get(metric)
                    if base is None:
                        continue
                value = target.nudge(
                    base, self.step_for(metric), monotonic=metric in self.one_direction_layers
                )
                if own is not None or value != base:
                    suggestion[metric] = value
            suggestions.append(suggestion)
        return suggestions

    def _params(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "one_direction_layers": [...], **params}``; see :func:`strategy_from_dict`."""
        return {
            "name": self.name,
            "one_direction_layers": sorted(self.one_direction_layers),
            **self._params(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build the strategy from :meth:`to_dict` output; raises ConfigurationError."""
        params = {k: v for k, v in data.items() if k != "name"}
        try:
            return cls(**params)
        except TypeError as exc:  # an unknown or missing parameter name
            raise ConfigurationError(f"bad parameters for strategy {cls.name!r}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({params})"


class SimpleGoalFeedbackStrategy(_StepStrategy):
    """Moves every goal metric half of the way (:data:`SIMPLE_STEP`) toward its target.

    Args:
        one_direction_layers: metrics whose value is never nudged downward.
    """

    name = "simple"

    def step_for(self, metric: str) -> float:
        """Always :data:`SIMPLE_STEP` (0.5)."""
        return SIMPLE_STEP


class PersonalityGoalFeedbackStrategy(_StepStrategy):
    """Steps by personality: ``cautious`` 0.25, ``neutral`` 0.5, ``aggressive`` 0.75.

    Args:
        personality: one of :class:`Personality` (case-insensitive).
        one_direction_layers: metrics whose value is never nudged downward.

    Raises:
        ConfigurationError: unknown personality (the message lists the known ones).
    """

    name = "personality"

    def __init__(
        self, personality: str = "neutral", one_direction_layers: Iterable[str] | None = None
    ) -> None:
        super().__init__(one_direction_layers)
        key = personality.lower() if isinstance(personality, str) else personality
        if key not in Personality.__members__.values():
            known = ", ".join(p.value for p in Personality)
            raise ConfigurationError(f"unknown personality {personality!r}; known: {known}")
        #: The personality in force.
        self.personality = Personality(key)

    def step_for(self, metric: str) -> float:
        """The personality's factor (:data:`PERSONALITY_FACTORS`)."""
        return PERSONALITY_FACTORS[self.personality]

    def _params(self) -> dict[str, Any]:
        return {"personality": self.personality.value}


class AdaptiveGoalFeedbackStrategy(_StepStrategy):
    """Learns a step per metric from the outcomes of earlier suggestions.

    Every outcome multiplies the metric's step by its factor (``helped`` 1.25, ``accepted`` 1.0,
    ``rejected`` 0.8, ``hurt`` 0.5 by default) and clips it to ``[min_step, max_step]``. Metrics
    without feedback use ``initial_step``. At most :attr:`MAX_METRICS` learned steps are kept (the
    oldest learned is forgotten first), so the state stays bounded.

    Raises:
        ConfigurationError: a step outside ``0 < min_step <= initial_step <= max_step <= 1``, or a
            factor outside (0, 4] (``helped_factor`` >= 1; ``hurt_factor``, ``rejected_factor`` <= 1).
    """

    name = "adaptive"
    KIND: ClassVar[str] = "AdaptiveGoalFeedbackStrategy"
    MAX_METRICS: ClassVar[int] = 1024

    def __init__(
        self,
        initial_step: float = 0.5,
        *,
        min_step: float = 0.05,
        max_step: float = 0.95,
        helped_factor: float = 1.25,
        accepted_factor: float = 1.0,
        rejected_factor: float = 0.8,
        hurt_factor: float = 0.5,
        one_direction_layers: Iterable[str] | None = None,
        steps: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(one_direction_layers)
        self.min_step = config_number("min_step", min_step, 0.0, 1.0, open_low=True)
        self.max_step = config_number("max_step", max_step, self.min_step, 1.0)
        self.initial_step = config_number("initial_step", initial_step, self.min_step, self.max_step)
        factors = {
            FeedbackOutcome.HELPED: config_number("helped_factor", helped_factor, 1.0, 4.0),
            FeedbackOutcome.ACCEPTED: config_number(
                "accepted_factor", accepted_factor, 0.0, 4.0, open_low=True
            ),
            FeedbackOutcome.REJECTED: config_number(
                "rejected_factor", rejected_factor, 0.0, 1.0, open_low=True
            ),
            FeedbackOutcome.HURT: config_number("hurt_factor", hurt_factor, 0.0, 1.0, open_low=True),
        }
        #: Multiplier applied to a metric's step for each outcome.
        self.factors: Mapping[FeedbackOutcome, float] = MappingProxyType(factors)
        if steps is not None and not isinstance(steps, Mapping):
            raise ConfigurationError("steps must be a mapping of metric -> step")
        self._steps: dict[str, float] = {}
        for metric, step in (steps or {}).items():
            if not isinstance(metric, str) or not metric:
                raise ConfigurationError("steps keys must be non-empty metric names")
            self._steps[metric] = config_number(f"steps.{metric}", step, self.min_step, self.max_step)
        if len(self._steps) > self.MAX_METRICS:
            raise ConfigurationError(f"at most {self.MAX_METRICS} learned steps are kept")

    @property
    def steps(self) -> dict[str, float]:
        """A copy of the learned steps by metric."""
        return dict(self._steps)

    def step_for(self, metric: str) -> float:
        """The learned step of ``metric``, else ``initial_step``."""
        return self._steps.get(metric, self.initial_step)

    def record_feedback(self, metric_or_suggestion: str | Mapping[str, Any], outcome: str) -> bool:
        """Apply one outcome to a metric, or to every metric a loop suggestion nudged.

        Args:
            metric_or_suggestion: a metric name, or a suggestion dict from
                :meth:`GoalDrivenFeedbackLoop.suggest` (its ``goal_feedback.nudges`` name the metrics).
            outcome: ``accepted``, ``rejected``, ``helped`` or ``hurt``.

        Returns:
            True if any step changed.

        Raises:
            InvalidInputError: unknown outcome, or not a metric name / loop suggestion.
        """
        factor = self.factors[parse_outcome(outcome)]
        changed = False
        for metric in _feedback_metrics(metric_or_suggestion):
            old = self.step_for(metric)
            new = min(self.max_step, max(self.min_step, old * factor))
            if new == old:
                continue
            if metric not in self._steps and len(self._steps) >= self.MAX_METRICS:
                del self._steps[next(iter(self._steps))]
            self._steps[metric] = new
            changed = True
        return changed

    def _params(self) -> dict[str, Any]:
        return {
            "initial_step": self.initial_step,
            "min_step": self.min_step,
            "max_step": self.max_step,
            **{f"{o.value}_factor": f for o, f in self.factors.items()},
            "steps": dict(self._steps),
        }

    def snapshot(self) -> dict[str, Any]:
        """The parameters and learned steps, with the snapshot header."""
        return {**header(self.KIND, 1), **self.to_dict()}

    @classmethod
    def restore(cls, data: object) -> Self:
        """Rebuild from :meth:`snapshot`; raises SnapshotError on a bad snapshot."""
        body = {k: v for k, v in check_header(data, cls.KIND, (1,)).items() if k not in ("kind", "schema")}
        try:
            return cls.from_dict(body)
        except ConfigurationError as exc:
            raise SnapshotError(f"{cls.KIND} snapshot is invalid: {exc}") from exc


def _feedback_metrics(value: object) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    nudges = value.get(FEEDBACK_KEY, {}).get("nudges") if isinstance(value, Mapping) else None
    if not isinstance(nudges, Mapping):
        raise InvalidInputError("must be a metric name or a loop suggestion", field="metric_or_suggestion")
    return [str(m) for m in nudges]


_STRATEGIES: Mapping[str, type[_StepStrategy]] = MappingProxyType(
    {
        SimpleGoalFeedbackStrategy.name: SimpleGoalFeedbackStrategy,
        PersonalityGoalFeedbackStrategy.name: PersonalityGoalFeedbackStrategy,
        AdaptiveGoalFeedbackStrategy.name: AdaptiveGoalFeedbackStrategy,
    }
)


def strategy_from_dict(data: object) -> GoalFeedbackStrategy:
    """Rebuild a built-in strategy from its ``to_dict()`` form.

    Raises:
        ConfigurationError: not a dict, no ``name``, an unknown name (the message lists the known
            names) or bad parameters.
    """
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"a strategy must be given as a dict, got {type(data).__name__}")
    name = data.get("name")
    cls = _STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ConfigurationError(f"unknown strategy {name!r}; known: {', '.join(sorted(_STRATEGIES))}")
    return cls.from_dict(data)
