"""The tracker's numbers and its recommended-action precedence, as data and one pure function.

Two precedences exist, both first-match-wins:

* :data:`REFERENCE_PRECEDENCE`: the reference GoalTracker's 7 rules, verbatim. Any loop replans at
  once, and one badly aligned step aborts the run.
* :data:`PRECEDENCE` (the ``goalkeeper`` profile): the same rules made graded. A loop is a nudge
  first, a replan if it goes on, a stop only if it goes on after the replan; low alignment is
  judged on its smoothed value and must persist (``PROGRESS_STALL_TURNS`` turns) before a replan,
  and persist after that replan before an abort.

:func:`decide` applies either to a handful of numbers, so every rule is testable on its own.
"""

from __future__ import annotations

from typing import Literal

from .loops import Escalation

__all__ = [
    "ABORT_ALIGNMENT",
    "ADJUST_ALIGNMENT",
    "DRIFT_CARRY",
    "DRIFT_CRITICAL",
    "DRIFT_SMOOTHING",
    "DRIFT_WARNING",
    "LLM_BLEND_HEURISTIC",
    "LLM_BLEND_LLM",
    "LLM_VERIFY_BELOW",
    "LOOP_THRESHOLD",
    "NO_PLAN_EXPECTED_STEPS",
    "PRECEDENCE",
    "PROGRESS_STALL_TURNS",
    "REFERENCE_PRECEDENCE",
    "STATE_HASH_HISTORY",
    "VERIFICATION_HISTORY",
    "Action",
    "decide",
]

#: What the tracker recommends.
Action = Literal["continue", "adjust", "replan", "abort"]

#: Drift at or above this: "adjust" (warn).
DRIFT_WARNING = 0.3
#: Drift at or above this: "replan".
DRIFT_CRITICAL = 0.6
#: Identical state hashes before the reference profile declares a loop.
LOOP_THRESHOLD = 3
#: Consecutive turns without progress before the tracker intervenes ("replan").
PROGRESS_STALL_TURNS = 5
#: Heuristic alignment below which an ``llm_verify_fn`` (if any) is asked.
LLM_VERIFY_BELOW = 0.7
#: Blend of the re-scored alignment: ``0.3 * heuristic + 0.7 * llm``.
LLM_BLEND_HEURISTIC = 0.3
LLM_BLEND_LLM = 0.7
#: Alignment below this: "abort" (reference: at once; goalkeeper: only after a replan was ignored).
ABORT_ALIGNMENT = 0.3
#: Alignment below this: "adjust"; at or above it a step counts as aligned.
ADJUST_ALIGNMENT = 0.5
#: Verifications kept (reference: 200).
VERIFICATION_HISTORY = 200
#: State hashes kept by the reference loop check (reference: 500).
STATE_HASH_HISTORY = 500
#: Weight of the newest step's alignment in the smoothed alignment the goalkeeper profile judges
#: (``0.5 * this step + 0.5 * previous``): one badly aligned step is not enough to act on.
DRIFT_SMOOTHING = 0.5
#: Share of the previous drift carried into the next step when the DriftEngine's new score is lower
#: (goalkeeper profile): ``drift = max(score, (1 - c) * score + c * previous)``. Drift rises at once
#: (an off-topic step is flagged on the step itself) and falls over a couple of steps. Measured on
#: the tau-bench drift injection (benchmarks/quality): AUROC 0.878 -> 0.928 and median detection
#: 3 -> 1 step against the former ``0.5 * score + 0.5 * previous``; see docs/quality.md.
DRIFT_CARRY = 0.3
#: Without a plan, each productive step closes this fraction of the remaining distance: progress
#: ``1 - (1 - 1/N)^k`` after ``k`` productive steps. A plan, sub-goals or metrics do better.
NO_PLAN_EXPECTED_STEPS = 20

#: The recommended-action precedence of the goalkeeper profile, first match wins. The reference
#: profile uses the reference's 7 rules (see docs/decisions.md).
PRECEDENCE: tuple[tuple[Action, str], ...] = (
    ("abort", "loop persisted after a nudge and a replan (escalation: stop)"),
    ("replan", "loop persisted after a nudge (escalation: replan)"),
    ("replan", f"drift >= {DRIFT_CRITICAL}"),
    ("replan", f"stall >= {PROGRESS_STALL_TURNS} turns"),
    ("adjust", f"drift >= {DRIFT_WARNING}"),
    ("abort", f"alignment < {ABORT_ALIGNMENT} persisted after a replan"),
    ("replan", f"alignment < {ABORT_ALIGNMENT} for {PROGRESS_STALL_TURNS} turns"),
    ("adjust", f"alignment < {ADJUST_ALIGNMENT}, or a loop is suspected (escalation: nudge)"),
    ("continue", "otherwise"),
)

#: The reference's precedence: (action, rule), first match wins.
REFERENCE_PRECEDENCE: tuple[tuple[Action, str], ...] = (
    ("replan", "loop detected"),
    ("replan", f"drift >= {DRIFT_CRITICAL}"),
    ("replan", f"stall >= {PROGRESS_STALL_TURNS} turns"),
    ("adjust", f"drift >= {DRIFT_WARNING}"),
    ("abort", f"alignment < {ABORT_ALIGNMENT}"),
    ("adjust", f"alignment < {ADJUST_ALIGNMENT}"),
    ("continue", "otherwise"),
)


def decide(
    profile: str,
    *,
    escalation: Escalation,
    loop_detected: bool,
    drift: float,
    stall: int,
    alignment: float,
    low_alignment_turns: int,
    replanned_off_track: bool,
) -> tuple[Action, str]:
    """Return ``(action, rule)`` by the profile's precedence.

    Args:
        profile: ``"reference"`` or ``"goalkeeper"``.
        escalation: the loop ladder's level (goalkeeper profile).
        loop_detected: the reference's loop flag (reference profile).
        drift: the current drift score.
        stall: consecutive turns without progress.
        alignment: this step's alignment (reference) or the smoothed alignment (goalkeeper).
        low_alignment_turns: consecutive turns with alignment below ``ABORT_ALIGNMENT``.
        replanned_off_track: a replan was already recommended for the current low-alignment streak.
    """
    hits: tuple[bool, ...]
    if profile == "reference":
        hits = (
            loop_detected,
            drift >= DRIFT_CRITICAL,
            stall >= PROGRESS_STALL_TURNS,
            drift >= DRIFT_WARNING,
            alignment < ABORT_ALIGNMENT,
            alignment < ADJUST_ALIGNMENT,
        )
        table = REFERENCE_PRECEDENCE
    else:
        hits = (
            escalation is Escalation.STOP,
            escalation is Escalation.REPLAN,
            drift >= DRIFT_CRITICAL,
            stall >= PROGRESS_STALL_TURNS,
            drift >= DRIFT_WARNING,
            replanned_off_track and low_alignment_turns >= 2 * PROGRESS_STALL_TURNS,
            low_alignment_turns >= PROGRESS_STALL_TURNS,
            alignment < ADJUST_ALIGNMENT or escalation is Escalation.NUDGE,
        )
        table = PRECEDENCE
    for hit, (action, rule) in zip(hits, table, strict=False):
        if hit:
            return action, rule
    return table[-1]
