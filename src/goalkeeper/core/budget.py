"""AdaptiveBudget: a step/token budget that follows progress velocity (reference section 2.8).

Each :meth:`AdaptiveBudget.update` takes the *cumulative* progress and decides, first match wins:

============ ======================================================================= =====================
decision     condition                                                               effect
============ ======================================================================= =====================
HARD_CAP     steps or tokens used up (>= 100% of the budget)                         stop
SOFT_CAP     >= soft cap (80%) of steps or tokens, and the current velocity would    wrap up
             not finish within the steps left (or is zero)
STUCK        no progress (delta <= 0) for ``stuck_threshold`` (5) updates in a row    replan
EXTEND       velocity > 1.5 x expected (needs 2 velocity records)                    +3 steps, +10% tokens,
                                                                                     at most 3x initial
TIGHTEN      velocity < 0.3 x expected (needs 2 velocity records)                    -2 steps, never below
                                                                                     steps taken + 2
HOLD         otherwise                                                               none
============ ======================================================================= =====================

Velocity is the mean progress delta over the last ``velocity_window`` updates; the expected velocity
is the task type's learned ``avg_velocity``, or 0.03 per step.

Task-type profiles: the reference keeps them as class-level state shared by every budget in the
process. We pass an explicit :class:`TaskProfiles` registry instead (a fresh one per budget unless one
is given), so two tenants or two tests never see each other's history; share one registry on purpose
to get the reference behaviour, and persist it with :meth:`TaskProfiles.export_profiles`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import (
    WindowSum,
    check_count,
    check_now,
    check_number,
    config_int,
    snapshot_number,
)
from ._snapshot import check_header, field, header, scalar_fields

__all__ = [
    "AdaptiveBudget",
    "BudgetDecision",
    "BudgetState",
    "TaskProfiles",
    "TaskTypeProfile",
    "VelocityRecord",
]

MIN_STEP_BUDGET = 5
MIN_TOKEN_BUDGET = 1000
SOFT_CAP_RANGE = (0.5, 0.95)
DEFAULT_EXPECTED_VELOCITY = 0.03
EXTEND_FACTOR, TIGHTEN_FACTOR = 1.5, 0.3
EXTEND_STEPS, TIGHTEN_STEPS = 3, 2
#: Tokens grow by 1/10 of the current token budget on EXTEND.
EXTEND_TOKEN_DIVISOR = 10
MAX_BUDGET_FACTOR = 3
#: TIGHTEN never leaves fewer than this many steps beyond those taken.
TIGHTEN_FLOOR = 2
#: EXTEND and TIGHTEN need this many velocity records.
MIN_VELOCITY_RECORDS = 2
DECISION_HISTORY = 200
PROFILE_EMA = 0.2
PROFILE_MIN_SAMPLES = 3
PROFILE_MARGIN = 1.3


class BudgetDecision(StrEnum):
    """What the budget decided on an update."""

    EXTEND = "extend"
    HOLD = "hold"
    TIGHTEN = "tighten"
    STUCK = "stuck"
    SOFT_CAP = "soft_cap"
    HARD_CAP = "hard_cap"


@dataclass(frozen=True, slots=True)
class VelocityRecord:
    """One update's progress delta, tokens and time."""

    progress_delta: float
    tokens_consumed: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class BudgetState:
    """The budget after an update.

    Attributes:
        step_budget: current step budget.
        token_budget: current token budget.
        steps_taken: updates so far.
        tokens_consumed: tokens so far.
        progress: cumulative progress in [0, 1].
        velocity: mean progress per step over the window.
        token_velocity: progress per 1000 tokens over the window.
        decision: see :class:`BudgetDecision`.
        steps_remaining: ``max(0, step_budget - steps_taken)``.
        tokens_remaining: ``max(0, token_budget - tokens_consumed)``.
        is_near_soft_cap: steps or tokens at or above the soft cap.
        is_at_hard_cap: steps or tokens at or above 100%.
        estimated_steps_to_finish: ``ceil((1 - progress) / velocity)``; ``None`` at zero velocity.
        explanation: one line for people.
    """

    step_budget: int
    token_budget: int
    steps_taken: int
    tokens_consumed: int
    progress: float
    velocity: float
    token_velocity: float
    decision: BudgetDecision
    steps_remaining: int
    tokens_remaining: int
    is_near_soft_cap: bool
    is_at_hard_cap: bool
    estimated_steps_to_finish: int | None
    explanation: str


@dataclass(frozen=True, slots=True)
class TaskTypeProfile:
    """What completed tasks of one type looked like (EMA with alpha 0.2 over completions)."""

    task_type: str
    avg_velocity: float
    avg_token_velocity: float
    sample_count: int
    total_steps: int
    total_tokens: int
    avg_completion_steps: float


def _steps_to_finish(progress: float, velocity: float) -> int | None:
    if progress >= 1.0:
        return 0
    return max(0, math.ceil((1.0 - progress) / velocity - 1e-9)) if velocity > 1e-12 else None


class TaskProfiles:
    """A registry of :class:`TaskTypeProfile` by task type.

    Args:
        profiles: initial profiles.
    """

    KIND = "TaskProfiles"
    SCHEMA = 1

    def __init__(self, profiles: Iterable[TaskTypeProfile] = ()) -> None:
        self._profiles: dict[str, TaskTypeProfile] = {p.task_type: p for p in profiles}

    def get(self, task_type: str) -> TaskTypeProfile | None:
        """The profile of ``task_type``, or ``None``."""
        return self._profiles.get(task_type)

    def __contains__(self, task_type: object) -> bool:
        return task_type in self._profiles

    def __len__(self) -> int:
        return len(self._profiles)

    def record(
        self, task_type: str, velocity: float, token_velocity: float, steps: int, tokens: int
    ) -> TaskTypeProfile:
        """Fold one completed task into its type's profile (the first sample sets the averages)."""
        old = self._profiles.get(task_type)
        if old is None:
            new = TaskTypeProfile(task_type, velocity, token_velocity, 1, steps, tokens, float(steps))
        else:
            a = PROFILE_EMA
            new = TaskTypeProfile(
                task_type,
                (1 - a) * old.avg_velocity + a * velocity,
                (1 - a) * old.avg_token_velocity + a * token_velocity,
                old.sample_count + 1,
                old.total_steps + steps,
                old.total_tokens + tokens,
                (1 - a) * old.avg_completion_steps + a * steps,
            )
        self._profiles[task_type] = new
        return new

    def estimate_budget(self, task_type: str, default_steps: int = 50) -> int:
        """``ceil(avg_completion_steps * 1.3)`` once the type has 3 samples, else ``default_steps``."""
        p = self._profiles.get(task_type)
        if p is None or p.sample_count < PROFILE_MIN_SAMPLES:
            return default_steps
        return math.ceil(p.avg_completion_steps * PROFILE_MARGIN - 1e-9)

    def export_profiles(self) -> dict[str, dict[str, Any]]:
        """Every profile as a JSON-able dict, by task type."""
        return {t: scalar_fields(p) for t, p in self._profiles.items()}

    def import_profiles(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        """Add or replace profiles from :meth:`export_profiles` output (all or nothing).

        Raises:
            SnapshotError: a profile is malformed.
        """
        k = "TaskTypeProfile"
        if not isinstance(data, Mapping):
            raise SnapshotError("profiles must be a dict of task type -> profile")
        parsed = {}
        for t, p in data.items():
            if not isinstance(p, Mapping) or p.get("task_type") != t:
                raise SnapshotError(f"profile {t!r} must be a dict whose task_type is {t!r}")
            parsed[t] = TaskTypeProfile(
                field(p, "task_type", str, k),
                snapshot_number(field(p, "avg_velocity", float, k)),
                snapshot_number(field(p, "avg_token_velocity", float, k)),
                field(p, "sample_count", int, k),
                field(p, "total_steps", int, k),
                field(p, "total_tokens", int, k),
                snapshot_number(field(p, "avg_completion_steps", float, k)),
            )
        self._profiles.update(parsed)


class AdaptiveBudget:
    """A step and token budget that extends for fast runs and tightens for slow ones.

    Args:
        step_budget: initial steps (raised to at least 5).
        token_budget: initial tokens (raised to at least 1000).
        soft_cap_ratio: share of the budget where the soft cap starts (clamped to 0.5-0.95).
        velocity_window: updates the velocity is averaged over (>= 2).
        stuck_threshold: updates without progress that make STUCK (>= 1).
        task_type: which :class:`TaskTypeProfile` supplies the expected velocity.
        profiles: the profile registry; a fresh empty one by default.

    Raises:
        ConfigurationError: an argument has the wrong type or is out of range.
    """

    KIND = "AdaptiveBudget"
    SCHEMA = 1

    def __init__(
        self,
        step_budget: int = 50,
        token_budget: int = 100000,
        soft_cap_ratio: float = 0.8,
        velocity_window: int = 10,
        stuck_threshold: int = 5,
        task_type: str = "general",
        *,
        profiles: TaskProfiles | None = None,
    ) -> None:
        self._initial_steps = max(MIN_STEP_BUDGET, config_int("step_budget", step_budget, 0))
        self._initial_tokens = max(MIN_TOKEN_BUDGET, config_int("token_budget", token_budget, 0))
        try:
            ratio = check_number("soft_cap_ratio", soft_cap_ratio)
        except InvalidInputError as exc:
            raise ConfigurationError(str(exc)) from None
        self._soft = min(SOFT_CAP_RANGE[1], max(SOFT_CAP_RANGE[0], ratio))
        self._window_size = config_int("velocity_window", velocity_window, MIN_VELOCITY_RECORDS)
        self._stuck_threshold = config_int("stuck_threshold", stuck_threshold, 1)
        if not isinstance(task_type, str) or not task_type:
            raise ConfigurationError("task_type must be a non-empty string")
        self._task_type = task_type
        if profiles is not None and not isinstance(profiles, TaskProfiles):
            raise ConfigurationError("profiles must be a TaskProfiles registry")
        self.profiles = profiles if profiles is not None else TaskProfiles()
        self.reset()

    def reset(self) -> None:
        """Back to the initial budgets with no steps, velocities or decisions; profiles are kept."""
        self._step_budget = self._initial_steps
        self._token_budget = self._initial_tokens
        self._steps = 0
        self._tokens = 0
        self._progress = 0.0
        self._records: deque[VelocityRecord] = deque(maxlen=self._window_size)
        self._deltas = WindowSum(self._window_size)
        self._window_tokens = WindowSum(self._window_size)
        self._zero_streak = 0
        self._decisions: deque[BudgetDecision] = deque(maxlen=DECISION_HISTORY)
        self._last_ts = 0.0

    @property
    def task_type(self) -> str:
        """The task type this budget learns for."""
        return self._task_type

    @property
    def velocity(self) -> float:
        """Mean progress delta per update over the window."""
        return self._deltas.mean()

    @property
    def token_velocity(self) -> float:
        """Progress per 1000 tokens over the window (0.0 with no tokens)."""
        t = self._window_tokens.total
        return self._deltas.total / (t / 1000.0) if t > 0 else 0.0

    @property
    def expected_velocity(self) -> float:
        """The task type's learned velocity when positive, else 0.03 per step."""
        p = self.profiles.get(self._task_type)
        return p.avg_velocity if p is not None and p.avg_velocity > 0 else DEFAULT_EXPECTED_VELOCITY

    def _near_cap(self, ratio: float) -> bool:
        return self._steps >= ratio * self._step_budget or self._tokens >= ratio * self._token_budget

    def _decide(self) -> BudgetDecision:
        v, expected = self.velocity, self.expected_velocity
        if self._near_cap(1.0):
            return BudgetDecision.HARD_CAP
        finish = _steps_to_finish(self._progress, v)
        if self._near_cap(self._soft) and (finish is None or finish > self._step_budget - self._steps):
            return BudgetDecision.SOFT_CAP
        if self._zero_streak >= self._stuck_threshold:
            return BudgetDecision.STUCK
        if len(self._records) >= MIN_VELOCITY_RECORDS:
            if v > EXTEND_FACTOR * expected:
                return BudgetDecision.EXTEND
            if v < TIGHTEN_FACTOR * expected:
                return BudgetDecision.TIGHTEN
        return BudgetDecision.HOLD

    def update(
        self,
        progress: float,
        tokens_used: int = 0,
        force_decision: BudgetDecision | str | None = None,
        *,
        now: float | None = None,
    ) -> BudgetState:
        """Record one step at cumulative ``progress`` and decide.

        Args:
            progress: cumulative progress in [0, 1] after this step.
            tokens_used: tokens this step spent (>= 0).
            force_decision: take this decision (and its effect) instead of the table's.
            now: time of the step in seconds (default: the last known time).

        Raises:
            InvalidInputError: an argument is bad (state is unchanged).
        """
        p = check_number("progress", progress, 0.0, 1.0)
        tokens = check_count("tokens_used", tokens_used)
        try:
            forced = None if force_decision is None else BudgetDecision(force_decision)
        except ValueError:
            raise InvalidInputError(f"unknown decision {force_decision!r}", field="force_decision") from None
        ts = check_now(now)
        if ts is not None:
            self._last_ts = ts
        delta = p - self._progress
        self._steps += 1
        self._tokens += tokens
        self._progress = p
        self._records.append(VelocityRecord(delta, tokens, self._last_ts))
        self._deltas.push(delta)
        self._window_tokens.push(float(tokens))
        self._zero_streak = self._zero_streak + 1 if delta <= 0.0 else 0
        decision = forced if forced is not None else self._decide()
        if decision is BudgetDecision.EXTEND:
            self._step_budget = min(self._step_budget + EXTEND_STEPS, MAX_BUDGET_FACTOR * self._initial_steps)
            self._token_budget = min(
                self._token_budget + self._token_budget // EXTEND_TOKEN_DIVISOR,
                MAX_BUDGET_FACTOR * self._initial_tokens,
            )
        elif decision is BudgetDecision.TIGHTEN:
            floor = self._steps + TIGHTEN_FLOOR
            self._step_budget = min(self._step_budget, max(self._step_budget - TIGHTEN_STEPS, floor))
        self._decisions.append(decision)
        return self._state(decision)

    def _state(self, decision: BudgetDecision) -> BudgetState:
        v = self.velocity
        finish = _steps_to_finish(self._progress, v)
        return BudgetState(
            step_budget=self._step_budget,
            token_budget=self._token_budget,
            steps_taken=self._steps,
            tokens_consumed=self._tokens,
            progress=self._progress,
            velocity=v,
            token_velocity=self.token_velocity,
            decision=decision,
            steps_remaining=max(0, self._step_budget - self._steps),
            tokens_remaining=max(0, self._token_budget - self._tokens),
            is_near_soft_cap=self._near_cap(self._soft),
            is_at_hard_cap=self._near_cap(1.0),
            estimated_steps_to_finish=finish,
            explanation=(
                f"{decision.value}: {self._steps}/{self._step_budget} steps, "
                f"{self._tokens}/{self._token_budget} tokens, velocity {v:.3f}/step "
                f"(expected {self.expected_velocity:.3f}), progress {self._progress:.0%}"
            ),
        )

    def record_task_completion(self) -> TaskTypeProfile | None:
        """Fold this run into its task type's profile (EMA 0.2): overall velocity
        (progress / steps), token velocity (progress per 1000 tokens) and steps taken.
        Returns the updated profile, or ``None`` when no step was recorded."""
        if self._steps == 0:
            return None
        tv = self._progress / (self._tokens / 1000.0) if self._tokens else 0.0
        return self.profiles.record(
            self._task_type, self._progress / self._steps, tv, self._steps, self._tokens
        )

    def estimate_budget(self, task_type: str | None = None, default_steps: int = 50) -> int:
        """Suggested step budget for a task type (default: this budget's) from its profile."""
        return self.profiles.estimate_budget(task_type or self._task_type, default_steps)

    def get_stats(self) -> dict[str, Any]:
        """The reference's statistics (``decision_history`` holds the last 10 decisions)."""
        return {
            "step_budget": self._step_budget,
            "initial_step_budget": self._initial_steps,
            "token_budget": self._token_budget,
            "steps_taken": self._steps,
            "tokens_consumed": self._tokens,
            "progress": self._progress,
            "current_velocity": self.velocity,
            "zero_velocity_streak": self._zero_streak,
            "budget_utilization": self._steps / self._step_budget,
            "decision_history": [d.value for d in list(self._decisions)[-10:]],
            "task_type": self._task_type,
            "task_profile_exists": self._task_type in self.profiles,
        }

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state, including a copy of the profile registry."""
        return {
            **header(self.KIND, self.SCHEMA),
            "config": [self._initial_steps, self._initial_tokens, self._soft, self._window_size],
            "stuck_threshold": self._stuck_threshold,
            "task_type": self._task_type,
            "budgets": [self._step_budget, self._token_budget],
            "steps": self._steps,
            "tokens": self._tokens,
            "progress": self._progress,
            "records": [scalar_fields(r) for r in self._records],
            "deltas": self._deltas.to_dict(),
            "window_tokens": self._window_tokens.to_dict(),
            "zero_streak": self._zero_streak,
            "decisions": [d.value for d in self._decisions],
            "last_ts": self._last_ts,
            "profiles": self.profiles.export_profiles(),
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any], *, profiles: TaskProfiles | None = None) -> Self:
        """Rebuild a budget from :meth:`snapshot` output.

        Args:
            data: the snapshot.
            profiles: a shared registry to use; by default a new one is built from the snapshot's copy.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        k = cls.KIND
        d = check_header(data, k, (cls.SCHEMA,))
        try:
            if profiles is None:
                profiles = TaskProfiles()
                profiles.import_profiles(field(d, "profiles", dict, k))
            steps0, tokens0, soft, window = field(d, "config", list, k)
            obj = cls(steps0, tokens0, soft, window, field(d, "stuck_threshold", int, k),
                      field(d, "task_type", str, k), profiles=profiles)  # fmt: skip
            obj._step_budget, obj._token_budget = (
                check_count("budgets", b, 1) for b in field(d, "budgets", list, k)
            )
            obj._steps = check_count("steps", field(d, "steps", int, k))
            obj._tokens = check_count("tokens", field(d, "tokens", int, k))
            obj._progress = snapshot_number(field(d, "progress", float, k))
            for r in field(d, "records", list, k):
                obj._records.append(
                    VelocityRecord(
                        snapshot_number(field(r, "progress_delta", float, k)),
                        check_count("tokens_consumed", field(r, "tokens_consumed", int, k)),
                        snapshot_number(field(r, "timestamp", float, k)),
                    )
                )
            obj._deltas = WindowSum.from_dict(obj._window_size, field(d, "deltas", dict, k))
            obj._window_tokens = WindowSum.from_dict(obj._window_size, field(d, "window_tokens", dict, k))
            obj._zero_streak = check_count("zero_streak", field(d, "zero_streak", int, k))
            obj._decisions.extend(BudgetDecision(x) for x in field(d, "decisions", list, k))
            obj._last_ts = snapshot_number(field(d, "last_ts", float, k))
        except SnapshotError:
            raise
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc}") from exc
        return obj
