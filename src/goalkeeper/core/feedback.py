"""The goal-driven feedback loop: nudges proposed actions toward a goal's numeric targets.

:class:`GoalDrivenFeedbackLoop` keeps two things apart (the reference mixed them up):

* **measurements** (``record_metrics``, ``extend_history``, or the ``history`` argument of
  ``suggest``): observed readings, appended to a bounded history. Baselines, trends, the analysis
  and "goal reached" come only from these.
* **proposed actions** (``current_actions`` of ``suggest``): what the agent intends to do. They are
  turned into suggestions and never stored as observed state.

Everything is deterministic: time comes in as ``now`` (epoch seconds) and is never read from a
clock; every suggestion has a ``suggestion_id`` derived from the goal id, the loop's state version
and the rule, so a replay after ``restore`` gives the same ids. Cost per call does not grow with the
history: the history is bounded (``retention_limit``, default :data:`DEFAULT_RETENTION_LIMIT`,
and/or ``retention_window``), entries leave from the left only, and per-metric value deques give
baseline, previous and current reading in O(1).

A suggestion is the proposed action (a copy) with nudged goal metrics, plus two reserved keys:
``suggestion_id`` and ``goal_feedback`` = ``{"kind", "goal_id", "version", "nudges", "analysis"}``
(``kind``: ``nudge``, ``hold`` or ``goal_reached``; ``nudges``: ``{metric: {"from": x, "to": y}}``).
"""

from __future__ import annotations

import copy
import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_now, snapshot_number
from ._snapshot import check_header, field, header, json_copy
from .feedback_strategies import (
    FEEDBACK_KEY,
    AdaptiveGoalFeedbackStrategy,
    Direction,
    FeedbackContext,
    FeedbackOutcome,
    GoalFeedbackStrategy,
    GoalSpec,
    GoalTarget,
    LearningGoalFeedbackStrategy,
    PersonalityGoalFeedbackStrategy,
    SimpleGoalFeedbackStrategy,
    Trend,
    as_number,
    check_json,
    parse_outcome,
    parse_time,
    strategy_from_dict,
)
from .text import stable_hash

__all__ = [
    "DEFAULT_RETENTION_LIMIT",
    "AdaptiveGoalFeedbackStrategy",
    "Direction",
    "FeedbackContext",
    "FeedbackOutcome",
    "GoalDrivenFeedbackLoop",
    "GoalFeedbackStrategy",
    "GoalMetric",
    "GoalSpec",
    "GoalTarget",
    "PersonalityGoalFeedbackStrategy",
    "SimpleGoalFeedbackStrategy",
    "SuggestionKind",
    "Trend",
    "strategy_from_dict",
]

#: History entries kept when no ``retention_limit`` is given (the history is always bounded).
DEFAULT_RETENTION_LIMIT = 1000
#: Suggestion ids remembered for duplicate suppression within one state version.
MAX_EMITTED = 1024
#: Issued suggestions remembered for ``record_feedback`` (oldest forgotten first).
MAX_ISSUED = 1024
_RESERVED = ("suggestion_id", FEEDBACK_KEY)
_KIND = "GoalDrivenFeedbackLoop"


class SuggestionKind(StrEnum):
    """What a suggestion is: a move, a pass-through, or a goal-reached notice."""

    NUDGE = "nudge"
    HOLD = "hold"
    GOAL_REACHED = "goal_reached"


@dataclass(frozen=True, slots=True)
class GoalMetric:
    """The analysis of one goal metric over the retained measurements.

    Attributes:
        goal: the target (1.0/0.0 for a boolean goal).
        current: the latest retained reading.
        gap: ``goal - current`` (signed).
        baseline: the oldest retained reading.
        trend: ``stable``, ``toward_goal`` or ``away_from_goal`` (distance to the goal's region).
        progress_ratio: ``1 - distance(current) / distance(baseline)`` in [0, 1].
        direction: the goal's direction (given or inferred), None for a boolean goal.
        reached: whether ``current`` satisfies the goal.

    Raises:
        InvalidInputError: a field has the wrong type or is out of range; ``.field`` names it.
    """

    goal: float
    current: float
    gap: float
    baseline: float | None
    trend: str
    progress_ratio: float | None
    direction: str | None = None
    reached: bool = False

    def __post_init__(self) -> None:
        for name in ("goal", "current", "gap", "baseline", "progress_ratio"):
            value = getattr(self, name)
            if value is None and name in ("baseline", "progress_ratio"):
                continue
            number = as_number(value)
            if number is None or not math.isfinite(number):
                raise InvalidInputError(f"must be a finite number, got {value!r}", field=name)
            if name == "progress_ratio" and not 0.0 <= number <= 1.0:
                raise InvalidInputError(f"must be in [0, 1], got {value!r}", field=name)
            object.__setattr__(self, name, number)
        if self.trend not in Trend.__members__.values():
            raise InvalidInputError(f"must be one of {', '.join(Trend)}, got {self.trend!r}", field="trend")
        if self.direction is not None and self.direction not in Direction.__members__.values():
            raise InvalidInputError(f"must be one of {', '.join(Direction)} or null", field="direction")
        if not isinstance(self.reached, bool):
            raise InvalidInputError("must be a boolean", field="reached")
        object.__setattr__(self, "trend", str(self.trend))

    def to_dict(self) -> dict[str, Any]:
        """All fields as a new JSON-able dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: object) -> GoalMetric:
        """Validate and rebuild from :meth:`to_dict` output.

        Raises:
            InvalidInputError: not a dict, a missing or unknown field, or a bad value.
        """
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"must be an object, got {type(data).__name__}", field="goal_metric")
        for key in data:
            if key not in cls.__dataclass_fields__:
                raise InvalidInputError("is not a GoalMetric field", field=str(key))
        for key in ("goal", "current", "gap", "trend"):
            if key not in data:
                raise InvalidInputError("is required", field=key)
        return cls(**{"baseline": None, "progress_ratio": None, **data})


@dataclass(slots=True)
class _Record:
    """One retained measurement: its time, whether the timestamp field gave that time, the entry."""

    time: float
    stamped: bool
    entry: dict[str, Any]


@dataclass(slots=True)
class _Issued:
    """What the loop remembers about an issued suggestion, for feedback."""

    metrics: tuple[str, ...]
    outcomes: list[FeedbackOutcome]


class GoalDrivenFeedbackLoop:
    """Keeps a goal, a bounded measurement history and a strategy; turns actions into suggestions.

    Args:
        strategy: a :class:`GoalFeedbackStrategy` (e.g. :class:`SimpleGoalFeedbackStrategy`).
        goal_state: targets in the wire form (``{"progress": 10}``) or a :class:`GoalSpec`.
        directions: optional ``{metric: "increase" | "decrease" | "range"}``.
        goal_id: optional goal id; it takes part in every ``suggestion_id``.
        retention_limit: most history entries kept (0 keeps none); default 1000.
        retention_window: keep only entries at most this old (seconds or a ``timedelta``), measured
            against the latest known time.
        timestamp_field: entry key read as the entry's time when it holds an ISO-8601 string (None:
            never read); entries without one are stamped with the call's ``now`` (kept apart from the
            entry, which is stored unchanged).
        numeric_timestamps: also read a number in ``timestamp_field`` as epoch seconds (off by
            default: a domain field named ``timestamp`` must not make entries expire).

    Raises:
        ConfigurationError: any argument is malformed.
    """

    def __init__(
        self,
        strategy: GoalFeedbackStrategy,
        goal_state: Mapping[str, Any] | GoalSpec | None = None,
        *,
        directions: Mapping[str, str] | None = None,
        goal_id: str | None = None,
        retention_limit: int | None = None,
        retention_window: timedelta | float | None = None,
        timestamp_field: str | None = "timestamp",
        numeric_timestamps: bool = False,
    ) -> None:
        if not isinstance(strategy, GoalFeedbackStrategy):
            raise ConfigurationError(
                "strategy must implement GoalFeedbackStrategy (suggest_actions, to_dict)"
            )
        if goal_id is not None and (not isinstance(goal_id, str) or not goal_id):
            raise ConfigurationError("goal_id must be a non-empty string or None")
        limit = DEFAULT_RETENTION_LIMIT if retention_limit is None else retention_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ConfigurationError(f"retention_limit must be an integer >= 0, got {retention_limit!r}")
        window = (
            retention_window.total_seconds() if isinstance(retention_window, timedelta) else retention_window
        )
        if window is not None and not (as_number(window) is not None and 0 <= window < math.inf):
            raise ConfigurationError(f"retention_window must be >= 0 seconds, got {retention_window!r}")
        if timestamp_field is not None and (not isinstance(timestamp_field, str) or not timestamp_field):
            raise ConfigurationError("timestamp_field must be a non-empty string or None")
        if not isinstance(numeric_timestamps, bool):
            raise ConfigurationError("numeric_timestamps must be a bool")
        self._strategy = strategy
        self._goal_id = goal_id
        self._limit = limit
        self._window = None if window is None else float(window)
        self._ts_field = timestamp_field
        self._numeric_ts = numeric_timestamps
        self._history: deque[_Record] = deque()
        # Per-key readings of the retained entries, oldest first: baseline = [0], current = [-1].
        self._numeric: dict[str, deque[float]] = {}
        self._flags: dict[str, deque[float]] = {}
        self._clock: float | None = None
        self._version = 0
        self._spec = GoalSpec()
        self._targets: dict[str, GoalTarget] = {}
        self._inferred: dict[str, Direction] = {}
        self._latest: dict[str, float] = {}
        self._reached: set[str] = set()
        self._emitted: dict[str, None] = {}
        self._issued: dict[str, _Issued] = {}
        self._last_suggestions: list[dict[str, Any]] = []
        self._analysis: dict[str, GoalMetric] = {}
        try:
            self._set_spec(GoalSpec.parse(goal_state, directions))
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc)) from exc

    # -- read-only views ------------------------------------------------------------------------

    @property
    def strategy(self) -> GoalFeedbackStrategy:
        """The strategy in use."""
        return self._strategy

    @property
    def goal_id(self) -> str | None:
        """The goal id that takes part in suggestion ids."""
        return self._goal_id

    @property
    def goal_spec(self) -> GoalSpec:
        """The parsed goal."""
        return self._spec

    @property
    def goal_state(self) -> dict[str, Any]:
        """The goal in wire form (directions folded in), a fresh copy."""
        return self._spec.to_goal_state()

    @property
    def version(self) -> int:
        """State version: bumps whenever something that shapes a nudge changes."""
        return self._version

    @property
    def history(self) -> list[dict[str, Any]]:
        """Deep copies of the retained measurement entries, oldest first."""
        return [json_copy(r.entry) for r in self._history]

    @property
    def last_suggestions(self) -> list[dict[str, Any]]:
        """Deep copies of what the last ``suggest`` call returned."""
        copied: list[dict[str, Any]] = json_copy(self._last_suggestions)
        return copied

    @property
    def last_analysis(self) -> dict[str, dict[str, Any]]:
        """``{metric: GoalMetric.to_dict()}`` for every goal metric with a retained reading."""
        return {m: g.to_dict() for m, g in self._analysis.items()}

    @property
    def reached_metrics(self) -> tuple[str, ...]:
        """Goal metrics whose latest reading satisfies the goal, in goal order."""
        return tuple(m for m in self._targets if m in self._reached)

    @property
    def all_goals_reached(self) -> bool:
        """True when the goal has targets and every one of them is reached."""
        return bool(self._targets) and self._targets.keys() <= self._reached

    # -- goal -----------------------------------------------------------------------------------

    def set_goal_state(self, goal_state: Mapping[str, Any] | GoalSpec | None, directions: Any = None) -> None:
        """Replace the goal (copied). A goal already met is reported by the next recording call.

        Raises:
            InvalidInputError: a malformed goal; ``.field`` names the entry.
        """
        spec = GoalSpec.parse(goal_state, directions)
        if spec != self._spec:
            self._set_spec(spec)
            self._bump()
            self._analysis = self._analyse()

    def _set_spec(self, spec: GoalSpec) -> None:
        old = self._targets
        self._spec = spec
        self._targets = {t.metric: t for t in spec.targets}
        for metric in [*self._latest, *self._inferred, *self._reached]:
            before, after = old.get(metric), self._targets.get(metric)
            if before == after:
                continue
            # A changed target is judged afresh: direction re-inferred, "reached" re-detected. The
            # latest reading stays while it is still the right kind of value (number vs boolean).
            self._inferred.pop(metric, None)
            self._reached.discard(metric)
            if after is None or before is None or after.boolean != before.boolean:
                self._latest.pop(metric, None)
        for metric, target in self._targets.items():
            track = self._track(target)
            if metric not in self._latest and track:
                self._latest[metric] = track[-1]
            reference = track[0] if track else self._latest.get(metric)
            if reference is not None:
                self._infer(self._inferred, target, reference)

    def _track(self, target: GoalTarget) -> deque[float] | None:
        return (self._flags if target.boolean else self._numeric).get(target.metric)

    @staticmethod
    def _infer(inferred: dict[str, Direction], target: GoalTarget, reference: float) -> None:
        if target.metric not in inferred and target.direction is None and not target.boolean:
            direction = target.resolve(reference).direction
            if direction is not None:
                inferred[target.metric] = direction

    def _resolved(self, inferred: Mapping[str, Direction]) -> dict[str, GoalTarget]:
        return {
            m: GoalTarget(m, t.target, inferred[m], t.tolerance) if m in inferred else t
            for m, t in self._targets.items()
        }

    # -- measurements ---------------------------------------------------------------------------

    def record_metrics(self, values: Mapping[str, Any], *, now: float | None = None) -> list[dict[str, Any]]:
        """Record one measurement (``{"progress": 4}``); returns any ``goal_reached`` suggestions.

        Raises:
            InvalidInputError: ``values`` is not an object of JSON-like data, or ``now`` is bad.
        """
        when = check_now(now)
        if not isinstance(values, Mapping):
            raise InvalidInputError(f"must be an object, got {type(values).__name__}", field="values")
        return self._record([check_json(values, "values")], when)

    def extend_history(
        self, entries: Sequence[Mapping[str, Any]], *, now: float | None = None
    ) -> list[dict[str, Any]]:
        """Append measurement entries (stored unchanged); returns any ``goal_reached`` suggestions.

        Raises:
            InvalidInputError: an entry is not an object of JSON-like data, or ``now`` is bad.
        """
        when = check_now(now)
        return self._record(self._validate_entries(entries, "entries"), when)

    def _record(self, staged: list[dict[str, Any]], when: float | None) -> list[dict[str, Any]]:
        latest, inferred = self._advance(staged)
        self._commit(staged, latest, inferred, when)
        return self._emit_reached()

    def reset_history(self) -> None:
        """Forget all measurements, the analysis, reached flags and the last suggestions."""
        self._history.clear()
        self._numeric.clear()
        self._flags.clear()
        self._latest.clear()
        self._inferred.clear()
        self._reached.clear()
        self._analysis = {}
        self._last_suggestions = []
        self._bump()

    @staticmethod
    def _validate_entries(entries: object, name: str) -> list[dict[str, Any]]:
        if entries is None:
            return []
        if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
            raise InvalidInputError(f"must be a list of objects, got {type(entries).__name__}", field=name)
        out = []
        for i, entry in enumerate(entries):
            label = f"{name}[{i}]"
            if not isinstance(entry, Mapping):
                raise InvalidInputError(f"must be an object, got {type(entry).__name__}", field=label)
            out.append(check_json(entry, label))
        return out

    def _reading(self, target: GoalTarget, value: object) -> float | None:
        if target.boolean:
            return (1.0 if value else 0.0) if isinstance(value, bool) else None
        return as_number(value)

    def _advance(self, entries: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, Direction]]:
        """The latest readings and inferred directions after ``entries``, computed without
        touching the loop, so a failing strategy leaves no trace (bug 11)."""
        latest, inferred = dict(self._latest), dict(self._inferred)
        for entry in entries:
            for key, value in entry.items():
                target = self._targets.get(key)
                reading = None if target is None else self._reading(target, value)
                if target is not None and reading is not None:
                    self._infer(inferred, target, reading)
                    latest[key] = reading
        return latest, inferred

    def _commit(
        self,
        entries: list[dict[str, Any]],
        latest: dict[str, float],
        inferred: dict[str, Direction],
        now: float | None,
    ) -> None:
        if latest != self._latest or inferred != self._inferred:
            self._bump()
        self._latest, self._inferred = latest, inferred
        if now is not None:
            self._clock = now if self._clock is None else max(self._clock, now)
        for entry in entries:
            self._append(entry, now)
        self._prune()
        self._analysis = self._analyse()

    def _append(self, entry: dict[str, Any], now: float | None) -> None:
        stamp = parse_time(entry.get(self._ts_field), numbers=self._numeric_ts) if self._ts_field else None
        if stamp is not None and now is None:
            # Without an explicit now, the entries' own times are the best clock there is.
            self._clock = stamp if self._clock is None else max(self._clock, stamp)
        fallback = self._clock if self._clock is not None else 0.0
        time = fallback if stamp is None else stamp
        if self._history and time < self._history[-1].time:
            # Keep times non-decreasing so retention can pop from the left in O(1).
            time = self._history[-1].time
        self._push(_Record(time, stamp is not None, entry))

    def _push(self, record: _Record) -> None:
        self._history.append(record)
        for key, tracks, value in self._tracked(record):
            tracks.setdefault(key, deque()).append(value)

    def _tracked(self, record: _Record) -> list[tuple[str, dict[str, deque[float]], float]]:
        out = []
        for key, value in record.entry.items():
            if record.stamped and key == self._ts_field:
                continue
            if isinstance(value, bool):
                out.append((key, self._flags, 1.0 if value else 0.0))
            elif (number := as_number(value)) is not None:
                out.append((key, self._numeric, number))
        return out

    def _prune(self) -> None:
        cutoff = None if self._window is None or self._clock is None else self._clock - self._window
        while self._history and (
            len(self._history) > self._limit or (cutoff is not None and self._history[0].time < cutoff)
        ):
            record = self._history.popleft()
            for key, tracks, _ in self._tracked(record):
                track = tracks[key]
                track.popleft()
                if not track:
                    del tracks[key]

    def _analyse(self) -> dict[str, GoalMetric]:
        analysis = {}
        for metric, target in self._resolved(self._inferred).items():
            track = self._track(target)
            if not track:
                continue
            current = track[-1]
            analysis[metric] = GoalMetric(
                goal=target.target,
                current=current,
                gap=target.target - current,
                baseline=track[0],
                trend=target.trend(track[-2] if len(track) > 1 else None, current).value,
                progress_ratio=target.progress(track[0], current),
                direction=None if target.direction is None else target.direction.value,
                reached=target.is_reached(current),
            )
        return analysis

    # -- suggestions ----------------------------------------------------------------------------

    def suggest(
        self,
        history: Sequence[Mapping[str, Any]] | None,
        current_actions: Sequence[Mapping[str, Any]] | None,
        *,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Record ``history`` as new measurements, then suggest one nudge per new proposed action.

        ``history`` is *appended* (never replaces the stored history; send only new readings, or
        ``[]``). An action already answered at the current state version (same content, same
        occurrence) is not answered again, so a repeated call with nothing new returns only what is
        new: usually ``[]``. Nudges come first, in action order, then any ``goal_reached``
        suggestions. Nothing changes if validation or the strategy fails.

        Raises:
            InvalidInputError: malformed history, actions or ``now``; ``.field`` names it.
            ConfigurationError: the strategy returned something other than one JSON-like dict per
                action.
        """
        when = check_now(now)
        staged = self._validate_entries(history, "history")
        actions = [
            {k: v for k, v in a.items() if k not in _RESERVED}
            for a in self._validate_entries(current_actions, "current_actions")
        ]
        latest, inferred = self._advance(staged)
        version = self._version + (latest != self._latest or inferred != self._inferred)
        emitted = self._emitted if version == self._version else {}
        seen: dict[str, int] = {}
        fresh: list[tuple[str, dict[str, Any]]] = []
        for action in actions:
            print_ = stable_hash(json.dumps(action, sort_keys=True, separators=(",", ":")))
            seen[print_] = seen.get(print_, -1) + 1
            sid = self._suggestion_id(version, "nudge", f"{print_}#{seen[print_]}")
            if sid not in emitted:
                fresh.append((sid, action))
        context = FeedbackContext(self._resolved(inferred), dict(latest))
        produced = self._strategy.suggest_actions([json_copy(a) for _, a in fresh], context)
        if not isinstance(produced, list) or len(produced) != len(fresh):
            raise ConfigurationError(f"strategy must return a list of {len(fresh)} suggestions")
        try:
            checked = [check_json(s, f"suggestion[{i}]") for i, s in enumerate(produced)]
        except InvalidInputError as exc:
            raise ConfigurationError(f"strategy returned an invalid suggestion: {exc}") from exc
        if not all(isinstance(s, dict) for s in checked):
            raise ConfigurationError("strategy suggestions must be dicts")
        self._commit(staged, latest, inferred, when)
        result = [
            self._nudge(sid, action, suggestion, context)
            for (sid, action), suggestion in zip(fresh, checked, strict=True)
        ]
        result.extend(self._emit_reached())
        self._last_suggestions = json_copy(result)
        return result

    #: The reference's documentation calls it ``suggest_actions``; both spellings work.
    suggest_actions = suggest

    def _suggestion_id(self, version: int, rule: str, detail: str) -> str:
        return stable_hash(f"{self._goal_id or ''}\x1f{version}\x1f{rule}\x1f{detail}")

    def _nudge(
        self, sid: str, action: dict[str, Any], suggestion: dict[str, Any], context: FeedbackContext
    ) -> dict[str, Any]:
        nudges: dict[str, dict[str, float | None]] = {}
        for metric, target in context.targets.items():
            after = as_number(suggestion.get(metric))
            own = action.get(metric)
            before = as_number(own) if own is not None else context.latest.get(metric)
            if not target.boolean and after is not None and after != before:
                nudges[metric] = {"from": before, "to": after}
        kind = SuggestionKind.NUDGE if nudges else SuggestionKind.HOLD
        self._remember(sid, tuple(nudges))
        suggestion["suggestion_id"] = sid
        suggestion[FEEDBACK_KEY] = self._feedback(kind, nudges=nudges)
        return suggestion

    def _feedback(self, kind: SuggestionKind, **extra: Any) -> dict[str, Any]:
        return {
            "kind": kind.value,
            "goal_id": self._goal_id,
            "version": self._version,
            **extra,
            "analysis": self.last_analysis,
        }

    def _remember(self, sid: str, metrics: tuple[str, ...]) -> None:
        self._emitted[sid] = None
        if len(self._emitted) > MAX_EMITTED:
            del self._emitted[next(iter(self._emitted))]
        self._issued[sid] = _Issued(metrics, [])
        if len(self._issued) > MAX_ISSUED:
            del self._issued[next(iter(self._issued))]

    def _emit_reached(self) -> list[dict[str, Any]]:
        """``goal_reached`` once per metric each time it becomes reached (again after a loss)."""
        out = []
        for metric, target in self._resolved(self._inferred).items():
            if metric not in self._latest:
                continue
            if not target.is_reached(self._latest[metric]):
                self._reached.discard(metric)
            elif metric not in self._reached:
                self._reached.add(metric)
                sid = self._suggestion_id(self._version, SuggestionKind.GOAL_REACHED.value, metric)
                self._remember(sid, ())
                value = self._latest[metric]
                message = f"{metric} reached its goal ({target.target:g}); latest reading {value:g}"
                out.append(
                    {
                        "suggestion_id": sid,
                        FEEDBACK_KEY: self._feedback(
                            SuggestionKind.GOAL_REACHED, metric=metric, message=message
                        ),
                    }
                )
        return out

    def _bump(self) -> None:
        self._version += 1
        self._emitted.clear()

    # -- feedback -------------------------------------------------------------------------------

    def record_feedback(self, suggestion_id: str, outcome: str) -> bool:
        """Report what became of a suggestion; a learning strategy adapts to it.

        Returns:
            True if applied; False for an unknown (or forgotten) id or a repeat of the same outcome.
            A strategy that changed bumps the state version, so the same action gets a fresh nudge.

        Raises:
            InvalidInputError: ``outcome`` is not accepted/rejected/helped/hurt, or the id is not a
                string.
        """
        result = parse_outcome(outcome)
        if not isinstance(suggestion_id, str):
            raise InvalidInputError("must be a string", field="suggestion_id")
        issued = self._issued.get(suggestion_id)
        if issued is None or result in issued.outcomes:
            return False
        if isinstance(self._strategy, LearningGoalFeedbackStrategy):
            changed = [self._strategy.record_feedback(m, result.value) for m in issued.metrics]
            if any(changed):
                self._bump()
        issued.outcomes.append(result)
        return True

    # -- persistence ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able data (goal, strategy, history, version, ...)."""
        return {
            **header(_KIND, 1),
            "strategy": self._strategy.to_dict(),
            "goal_state": self._spec.to_goal_state(),
            "goal_id": self._goal_id,
            "retention_limit": self._limit,
            "retention_window": self._window,
            "timestamp_field": self._ts_field,
            "numeric_timestamps": self._numeric_ts,
            "clock": self._clock,
            "version": self._version,
            "history": [[r.time, r.stamped, copy.deepcopy(r.entry)] for r in self._history],
            "latest": dict(self._latest),
            "inferred": {m: d.value for m, d in self._inferred.items()},
            "reached": sorted(self._reached),
            "emitted": list(self._emitted),
            "issued": [
                [sid, list(i.metrics), [o.value for o in i.outcomes]] for sid, i in self._issued.items()
            ],
            "last_suggestions": copy.deepcopy(self._last_suggestions),
        }

    @classmethod
    def restore(cls, data: object, *, strategy: GoalFeedbackStrategy | None = None) -> Self:
        """Rebuild a loop from :meth:`snapshot`; continuing it gives the same results as never stopping.

        Args:
            data: a snapshot (after a JSON round trip is fine).
            strategy: use this strategy instead of rebuilding the snapshot's (needed for custom ones).

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        d = check_header(data, _KIND, (1,))
        try:
            strat = (
                strategy if strategy is not None else strategy_from_dict(field(d, "strategy", dict, _KIND))
            )
            loop = cls(
                strat,
                field(d, "goal_state", dict, _KIND),
                goal_id=field(d, "goal_id", (str, type(None)), _KIND),
                retention_limit=field(d, "retention_limit", int, _KIND),
                retention_window=field(d, "retention_window", (float, type(None)), _KIND),
                timestamp_field=field(d, "timestamp_field", (str, type(None)), _KIND),
                numeric_timestamps=field(d, "numeric_timestamps", bool, _KIND),
            )
            loop._restore_state(d)
        except (ConfigurationError, InvalidInputError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"{_KIND} snapshot is invalid: {exc}") from exc
        return loop

    def _restore_state(self, d: Mapping[str, Any]) -> None:
        clock: float | None = field(d, "clock", (float, type(None)), _KIND)
        self._clock = None if clock is None else snapshot_number(clock)
        self._version = field(d, "version", int, _KIND)
        if self._version < 0:
            raise SnapshotError(f"{_KIND} snapshot has a negative version")
        for time, stamped, entry in field(d, "history", list, _KIND):
            if not isinstance(stamped, bool) or not isinstance(entry, dict):
                raise SnapshotError(f"{_KIND} snapshot has a malformed history record")
            self._push(_Record(snapshot_number(time), stamped, check_json(entry, "history")))
        self._latest = {}
        for metric, value in field(d, "latest", dict, _KIND).items():
            if metric not in self._targets:
                raise SnapshotError(f"{_KIND} snapshot has a latest reading for non-goal {metric!r}")
            self._latest[metric] = snapshot_number(value)
        self._inferred = {m: Direction(v) for m, v in field(d, "inferred", dict, _KIND).items()}
        self._reached = set(_strings(field(d, "reached", list, _KIND)))
        self._emitted = dict.fromkeys(_strings(field(d, "emitted", list, _KIND)))
        for sid, metrics, outcomes in field(d, "issued", list, _KIND):
            if not isinstance(sid, str) or not isinstance(outcomes, list):
                raise SnapshotError(f"{_KIND} snapshot has a malformed issued record")
            self._issued[sid] = _Issued(tuple(_strings(metrics)), [FeedbackOutcome(o) for o in outcomes])
        self._last_suggestions = check_json(field(d, "last_suggestions", list, _KIND), "last_suggestions")
        self._analysis = self._analyse()


def _strings(items: object) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise SnapshotError(f"{_KIND} snapshot: expected a list of strings, got {items!r}")
    return items
