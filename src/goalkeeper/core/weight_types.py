"""The vocabulary of the weight engine: categories, their keys and defaults, updates and history records.

:mod:`goalkeeper.core.weights` holds the engine itself and re-exports everything here.

Key rules per category (``MAX_KEY_LENGTH`` = 256 characters at most):

* ``behavioral``, ``goal_alignment``, ``enterprise``: only their fixed keys;
* ``user_insights``: its fixed keys, plus topic affinities ``"topic:<name>"``;
* ``tool_preference``, ``global``: any key (a tool name, a pattern name);
* ``model_selection``: ``"<task_type>/<model_id>"`` with ``task_type`` in :data:`MODEL_TASK_TYPES`.

Behavioral weights live in [-1, 1]; every other weight is a score in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from ..errors import InvalidInputError
from ._checks import check_number, check_str, config_number
from ._snapshot import scalar_fields

__all__ = [
    "BEHAVIORAL_DEFAULTS",
    "DYNAMIC_DEFAULT",
    "ENTERPRISE_DEFAULTS",
    "GOAL_ALIGNMENT_KEYS",
    "MAX_KEY_LENGTH",
    "MODEL_TASK_TYPES",
    "TOPIC_PREFIX",
    "USER_INSIGHT_DEFAULTS",
    "LearningRates",
    "UpdateMode",
    "WeightCategory",
    "WeightChange",
    "WeightUpdate",
]


class WeightCategory(StrEnum):
    """The seven weight categories, with the reference's string values."""

    BEHAVIORAL = "behavioral"
    TOOL_PREFERENCE = "tool_preference"
    MODEL_SELECTION = "model_selection"
    GOAL_ALIGNMENT = "goal_alignment"
    USER_INSIGHTS = "user_insights"
    ENTERPRISE = "enterprise"
    GLOBAL = "global"


class UpdateMode(StrEnum):
    """How a recorded update was applied."""

    LEARNED = "learned"  #: scaled by the category's learning rate (behavioral: with momentum)
    DIRECT = "direct"  #: added as given (goal alignment, and :meth:`WeightEngine.learn_toward`)
    SET = "set"  #: an absolute value written by :meth:`WeightEngine.set_weight`


#: Behavioral weights (range [-1, 1]) and their defaults; ``speed_vs_quality``: -1 quality, +1 speed.
BEHAVIORAL_DEFAULTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "verbosity": 0.0,
        "formality": 0.0,
        "initiative": 0.3,
        "detail_level": 0.3,
        "creativity": 0.0,
        "speed_vs_quality": 0.0,
        "autonomy": 0.5,
        "explanation_depth": 0.3,
        "code_density": 0.0,
        "risk_tolerance": 0.0,
    }
)
#: The three goal metrics, each in [0, 1] and 0.0 at the start.
GOAL_ALIGNMENT_KEYS: Final[tuple[str, ...]] = ("current_progress", "drift_score", "loop_risk")
#: Enterprise settings in [0, 1]. ``max_autonomy_level`` 1.0 means "no cap" and
#: ``feedback_collection`` 1.0 means "on", so an unconfigured engine is not restricted.
ENTERPRISE_DEFAULTS: Final[Mapping[str, float]] = MappingProxyType(
    {"safety_strictness": 0.5, "data_sensitivity": 0.5, "max_autonomy_level": 1.0, "feedback_collection": 1.0}
)
#: User insights in [0, 1]; topic affinities are extra keys ``"topic:<name>"`` (default 0.5).
USER_INSIGHT_DEFAULTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "preferred_response_length": 0.5,
        "domain_expertise": 0.5,
        "frustration_level": 0.0,
        "engagement_level": 0.5,
        "correction_frequency": 0.0,
        "time_sensitivity": 0.5,
        "technical_depth": 0.5,
    }
)
#: Task types of ``model_selection`` keys, which read ``"<task_type>/<model_id>"``.
MODEL_TASK_TYPES: Final[tuple[str, ...]] = tuple(
    "planning coding summarization validation conversation tool_use reasoning".split()
)
#: Prefix of topic-affinity keys in ``user_insights``.
TOPIC_PREFIX: Final = "topic:"
#: Behavioral momentum factor: ``m = 0.7*m + lr*delta``.
MOMENTUM: Final = 0.7
#: Homeostatic pull toward 0 on every behavioral update: ``- 0.01 * w``.
HOMEOSTATIC_PULL: Final = 0.01
#: :meth:`~goalkeeper.core.weights.WeightEngine.consolidate` snaps behavioral ``|w| < 0.05`` to 0 ...
CONSOLIDATE_BELOW: Final = 0.05
#: ... and multiplies every momentum term by 0.5.
CONSOLIDATE_MOMENTUM: Final = 0.5
#: Value of a dynamic key (tool, model, topic, global entry) the first time it is seen: neutral.
DYNAMIC_DEFAULT: Final = 0.5
MAX_KEY_LENGTH: Final = 256

_FIXED: Final[Mapping[WeightCategory, Mapping[str, float]]] = {
    WeightCategory.BEHAVIORAL: BEHAVIORAL_DEFAULTS,
    WeightCategory.GOAL_ALIGNMENT: MappingProxyType(dict.fromkeys(GOAL_ALIGNMENT_KEYS, 0.0)),
    WeightCategory.USER_INSIGHTS: USER_INSIGHT_DEFAULTS,
    WeightCategory.ENTERPRISE: ENTERPRISE_DEFAULTS,
    WeightCategory.TOOL_PREFERENCE: MappingProxyType({}),
    WeightCategory.MODEL_SELECTION: MappingProxyType({}),
    WeightCategory.GLOBAL: MappingProxyType({}),
}


_CATEGORY_VALUES: Final = tuple(c.value for c in WeightCategory)


def _bounds(category: WeightCategory) -> tuple[float, float]:
    """Behavioral weights are signed preferences; everything else is a score in [0, 1]."""
    return (-1.0, 1.0) if category is WeightCategory.BEHAVIORAL else (0.0, 1.0)


def _clip(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _category(value: object) -> WeightCategory:
    """Accept a :class:`WeightCategory` or its string value."""
    if isinstance(value, str) and value in _CATEGORY_VALUES:
        return WeightCategory(value)
    valid = ", ".join(_CATEGORY_VALUES)
    raise InvalidInputError(f"must be one of {valid}, got {value!r}", field="category")


def _in_bounds(category: WeightCategory, value: object, name: str) -> float:
    """``value`` as a float if it is finite and inside the category's range, else InvalidInputError."""
    return check_number(name, value, *_bounds(category))


def _check_key(category: WeightCategory, key: object) -> str:
    """Validate ``key`` for ``category`` (fixed keys, or the category's dynamic key form)."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"must be a non-empty string of at most {MAX_KEY_LENGTH} chars", field="key")
    fixed = _FIXED[category]
    if key in fixed or category in (WeightCategory.TOOL_PREFERENCE, WeightCategory.GLOBAL):
        return key
    if category is WeightCategory.USER_INSIGHTS and key.startswith(TOPIC_PREFIX) and key[len(TOPIC_PREFIX) :]:
        return key
    if category is WeightCategory.MODEL_SELECTION:
        task, _, model = key.partition("/")
        if task in MODEL_TASK_TYPES and model:
            return key
        types = ", ".join(MODEL_TASK_TYPES)
        raise InvalidInputError(
            f"must read '<task_type>/<model_id>', task_type in {types}; got {key!r}", field="key"
        )
    extra = " or 'topic:<name>'" if category is WeightCategory.USER_INSIGHTS else ""
    raise InvalidInputError(
        f"{category.value} has no key {key!r}; valid: {', '.join(fixed)}{extra}", field="key"
    )


@dataclass(frozen=True, slots=True)
class LearningRates:
    """Learning rate of each category, in [0, 1] (reference values by default).

    ``enterprise`` is 0.0: enterprise settings are set by an administrator, not learned.
    """

    behavioral: float = 0.12
    tool_preference: float = 0.08
    model_selection: float = 0.04
    goal_alignment: float = 0.15
    user_insights: float = 0.03
    enterprise: float = 0.0
    global_: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, config_number(f.name, getattr(self, f.name), 0.0, 1.0))

    def get(self, category: WeightCategory | str) -> float:
        """Return the learning rate of ``category`` (a :class:`WeightCategory` or its value)."""
        cat = _category(category)
        return float(getattr(self, "global_" if cat is WeightCategory.GLOBAL else cat.value))

    def to_dict(self) -> dict[str, float]:
        """The rates by field name (``global_`` included), JSON-able."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class WeightUpdate:
    """A requested change of one weight.

    Attributes:
        category: the weight's category (its string value is accepted too).
        key: the weight's key; must be valid for the category (fixed keys, a tool name, a
            ``"<task_type>/<model_id>"`` model key, ``"topic:<name>"`` for user insights).
        delta: the requested change (finite); see the module docstring for how it is applied.
        reason: why (for the audit trail).
        timestamp: when, in seconds (the core reads no clock, so the caller supplies it).
        source: which component produced the update.

    Raises:
        InvalidInputError: a field is malformed; ``.field`` names it.
    """

    category: WeightCategory
    key: str
    delta: float
    reason: str = ""
    timestamp: float = 0.0
    source: str = ""

    @classmethod
    def _trusted(
        cls, category: WeightCategory, key: str, delta: float, reason: str, timestamp: float, source: str
    ) -> WeightUpdate:
        """Build an update from values the engine itself produced (a known key, finite floats),
        without the validation: the goal tracker records two or three metrics per step."""
        update = object.__new__(cls)
        setattr_ = object.__setattr__  # the frozen dataclass's own way of setting its fields
        setattr_(update, "category", category)
        setattr_(update, "key", key)
        setattr_(update, "delta", delta)
        setattr_(update, "reason", reason)
        setattr_(update, "timestamp", timestamp)
        setattr_(update, "source", source)
        return update

    def __post_init__(self) -> None:
        category = _category(self.category)
        object.__setattr__(self, "category", category)
        _check_key(category, self.key)
        object.__setattr__(self, "delta", check_number("delta", self.delta))
        object.__setattr__(self, "timestamp", check_number("timestamp", self.timestamp))
        check_str("reason", self.reason)
        check_str("source", self.source)


@dataclass(frozen=True, slots=True)
class WeightChange:
    """One history entry: the update as requested and what it did.

    Attributes:
        update: the requested :class:`WeightUpdate`.
        applied: the change actually made (``value - previous value``), after scaling and clamping.
        value: the weight after the change.
        mode: how the delta was applied (:class:`UpdateMode`).
    """

    update: WeightUpdate
    applied: float
    value: float
    mode: UpdateMode

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict of the update fields plus ``applied``, ``value`` and ``mode``."""
        update = {**scalar_fields(self.update), "category": self.update.category.value}
        return {**update, "applied": self.applied, "value": self.value, "mode": self.mode.value}
