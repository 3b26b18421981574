"""System 1 / System 2 routing: decide when a step needs slow, deliberate reasoning.

System 1 is the fast path (heuristics, cached choices, a cheap model); System 2 is full reasoning
(a strong model, LLM verification of the step). :class:`DualProcessRouter` escalates to System 2
when **any one** of seven triggers fires:

=====================  =============================================
trigger                condition (defaults)
=====================  =============================================
high surprise          ``surprise_magnitude > 0.6``
low agreement          ``population_agreement < 0.4``
novelty                ``task_novelty > 0.7``
safety                 ``enterprise_safety > 0.8``
user request           ``user_explicit_request``
previous error         ``error_in_last_step``
goal drift             ``goal_drift > 0.4``
=====================  =============================================

Every comparison is strict: a value exactly at its threshold does not escalate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_number, config_number
from ._snapshot import check_header, field, header

__all__ = ["DualProcessRouter", "EscalationContext", "ProcessType"]


class ProcessType(StrEnum):
    """Which reasoning path a step takes."""

    SYSTEM1 = "system1"  #: fast, heuristic, cached
    SYSTEM2 = "system2"  #: slow, full LLM reasoning


@dataclass(frozen=True, slots=True)
class EscalationContext:
    """What the router looks at before a step. The floats are all in [0, 1].

    Attributes:
        surprise_magnitude: how surprising the last outcome was (prediction engine).
        population_agreement: how much the candidate choices agree (1.0 = unanimous).
        task_novelty: how unlike known tasks this one is.
        enterprise_safety: how safety-sensitive the organisation marks this context.
        user_explicit_request: the user asked the agent to think carefully.
        error_in_last_step: the previous step failed (recovery always gets System 2).
        goal_drift: the goal tracker's drift score.

    Raises:
        InvalidInputError: a float is not finite or outside [0, 1], or a flag is not a bool;
            ``.field`` names it.
    """

    surprise_magnitude: float = 0.0
    population_agreement: float = 1.0
    task_novelty: float = 0.0
    enterprise_safety: float = 0.0
    user_explicit_request: bool = False
    error_in_last_step: bool = False
    goal_drift: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("user_explicit_request", "error_in_last_step"):
                if not isinstance(value, bool):
                    raise InvalidInputError(f"must be a bool, got {value!r}", field=f.name)
            else:
                object.__setattr__(self, f.name, check_number(f.name, value, 0.0, 1.0))


#: The context of a step with nothing but drift and the last step's failure to report.
_DEFAULT_CONTEXT = EscalationContext()

#: Constructor argument names, in the order of the trigger table.
_THRESHOLDS = (
    "surprise_threshold",
    "agreement_threshold",
    "novelty_threshold",
    "safety_threshold",
    "drift_threshold",
)


class DualProcessRouter:
    """Routes each decision to System 1 or System 2 and keeps counts.

    Args:
        surprise_threshold: escalate when ``surprise_magnitude`` is above it.
        agreement_threshold: escalate when ``population_agreement`` is below it.
        novelty_threshold: escalate when ``task_novelty`` is above it.
        safety_threshold: escalate when ``enterprise_safety`` is above it.
        drift_threshold: escalate when ``goal_drift`` is above it.

    Raises:
        ConfigurationError: a threshold is not a finite number in [0, 1].
    """

    _KIND = "DualProcessRouter"
    _SCHEMA = 1

    def __init__(
        self,
        surprise_threshold: float = 0.6,
        agreement_threshold: float = 0.4,
        novelty_threshold: float = 0.7,
        safety_threshold: float = 0.8,
        drift_threshold: float = 0.4,
    ) -> None:
        self.surprise_threshold = config_number("surprise_threshold", surprise_threshold, 0.0, 1.0)
        self.agreement_threshold = config_number("agreement_threshold", agreement_threshold, 0.0, 1.0)
        self.novelty_threshold = config_number("novelty_threshold", novelty_threshold, 0.0, 1.0)
        self.safety_threshold = config_number("safety_threshold", safety_threshold, 0.0, 1.0)
        self.drift_threshold = config_number("drift_threshold", drift_threshold, 0.0, 1.0)
        self._system1 = 0
        self._system2 = 0
        self._reasons: list[str] = []

    def route(self, ctx: EscalationContext) -> ProcessType:
        """Decide the path for one step and count the decision.

        Raises:
            InvalidInputError: ``ctx`` is not an :class:`EscalationContext`.
        """
        if not isinstance(ctx, EscalationContext):
            raise InvalidInputError(f"must be an EscalationContext, got {type(ctx).__name__}", field="ctx")
        return self._count(self.escalation_reasons(ctx))

    def _route(self, *, goal_drift: float, error_in_last_step: bool) -> ProcessType:
        """:meth:`route` for a context whose other fields have their defaults, from values the caller
        computed itself (GoalTracker: its drift score, in [0, 1]). Building and validating an
        :class:`EscalationContext` per step cost more than the decision."""
        d = _DEFAULT_CONTEXT
        return self._count(
            self._reasons_for(
                d.surprise_magnitude,
                d.population_agreement,
                d.task_novelty,
                d.enterprise_safety,
                d.user_explicit_request,
                error_in_last_step,
                goal_drift,
            )
        )

    def _count(self, reasons: list[str]) -> ProcessType:
        self._reasons = reasons
        if reasons:
            self._system2 += 1
            return ProcessType.SYSTEM2
        self._system1 += 1
        return ProcessType.SYSTEM1

    def escalation_reasons(self, ctx: EscalationContext) -> list[str]:
        """Every trigger ``ctx`` fires, in table order, without counting a decision."""
        return self._reasons_for(
            ctx.surprise_magnitude,
            ctx.population_agreement,
            ctx.task_novelty,
            ctx.enterprise_safety,
            ctx.user_explicit_request,
            ctx.error_in_last_step,
            ctx.goal_drift,
        )

    def _reasons_for(
        self,
        surprise: float,
        agreement: float,
        novelty: float,
        safety: float,
        user_request: bool,
        error: bool,
        drift: float,
    ) -> list[str]:
        reasons: list[str] = []
        if surprise > self.surprise_threshold:
            reasons.append(f"high surprise: surprise_magnitude {surprise} > {self.surprise_threshold}")
        if agreement < self.agreement_threshold:
            reasons.append(f"low agreement: population_agreement {agreement} < {self.agreement_threshold}")
        if novelty > self.novelty_threshold:
            reasons.append(f"novel task: task_novelty {novelty} > {self.novelty_threshold}")
        if safety > self.safety_threshold:
            reasons.append(f"safety: enterprise_safety {safety} > {self.safety_threshold}")
        if user_request:
            reasons.append("user request: the user asked for careful reasoning")
        if error:
            reasons.append("previous error: the last step failed")
        if drift > self.drift_threshold:
            reasons.append(f"goal drift: goal_drift {drift} > {self.drift_threshold}")
        return reasons

    @property
    def last_escalation_reasons(self) -> list[str]:
        """Why the last decision went to System 2 (a copy; empty after a System 1 decision)."""
        return list(self._reasons)

    @property
    def system2_ratio(self) -> float:
        """Fraction of decisions routed to System 2, in [0, 1]; 0.0 before any decision."""
        total = self._system1 + self._system2
        return self._system2 / total if total else 0.0

    def get_stats(self) -> dict[str, Any]:
        """``{system1_count, system2_count, system2_ratio, total_decisions}``."""
        return {
            "system1_count": self._system1,
            "system2_count": self._system2,
            "system2_ratio": self.system2_ratio,
            "total_decisions": self._system1 + self._system2,
        }

    def thresholds(self) -> dict[str, float]:
        """The five thresholds by constructor argument name."""
        return {name: getattr(self, name) for name in _THRESHOLDS}

    def to_dict(self) -> dict[str, Any]:
        """``{"thresholds": {...}, "stats": get_stats()}``, JSON-able."""
        return {"thresholds": self.thresholds(), "stats": self.get_stats()}

    def snapshot(self) -> dict[str, Any]:
        """Thresholds, counts and the last reasons as a JSON-able dict."""
        return {
            **header(self._KIND, self._SCHEMA),
            "thresholds": self.thresholds(),
            "system1_count": self._system1,
            "system2_count": self._system2,
            "last_escalation_reasons": list(self._reasons),
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a router from :meth:`snapshot` output.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        k = cls._KIND
        data = check_header(data, k, (cls._SCHEMA,))
        thresholds = field(data, "thresholds", dict, k)
        if set(thresholds) != set(_THRESHOLDS):
            raise SnapshotError(f"{k} snapshot thresholds must be exactly {', '.join(_THRESHOLDS)}")
        try:
            router = cls(**thresholds)
        except ConfigurationError as exc:
            raise SnapshotError(f"{k} snapshot has a bad threshold: {exc}") from exc
        counts = [field(data, name, int, k) for name in ("system1_count", "system2_count")]
        if min(counts) < 0:
            raise SnapshotError(f"{k} snapshot decision counts must be >= 0")
        router._system1, router._system2 = counts
        reasons = field(data, "last_escalation_reasons", list, k)
        if not all(isinstance(r, str) for r in reasons):
            raise SnapshotError(f"{k} snapshot field 'last_escalation_reasons' must be a list of strings")
        router._reasons = list(reasons)
        return router
