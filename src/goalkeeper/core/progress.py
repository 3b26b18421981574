"""Progress: :class:`ProgressEstimator` (velocity, acceleration, ETA; reference section 2.12).

The goal tree and the adaptive budget live in :mod:`.goal_tree` and :mod:`.budget` and are
re-exported here, so ``goalkeeper.core.progress`` offers all three.

Formulas (over the last ``velocity_window`` steps):

* velocity = mean progress delta per step; token velocity = progress per 1000 tokens;
* acceleration = mean of the second half of the recorded velocities minus the mean of the first half;
* steps remaining = ``ceil((1 - progress) / velocity)``, ``None`` when velocity is near zero
  (``<= 1e-4`` per step: at that pace a goal takes more than 10,000 steps);
* confidence interval of the steps remaining: from the 95% interval of the mean velocity,
  ``velocity +- 1.96 * std(deltas) / sqrt(n)``; the upper end is ``None`` when the slow end is near zero.

Status, first match wins: COMPLETE (progress >= 1), JUST_STARTED (no steps), STALLED (velocity near
zero), then by the projected total against the budget (the worse of steps and tokens):
AHEAD_OF_SCHEDULE (<= 70%), ON_TRACK (<= 120%), AT_RISK (more).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from ..errors import SnapshotError
from ._checks import WindowSum, check_count, check_number, clip01, config_int, snapshot_number
from ._snapshot import check_header, field, header
from .budget import (
    AdaptiveBudget,
    BudgetDecision,
    BudgetState,
    TaskProfiles,
    TaskTypeProfile,
    VelocityRecord,
)
from .goal_tree import GoalNode, GoalTree, NodeLevel, NodeStatus

__all__ = [
    "AdaptiveBudget",
    "BudgetDecision",
    "BudgetState",
    "GoalNode",
    "GoalTree",
    "NodeLevel",
    "NodeStatus",
    "ProgressEstimate",
    "ProgressEstimator",
    "ProgressStatus",
    "ProgressTrend",
    "TaskProfiles",
    "TaskTypeProfile",
    "VelocityRecord",
]

#: Velocity at or below this (progress per step) counts as zero.
VELOCITY_EPSILON = 1e-4
#: Acceleration beyond +-this is an improving / declining trend.
TREND_ACCELERATION = 0.005
#: Projected total / budget at or below which the run is ahead of schedule / on track.
AHEAD_RATIO = 0.7
ON_TRACK_RATIO = 1.2
#: z for the 95% confidence interval of the mean velocity.
CI_Z = 1.96


class ProgressStatus(StrEnum):
    """Where a run stands against its budget."""

    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    STALLED = "stalled"
    AHEAD_OF_SCHEDULE = "ahead_of_schedule"
    JUST_STARTED = "just_started"
    COMPLETE = "complete"


class ProgressTrend(StrEnum):
    """Direction of velocity (by acceleration +-0.005)."""

    IMPROVING = "improving"
    STABLE = "stable"
    DECLINING = "declining"


@dataclass(frozen=True, slots=True)
class ProgressEstimate:
    """A progress estimate.

    Attributes:
        estimated_steps_remaining: steps to completion at the current velocity (``None`` if stalled).
        estimated_tokens_remaining: tokens to completion at the current token velocity (``None`` when
            unknown).
        velocity: progress per step (window mean).
        token_velocity: progress per 1000 tokens (window).
        acceleration: change of velocity (second half minus first half of recorded velocities).
        status: see :class:`ProgressStatus`.
        confidence_interval: ``(low, high)`` steps remaining, ``high`` ``None`` when unbounded;
            ``None`` when velocity is near zero.
        current_progress: progress in [0, 1] the estimate is for.
        steps_taken: steps recorded.
        tokens_used: tokens recorded.
        trend: see :class:`ProgressTrend`.
        explanation: one line for people.
    """

    estimated_steps_remaining: int | None
    estimated_tokens_remaining: int | None
    velocity: float
    token_velocity: float
    acceleration: float
    status: ProgressStatus
    confidence_interval: tuple[int, int | None] | None
    current_progress: float
    steps_taken: int
    tokens_used: int
    trend: ProgressTrend
    explanation: str


def ceil_steps(x: float) -> int:
    """``ceil`` that ignores float noise (``0.3 / 0.1`` is 3 steps, not 4)."""
    return max(0, math.ceil(x - 1e-9))


class ProgressEstimator:
    """Estimates velocity, acceleration and time to completion from per-step progress deltas.

    Args:
        velocity_window: steps the velocity is averaged over (>= 2).
        max_history: step records kept (>= 1).

    Raises:
        ConfigurationError: an argument is out of range or of the wrong type.
    """

    KIND = "ProgressEstimator"
    SCHEMA = 1

    def __init__(self, velocity_window: int = 20, max_history: int = 500) -> None:
        self._window = config_int("velocity_window", velocity_window, 2)
        self._max_history = config_int("max_history", max_history, 1)
        self.reset()

    def reset(self) -> None:
        """Forget every recorded step."""
        self._history: deque[tuple[int, float, int]] = deque(maxlen=self._max_history)
        self._deltas = WindowSum(self._window)
        self._squares = WindowSum(self._window)
        self._tokens = WindowSum(self._window)
        self._velocities: deque[float] = deque(maxlen=self._window)
        self._count = 0
        self._total_progress = 0.0
        self._total_tokens = 0

    def record_step(self, step_number: int, progress_delta: float, tokens_used: int = 0) -> None:
        """Record one step's progress (clamped to [0, 1]) and tokens.

        Raises:
            InvalidInputError: a negative or non-integer step number or token count, or a
                non-finite delta.
        """
        check_count("step_number", step_number)
        delta = clip01(check_number("progress_delta", progress_delta))
        check_count("tokens_used", tokens_used)
        self._history.append((step_number, delta, tokens_used))
        self._deltas.push(delta)
        self._squares.push(delta * delta)
        self._tokens.push(float(tokens_used))
        self._velocities.append(self.velocity)
        self._count += 1
        self._total_progress += delta
        self._total_tokens += tokens_used

    # -- statistics -----------------------------------------------------------------------------

    @property
    def velocity(self) -> float:
        """Mean progress per step over the window."""
        return max(0.0, self._deltas.mean())

    @property
    def token_velocity(self) -> float:
        """Progress per 1000 tokens over the window (0.0 with no tokens)."""
        tokens = self._tokens.total
        return max(0.0, self._deltas.total) / (tokens / 1000.0) if tokens > 0 else 0.0

    @property
    def acceleration(self) -> float:
        """Mean of the later half of recorded velocities minus the mean of the earlier half."""
        v = list(self._velocities)
        half = len(v) // 2
        if half == 0:
            return 0.0
        return sum(v[-half:]) / half - sum(v[:half]) / half

    @property
    def progress(self) -> float:
        """Sum of the recorded deltas, capped at 1."""
        return min(1.0, self._total_progress)

    def get_trend(self) -> ProgressTrend:
        """IMPROVING above +0.005 acceleration, DECLINING below -0.005, else STABLE."""
        a = self.acceleration
        if a > TREND_ACCELERATION:
            return ProgressTrend.IMPROVING
        if a < -TREND_ACCELERATION:
            return ProgressTrend.DECLINING
        return ProgressTrend.STABLE

    def predict_completion(self, current_velocity: float | None = None) -> int | None:
        """Steps to completion at ``current_velocity`` (default: the measured one); ``None`` when the
        velocity is near zero, 0 when already complete.

        Raises:
            InvalidInputError: ``current_velocity`` is not a finite number.
        """
        v = self.velocity if current_velocity is None else check_number("current_velocity", current_velocity)
        if self.progress >= 1.0:
            return 0
        return ceil_steps((1.0 - self.progress) / v) if v > VELOCITY_EPSILON else None

    def _interval(self, remaining: float) -> tuple[int, int | None] | None:
        v, n = self.velocity, len(self._deltas)
        if v <= VELOCITY_EPSILON:
            return None
        var = max(0.0, self._squares.mean() - self._deltas.mean() ** 2)
        margin = CI_Z * math.sqrt(var / n)
        high = ceil_steps(remaining / (v - margin)) if v - margin > VELOCITY_EPSILON else None
        return ceil_steps(remaining / (v + margin)), high

    def estimate(
        self,
        current_progress: float | None = None,
        total_steps_budget: int = 50,
        total_tokens_budget: int = 100000,
    ) -> ProgressEstimate:
        """Estimate the rest of the run.

        Args:
            current_progress: progress in [0, 1]; defaults to the sum of recorded deltas.
            total_steps_budget: steps the run may take (>= 1).
            total_tokens_budget: tokens the run may spend (>= 1).

        Raises:
            InvalidInputError: an argument is out of range or of the wrong type.
        """
        p = (
            self.progress
            if current_progress is None
            else check_number("current_progress", current_progress, 0, 1)
        )
        steps_budget = check_count("total_steps_budget", total_steps_budget, 1)
        tokens_budget = check_count("total_tokens_budget", total_tokens_budget, 1)
        v, tv = self.velocity, self.token_velocity
        left = 1.0 - p
        done = p >= 1.0
        steps_left = 0 if done else ceil_steps(left / v) if v > VELOCITY_EPSILON else None
        tokens_left = 0 if done else ceil_steps(left / tv * 1000.0) if tv > VELOCITY_EPSILON else None
        if done:
            status = ProgressStatus.COMPLETE
        elif self._count == 0:
            status = ProgressStatus.JUST_STARTED
        elif steps_left is None:
            status = ProgressStatus.STALLED
        else:
            ratio = (self._count + steps_left) / steps_budget
            if tokens_left is not None:
                ratio = max(ratio, (self._total_tokens + tokens_left) / tokens_budget)
            status = (
                ProgressStatus.AHEAD_OF_SCHEDULE
                if ratio <= AHEAD_RATIO
                else ProgressStatus.ON_TRACK
                if ratio <= ON_TRACK_RATIO
                else ProgressStatus.AT_RISK
            )
        trend = self.get_trend()
        eta = "unknown" if steps_left is None else f"~{steps_left} steps"
        return ProgressEstimate(
            estimated_steps_remaining=steps_left,
            estimated_tokens_remaining=tokens_left,
            velocity=v,
            token_velocity=tv,
            acceleration=self.acceleration,
            status=status,
            confidence_interval=(0, 0) if done else self._interval(left),
            current_progress=p,
            steps_taken=self._count,
            tokens_used=self._total_tokens,
            trend=trend,
            explanation=f"{p:.0%} done at {v:.3f}/step, {trend.value}; {eta} left ({status.value})",
        )

    def get_stats(self) -> dict[str, Any]:
        """Counts, totals, velocities, acceleration and trend."""
        return {
            "steps_recorded": self._count,
            "total_progress": self.progress,
            "total_tokens": self._total_tokens,
            "velocity": self.velocity,
            "token_velocity": self.token_velocity,
            "acceleration": self.acceleration,
            "trend": self.get_trend().value,
            "history_size": len(self._history),
        }

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            **header(self.KIND, self.SCHEMA),
            "velocity_window": self._window,
            "max_history": self._max_history,
            "history": [list(h) for h in self._history],
            "deltas": self._deltas.to_dict(),
            "squares": self._squares.to_dict(),
            "tokens": self._tokens.to_dict(),
            "velocities": list(self._velocities),
            "count": self._count,
            "total_progress": self._total_progress,
            "total_tokens": self._total_tokens,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild an estimator from :meth:`snapshot` output.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        k = cls.KIND
        d = check_header(data, k, (cls.SCHEMA,))
        try:
            obj = cls(field(d, "velocity_window", int, k), field(d, "max_history", int, k))
            for h in field(d, "history", list, k):
                step, delta, tokens = h
                obj._history.append(
                    (check_count("step", step), snapshot_number(delta), check_count("tokens", tokens))
                )
            obj._deltas = WindowSum.from_dict(obj._window, field(d, "deltas", dict, k))
            obj._squares = WindowSum.from_dict(obj._window, field(d, "squares", dict, k))
            obj._tokens = WindowSum.from_dict(obj._window, field(d, "tokens", dict, k))
            obj._velocities.extend(snapshot_number(v) for v in field(d, "velocities", list, k))
            obj._count = check_count("count", field(d, "count", int, k))
            obj._total_progress = snapshot_number(field(d, "total_progress", float, k))
            obj._total_tokens = check_count("total_tokens", field(d, "total_tokens", int, k))
        except SnapshotError:
            raise
        except (ValueError, TypeError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc}") from exc
        return obj
