"""The weight engine: every learned or configured number that steers an agent, in seven categories.

A weight is a float under a ``(category, key)`` address. It changes only through a
:class:`WeightUpdate` (what was asked, why and by whom), and every change is kept in a bounded
history of :class:`WeightChange` records (what was asked *and* what was actually applied), so each
number can be audited.

How a requested ``delta`` becomes a change depends on the category:

* ``goal_alignment`` (``current_progress``, ``drift_score``, ``loop_risk``, in [0, 1]): applied
  **unscaled**, ``new = clip(old + delta, 0, 1)``. The goal tracker writes measured values, and the
  reference's own example (``delta=0.15`` for "sub-goal completed") only makes sense unscaled. The
  0.15 learning rate is used by :meth:`WeightEngine.learn_toward`.
* ``behavioral`` (10 keys in [-1, 1]): learned with momentum and a homeostatic pull,
  ``m = 0.7*m + lr*delta; new = clip(old + m - 0.01*old, -1, 1)``.
* every other category: ``new = clip(old + lr*delta, 0, 1)``. ``enterprise`` has learning rate 0.0
  ("set, not learned"): updates are recorded but move nothing; use :meth:`WeightEngine.set_weight`.
* ``global`` is opt-in: while it is disabled, updates are recorded and move nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_count, check_number, config_int
from ._snapshot import check_header, field, header
from .weight_types import (
    _FIXED,
    BEHAVIORAL_DEFAULTS,
    CONSOLIDATE_BELOW,
    CONSOLIDATE_MOMENTUM,
    DYNAMIC_DEFAULT,
    ENTERPRISE_DEFAULTS,
    GOAL_ALIGNMENT_KEYS,
    HOMEOSTATIC_PULL,
    MAX_KEY_LENGTH,
    MODEL_TASK_TYPES,
    MOMENTUM,
    TOPIC_PREFIX,
    USER_INSIGHT_DEFAULTS,
    LearningRates,
    UpdateMode,
    WeightCategory,
    WeightChange,
    WeightUpdate,
    _bounds,
    _category,
    _check_key,
    _clip,
    _in_bounds,
)

# The vocabulary in weight_types is re-exported, so the whole weight API imports from here.
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
    "WeightEngine",
    "WeightUpdate",
]


class WeightEngine:
    """Holds all weights, applies updates to them and keeps an audit history.

    Args:
        learning_rates: per-category rates (default :class:`LearningRates`).
        max_history: how many :class:`WeightChange` records are kept (the oldest are dropped).
        max_dynamic_keys: how many dynamic keys (tools, models, topics, global entries) one category
            keeps; past that the least recently written one is forgotten, which bounds memory when
            key names come from untrusted input.
        global_enabled: whether the opt-in ``global`` category accepts updates.

    Raises:
        ConfigurationError: an argument is out of range.
    """

    _KIND = "WeightEngine"
    #: 2: ``history`` entries are arrays in ``_FLAT_FIELDS`` order (1: objects, still restored).
    _SCHEMA = 2

    def __init__(
        self,
        learning_rates: LearningRates | None = None,
        *,
        max_history: int = 1000,
        max_dynamic_keys: int = 1000,
        global_enabled: bool = False,
    ) -> None:
        if learning_rates is None:
            learning_rates = LearningRates()
        if not isinstance(learning_rates, LearningRates):
            raise ConfigurationError("learning_rates must be a LearningRates instance")
        config_int("max_history", max_history, 1)
        config_int("max_dynamic_keys", max_dynamic_keys, 1)
        if not isinstance(global_enabled, bool):
            raise ConfigurationError("global_enabled must be a bool")
        self._rates = learning_rates
        self._max_dynamic = max_dynamic_keys
        self._global_enabled = global_enabled
        self._fixed: dict[WeightCategory, dict[str, float]] = {c: dict(_FIXED[c]) for c in WeightCategory}
        # Dynamic keys in least-recently-written-first order: a write moves the key to the end.
        self._dynamic: dict[WeightCategory, dict[str, float]] = {c: {} for c in WeightCategory}
        self._momentum: dict[str, float] = dict.fromkeys(BEHAVIORAL_DEFAULTS, 0.0)
        # Each change as a flat tuple of str and float (see _flat): a tuple of atomic values is
        # untracked by the garbage collector, so a full history costs full collections nothing
        # (1,000 WeightChange + WeightUpdate pairs per goal made every collection slower).
        self._history: deque[_FlatChange] = deque(maxlen=max_history)
        self._total_updates = 0

    # -- reading -----------------------------------------------------------------------------

    @property
    def learning_rates(self) -> LearningRates:
        """The per-category learning rates."""
        return self._rates

    @property
    def max_history(self) -> int:
        """Capacity of the update history."""
        return self._history.maxlen or 0

    @property
    def global_enabled(self) -> bool:
        """Whether the opt-in ``global`` category accepts updates."""
        return self._global_enabled

    @property
    def total_updates(self) -> int:
        """How many changes were ever recorded (the history keeps only the last ``max_history``)."""
        return self._total_updates

    @property
    def goal_alignment(self) -> dict[str, float]:
        """A copy of ``{"current_progress", "drift_score", "loop_risk"}``, each in [0, 1]."""
        return dict(self._fixed[WeightCategory.GOAL_ALIGNMENT])

    @property
    def _goal_metrics(self) -> dict[str, float]:
        """The live goal-alignment weights (not a copy): for the tracker's hot path, read only."""
        return self._fixed[WeightCategory.GOAL_ALIGNMENT]

    def values(self, category: WeightCategory | str) -> dict[str, float]:
        """A copy of every stored weight of ``category`` (fixed keys first, then dynamic ones)."""
        cat = _category(category)
        return {**self._fixed[cat], **self._dynamic[cat]}

    def get(self, category: WeightCategory | str, key: str) -> float:
        """Return one weight; a dynamic key never written reads as its default, 0.5.

        Raises:
            InvalidInputError: unknown category or a key the category does not have.
        """
        cat = _category(category)
        return self._get(cat, _check_key(cat, key))

    def _get(self, cat: WeightCategory, key: str) -> float:
        fixed = self._fixed[cat]
        if key in fixed:
            return fixed[key]
        return self._dynamic[cat].get(key, DYNAMIC_DEFAULT)

    def get_effective_autonomy(self) -> float:
        """``min(behavioral autonomy, enterprise max_autonomy_level)``, floored at 0 so it is in [0, 1]."""
        autonomy = self._fixed[WeightCategory.BEHAVIORAL]["autonomy"]
        return max(0.0, min(autonomy, self._fixed[WeightCategory.ENTERPRISE]["max_autonomy_level"]))

    def get_recent_updates(self, n: int = 10) -> list[WeightUpdate]:
        """The last ``n`` requested updates, newest last."""
        return [c.update for c in self.get_recent_changes(n)]

    def get_recent_changes(self, n: int = 10) -> list[WeightChange]:
        """The last ``n`` history records (request plus applied delta), newest last."""
        n = check_count("n", n)
        return [_change(flat) for flat in islice(self._history, max(0, len(self._history) - n), None)]

    # -- writing -----------------------------------------------------------------------------

    def apply_update(self, update: WeightUpdate) -> float:
        """Apply one update, record it, and return the delta actually applied.

        Raises:
            InvalidInputError: ``update`` is not a :class:`WeightUpdate`.
        """
        return self._commit(self._check_update(update), self._mode_for(update))

    def batch_update(self, updates: Iterable[WeightUpdate]) -> dict[str, float]:
        """Apply several updates atomically: all are validated first, so one bad update applies none.

        Returns:
            ``{"category.key": applied delta}``; a key updated twice gets the sum of both.
        """
        checked = [self._check_update(u, f"updates[{i}]") for i, u in enumerate(updates)]
        result: dict[str, float] = {}
        for u in checked:
            name = f"{u.category.value}.{u.key}"
            result[name] = result.get(name, 0.0) + self._commit(u, self._mode_for(u))
        return result

    def set_weight(
        self,
        category: WeightCategory | str,
        key: str,
        value: float,
        *,
        reason: str,
        source: str = "",
        timestamp: float = 0.0,
    ) -> float:
        """Write an absolute value (an administrator's setting, a measured metric); return the change.

        The write is recorded as a :class:`WeightUpdate` whose ``delta`` is ``value - current``.

        Raises:
            InvalidInputError: bad category/key, or ``value`` not a finite number in the category's range.
        """
        cat, key, target, current = self._resolve(category, key, value, "value")
        update = WeightUpdate(cat, key, target - current, reason, timestamp, source)
        return self._commit(update, UpdateMode.SET, target)

    def set_goal_metric(
        self, key: str, value: float, *, reason: str, source: str = "goal_tracker", timestamp: float = 0.0
    ) -> float:
        """Write a measured goal metric (``current_progress``, ``drift_score`` or ``loop_risk``) in [0, 1].

        Returns the applied delta (``value - previous``).
        """
        return self.set_weight(
            WeightCategory.GOAL_ALIGNMENT, key, value, reason=reason, source=source, timestamp=timestamp
        )

    def _write_goal_metric(self, key: str, value: float, reason: str, source: str, timestamp: float) -> None:
        """:meth:`set_goal_metric` for a value the caller computed itself: ``key`` one of
        :data:`GOAL_ALIGNMENT_KEYS`, ``value`` a finite float in [0, 1], ``timestamp`` a finite float.

        GoalTracker writes its metrics on every step; re-validating its own numbers cost more than
        the write. Records exactly what :meth:`set_goal_metric` records.
        """
        cat = WeightCategory.GOAL_ALIGNMENT
        weights = self._fixed[cat]
        old = weights[key]
        weights[key] = value
        delta = value - old
        self._history.append((cat.value, key, delta, reason, timestamp, source, delta, value, _SET))
        self._total_updates += 1

    def learn_toward(
        self,
        category: WeightCategory | str,
        key: str,
        target: float,
        *,
        reason: str,
        source: str = "",
        timestamp: float = 0.0,
    ) -> float:
        """Move a weight part of the way to ``target``: ``delta = lr * (target - current)``.

        This is where the goal-alignment rate 0.15 is used. The step is applied directly (behavioral
        momentum does not take part) and recorded with mode :attr:`UpdateMode.DIRECT`.
        """
        cat, key, goal, current = self._resolve(category, key, target, "target")
        delta = self._rates.get(cat) * (goal - current)
        return self._commit(WeightUpdate(cat, key, delta, reason, timestamp, source), UpdateMode.DIRECT)

    def set_global_enabled(self, enabled: bool) -> None:
        """Opt in to (or out of) the ``global`` category."""
        if not isinstance(enabled, bool):
            raise InvalidInputError("must be a bool", field="enabled")
        self._global_enabled = enabled

    def consolidate(self, *, timestamp: float = 0.0) -> int:
        """Sleep-like clean-up: snap behavioral weights with ``0 < |w| < 0.05`` to 0, halve momentum.

        Each snap is recorded in the history (source ``"consolidate"``). The engine keeps no tool
        failure counts (the reference multiplies them by 0.8), so there is nothing else to decay.

        Returns:
            How many weights were snapped to 0.
        """
        ts = check_number("timestamp", timestamp)
        snapped = 0
        for key, w in list(self._fixed[WeightCategory.BEHAVIORAL].items()):
            if w != 0.0 and abs(w) < CONSOLIDATE_BELOW:
                reason = f"consolidation: |{key}| < {CONSOLIDATE_BELOW} snapped to 0"
                update = WeightUpdate(WeightCategory.BEHAVIORAL, key, -w, reason, ts, "consolidate")
                self._commit(update, UpdateMode.SET, 0.0)
                snapped += 1
        for key in self._momentum:
            self._momentum[key] *= CONSOLIDATE_MOMENTUM
        return snapped

    def _resolve(
        self, category: WeightCategory | str, key: str, value: object, name: str
    ) -> tuple[WeightCategory, str, float, float]:
        """Validate an address and a value in its range; return them with the current weight."""
        cat = _category(category)
        key = _check_key(cat, key)
        return cat, key, _in_bounds(cat, value, name), self._get(cat, key)

    def _check_update(self, update: object, name: str = "update") -> WeightUpdate:
        if not isinstance(update, WeightUpdate):
            raise InvalidInputError(f"must be a WeightUpdate, got {type(update).__name__}", field=name)
        return update

    @staticmethod
    def _mode_for(update: WeightUpdate) -> UpdateMode:
        if update.category is WeightCategory.GOAL_ALIGNMENT:
            return UpdateMode.DIRECT
        return UpdateMode.LEARNED

    def _commit(self, update: WeightUpdate, mode: UpdateMode, target: float = 0.0) -> float:
        """Apply a validated update in ``mode``, record it and return the applied delta."""
        cat, key = update.category, update.key
        old = self._get(cat, key)
        low, high = _bounds(cat)
        if cat is WeightCategory.GLOBAL and not self._global_enabled:
            # Opted out: the request stays auditable, but nothing (not even a new key) is stored.
            self._record(WeightChange(update, 0.0, old, mode))
            return 0.0
        if mode is UpdateMode.SET:
            new = target
        elif mode is UpdateMode.DIRECT:
            new = _clip(old + update.delta, low, high)
        elif cat is WeightCategory.BEHAVIORAL:
            # Momentum smooths noisy feedback; it is clipped to the range width so that absurd deltas
            # cannot overflow it to inf (inf - inf would turn the weight into NaN).
            m = _clip(MOMENTUM * self._momentum[key] + self._rates.behavioral * update.delta, -2.0, 2.0)
            self._momentum[key] = m
            new = _clip(old + m - HOMEOSTATIC_PULL * old, low, high)
        else:
            new = _clip(old + self._rates.get(cat) * update.delta, low, high)
        self._store(cat, key, new)
        applied = new - old
        self._record(WeightChange(update, applied, new, mode))
        return applied

    def _record(self, change: WeightChange) -> None:
        self._history.append(_flat(change))
        self._total_updates += 1

    def _store(self, cat: WeightCategory, key: str, value: float) -> None:
        fixed = self._fixed[cat]
        if key in fixed:
            fixed[key] = value
            return
        dynamic = self._dynamic[cat]
        dynamic.pop(key, None)
        if len(dynamic) >= self._max_dynamic:
            del dynamic[next(iter(dynamic))]
        dynamic[key] = value

    # -- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole engine state as a JSON-able dict (restore with :meth:`restore`)."""
        return {
            **header(self._KIND, self._SCHEMA),
            "learning_rates": self._rates.to_dict(),
            "max_history": self.max_history,
            "max_dynamic_keys": self._max_dynamic,
            "global_enabled": self._global_enabled,
            "fixed": {c.value: dict(v) for c, v in self._fixed.items() if v},
            "dynamic": {c.value: [[k, w] for k, w in v.items()] for c, v in self._dynamic.items()},
            "momentum": dict(self._momentum),
            "history": [list(flat) for flat in self._history],
            "total_updates": self._total_updates,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild an engine from :meth:`snapshot` output.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        k = cls._KIND
        data = check_header(data, k, (1, cls._SCHEMA))
        compact = data["schema"] == cls._SCHEMA
        try:
            engine = cls(
                LearningRates(**field(data, "learning_rates", dict, k)),
                max_history=field(data, "max_history", int, k),
                max_dynamic_keys=field(data, "max_dynamic_keys", int, k),
                global_enabled=field(data, "global_enabled", bool, k),
            )
            fixed = field(data, "fixed", dict, k)
            dynamic = field(data, "dynamic", dict, k)
            for cat in WeightCategory:
                for key in _FIXED[cat]:
                    engine._fixed[cat][key] = _in_bounds(cat, fixed[cat.value][key], "fixed")
                for key, value in dynamic[cat.value]:
                    if key in engine._fixed[cat]:
                        _raise(f"dynamic key {key!r} is a fixed key")
                    engine._dynamic[cat][_check_key(cat, key)] = _in_bounds(cat, value, "dynamic")
                if len(engine._dynamic[cat]) > engine._max_dynamic:
                    _raise(f"more than max_dynamic_keys entries in {cat.value}")
            momentum = field(data, "momentum", dict, k)
            for key in BEHAVIORAL_DEFAULTS:
                engine._momentum[key] = check_number("momentum", momentum[key], -2.0, 2.0)
            for rec in field(data, "history", list, k):
                if compact:
                    if not isinstance(rec, list) or len(rec) != len(_FLAT_FIELDS):
                        _raise(f"history entry is not an array of {len(_FLAT_FIELDS)} values")
                    rec = dict(zip(_FLAT_FIELDS, rec, strict=True))
                update = WeightUpdate(
                    rec["category"], rec["key"], rec["delta"], rec["reason"], rec["timestamp"], rec["source"]
                )
                change = WeightChange(
                    update,
                    check_number("applied", rec["applied"]),
                    check_number("value", rec["value"]),
                    UpdateMode(rec["mode"]),
                )
                engine._history.append(_flat(change))
            engine._total_updates = check_count("total_updates", field(data, "total_updates", int, k))
            if engine._total_updates < len(engine._history):
                _raise("total_updates is smaller than the history")
        except SnapshotError:
            raise
        except (ConfigurationError, InvalidInputError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc!r}") from exc
        return engine


def _raise(message: str) -> None:
    raise SnapshotError(f"WeightEngine snapshot is malformed: {message}")


#: One history record, flat: category value, key, delta, reason, timestamp, source, applied, value,
#: mode value (the keys of ``WeightChange.to_dict`` in order).
_FlatChange = tuple[str, str, float, str, float, str, float, float, str]
_FLAT_FIELDS = ("category", "key", "delta", "reason", "timestamp", "source", "applied", "value", "mode")
_CATEGORIES = {c.value: c for c in WeightCategory}
_MODES = {m.value: m for m in UpdateMode}
_SET = UpdateMode.SET.value


def _flat(change: WeightChange) -> _FlatChange:
    u = change.update
    return (u.category.value, u.key, u.delta, u.reason, u.timestamp, u.source, change.applied, change.value,
            change.mode.value)  # fmt: skip


def _change(flat: _FlatChange) -> WeightChange:
    cat, key, delta, reason, timestamp, source, applied, value, mode = flat
    update = WeightUpdate._trusted(_CATEGORIES[cat], key, delta, reason, timestamp, source)
    return WeightChange(update, applied, value, _MODES[mode])
