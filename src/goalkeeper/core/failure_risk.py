"""failure_risk: how likely a run is to end without reaching its goal, from what a tracker knows.

A goal session reports ``failure_risk`` in [0, 1] next to progress, drift and loop risk. It is a
*noisy-OR* of independent reasons to fail, each in [0, 1]::

    failure_risk = 1 - (1 - PRIOR_WEIGHT * complexity) * (1 - peak_drift) * (1 - peak_loop_risk)

* ``complexity`` (:func:`goal_complexity`) is the prior the goal itself gives, known before the first
  step: a goal that asks for many things at once (sub-requests and constraints, one per sentence or
  plan item) fails more often. ``1 - exp(-n / COMPLEXITY_SCALE)`` for ``n`` such requests.
* ``peak_drift`` and ``peak_loop_risk`` are the highest ``drift_score`` and ``loop_risk`` seen since
  the goal was set: a run that went off-topic or looped once is more likely to fail, even after it
  recovered.

Measured on 200 tau-bench airline runs (``benchmarks/quality``, ``docs/quality.md``): AUROC for "the
run failed" from the first half of each run 0.67 on all tasks and 0.60 on the tasks whose data was
not used to choose ``PRIOR_WEIGHT`` and ``COMPLEXITY_SCALE``. It is a ranking signal for triage and
dashboards (which runs to look at first), not a verdict: the tracker's recommended action does not
depend on it. Signals that were measured and left out (the user repeating a request, correction and
apology turns, tool-error rates, steps without progress) are listed in ``docs/quality.md``.

Pure and O(1) per event: three numbers and a snapshot of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import SnapshotError
from ._checks import clip01

__all__ = [
    "COMPLEXITY_SCALE",
    "MIN_REQUEST_WORDS",
    "PRIOR_WEIGHT",
    "FailureRisk",
    "count_requests",
    "goal_complexity",
]

#: Requests in a goal at which the complexity prior reaches ``1 - 1/e`` (0.63). Chosen, with
#: :data:`PRIOR_WEIGHT`, on the even-numbered tau-bench tasks only (docs/quality.md).
COMPLEXITY_SCALE = 5.0
#: Share of the complexity prior in the noisy-OR: even the most complex goal alone is not a certain
#: failure, the run's own evidence (drift, loops) must be able to dominate it.
PRIOR_WEIGHT = 0.75
#: A sentence or clause needs this many words to count as a request ("Thanks." does not).
MIN_REQUEST_WORDS = 3

# Sentence ends, semicolons and line breaks separate requests; a period inside a number or a code
# ("v1.2", "3.5") does not end a sentence because it is not followed by white space.
_SPLIT = re.compile(r"[.!?;]+(?:\s+|$)|\n+")


def count_requests(goal: str, plan: Sequence[str] = ()) -> int:
    """How many things the goal asks for: its sentences and clauses of at least
    :data:`MIN_REQUEST_WORDS` words, or its plan items if the plan has more."""
    sentences = sum(1 for part in _SPLIT.split(goal) if len(part.split()) >= MIN_REQUEST_WORDS)
    return max(sentences, sum(1 for item in plan if item.strip()))


def goal_complexity(goal: str, plan: Sequence[str] = ()) -> float:
    """The goal's complexity prior in [0, 1): ``1 - exp(-count_requests / COMPLEXITY_SCALE)``."""
    return 1.0 - math.exp(-count_requests(goal, plan) / COMPLEXITY_SCALE)


@dataclass(slots=True)
class FailureRisk:
    """The running ``failure_risk`` of one goal (see the module docstring).

    Attributes:
        complexity: the goal's complexity prior (:func:`goal_complexity`), 0.0 before a goal.
        peak_drift: the highest drift score observed since the goal was set.
        peak_loop_risk: the highest loop risk observed since the goal was set.
    """

    complexity: float = 0.0
    peak_drift: float = 0.0
    peak_loop_risk: float = 0.0

    @classmethod
    def for_goal(cls, goal: str, plan: Sequence[str] = ()) -> FailureRisk:
        """A fresh record for a new goal: its prior, and no evidence yet."""
        return cls(goal_complexity(goal, plan))

    def observe(self, drift: float, loop_risk: float) -> None:
        """Fold in the current drift score and loop risk (values outside [0, 1] are clipped)."""
        self.peak_drift = max(self.peak_drift, clip01(drift))
        self.peak_loop_risk = max(self.peak_loop_risk, clip01(loop_risk))

    @property
    def value(self) -> float:
        """``1 - (1 - PRIOR_WEIGHT * complexity) * (1 - peak_drift) * (1 - peak_loop_risk)``."""
        keep = (1.0 - PRIOR_WEIGHT * self.complexity) * (1.0 - self.peak_drift) * (1.0 - self.peak_loop_risk)
        return clip01(1.0 - keep)

    def to_dict(self) -> dict[str, float]:
        """The record as a JSON-able dict."""
        return {
            "complexity": self.complexity,
            "peak_drift": self.peak_drift,
            "peak_loop_risk": self.peak_loop_risk,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FailureRisk:
        """Rebuild a record written by :meth:`to_dict`; raises :class:`SnapshotError` if malformed."""
        values = []
        for name in ("complexity", "peak_drift", "peak_loop_risk"):
            v = data.get(name) if isinstance(data, Mapping) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise SnapshotError(f"FailureRisk snapshot has a missing or malformed {name!r}")
            values.append(float(v))
        return cls(*values)
