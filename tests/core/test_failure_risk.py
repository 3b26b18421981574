"""failure_risk: the goal's complexity prior and the peak drift and loop risk, as a noisy-OR."""

from __future__ import annotations

import json
import math

import pytest

from goalkeeper.core.failure_risk import (
    COMPLEXITY_SCALE,
    MIN_REQUEST_WORDS,
    PRIOR_WEIGHT,
    FailureRisk,
    count_requests,
    goal_complexity,
)
from goalkeeper.core.model import GoalEvent, MessageEvent, StepEvent
from goalkeeper.core.session import GoalSession
from goalkeeper.errors import SnapshotError

G = "g1"


def test_constants_are_pinned() -> None:
    # Chosen on the even-numbered tau-bench tasks only (docs/quality.md); a change must be re-measured.
    assert (COMPLEXITY_SCALE, PRIOR_WEIGHT, MIN_REQUEST_WORDS) == (5.0, 0.75, 3)


@pytest.mark.parametrize(
    ("goal", "plan", "n"),
    [
        ("", (), 0),
        ("Thanks.", (), 0),  # too short to be a request
        ("Fix the failing test.", (), 1),
        ("Fix the failing test. Then bump version 1.2.3 in the changelog; tag it and push it", (), 3),
        ("Book a flight from SFO to JFK!\nPay with the gift card?  Ask for a refund", (), 3),
        ("Ship it.", ("write code", "test it", "", "release"), 3),  # the plan has more items
    ],
)
def test_count_requests(goal: str, plan: tuple[str, ...], n: int) -> None:
    assert count_requests(goal, plan) == n
    assert goal_complexity(goal, plan) == pytest.approx(1 - math.exp(-n / COMPLEXITY_SCALE))


def test_complexity_grows_with_requests_and_stays_below_one() -> None:
    values = [goal_complexity(" ".join(["Do this thing now."] * k)) for k in range(0, 40, 3)]
    assert values == sorted(values)
    assert values[0] == 0.0
    assert all(v < 1.0 for v in values)


def test_noisy_or_of_prior_and_peaks() -> None:
    r = FailureRisk(complexity=0.4)
    assert r.value == pytest.approx(PRIOR_WEIGHT * 0.4)
    r.observe(0.5, 0.2)
    r.observe(0.1, 0.0)  # peaks are kept: a run that strayed once stays riskier
    assert (r.peak_drift, r.peak_loop_risk) == (0.5, 0.2)
    assert r.value == pytest.approx(1 - (1 - PRIOR_WEIGHT * 0.4) * 0.5 * 0.8)
    r.observe(7.0, -1.0)  # clipped
    assert r.peak_drift == 1.0
    assert r.value == 1.0
    assert FailureRisk().value == 0.0


def test_round_trip_and_malformed_snapshots() -> None:
    r = FailureRisk(0.3, 0.2, 0.1)
    assert FailureRisk.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    for bad in ({}, {"complexity": 0.3, "peak_drift": 0.2}, r.to_dict() | {"peak_drift": 1.5},
                r.to_dict() | {"complexity": True}, r.to_dict() | {"peak_loop_risk": "x"}):  # fmt: skip
        with pytest.raises(SnapshotError, match="FailureRisk"):
            FailureRisk.from_dict(bad)


# -- in the session -------------------------------------------------------------------------------


def _goal(text: str, **kw: object) -> GoalEvent:
    return GoalEvent(goal_id=G, description=text, **kw)  # type: ignore[arg-type]


def _step(tool: str, **args: object) -> StepEvent:
    return StepEvent(goal_id=G, tool=tool, args=args, output="no results")


def test_session_reports_failure_risk() -> None:
    s = GoalSession(G)
    assert s.apply(MessageEvent(goal_id=G, role="user", content="hi")).metrics.failure_risk == 0.0
    text = "Refactor the parser module. Keep the public API stable. Add tests for the new errors."
    o = s.apply(_goal(text))
    assert o.metrics.failure_risk == pytest.approx(PRIOR_WEIGHT * goal_complexity(text))
    risks = [s.apply(_step("search", q="parser errors")).metrics.failure_risk for _ in range(5)]
    # The same call five times: a loop, so loop_risk peaks and failure_risk rises and never falls.
    assert risks == sorted(risks)
    assert risks[-1] > o.metrics.failure_risk
    assert s.metrics.to_dict()["failure_risk"] == risks[-1]


def test_a_new_goal_starts_a_new_record_and_a_plan_changes_the_prior() -> None:
    s = GoalSession(G)
    s.apply(_goal("Fix the failing test."))
    for _ in range(4):
        s.apply(_step("search", q="x"))
    assert s.metrics.failure_risk > 0.5
    s.apply(_goal("Write the release notes."))
    # Fresh drift evidence; the loop risk carries over a re-anchor (as the session's loop_risk does).
    loop = s.metrics.loop_risk
    prior = PRIOR_WEIGHT * goal_complexity("Write the release notes.")
    assert s.metrics.failure_risk == pytest.approx(1 - (1 - prior) * (1 - loop))
    plan = ["collect the changes", "group them", "write the text", "review it", "publish"]
    s.apply(_goal("Write the release notes.", plan=plan))
    prior = PRIOR_WEIGHT * goal_complexity("", plan)
    assert s.metrics.failure_risk == pytest.approx(1 - (1 - prior) * (1 - loop))
    fresh = GoalSession(G)
    fresh.apply(_goal("Write the release notes."))
    assert fresh.metrics.failure_risk == pytest.approx(
        PRIOR_WEIGHT * goal_complexity("Write the release notes.")
    )


def test_snapshot_keeps_failure_risk_and_old_snapshots_restore() -> None:
    s = GoalSession(G)
    s.apply(_goal("Fix the failing test. Then open a pull request."))
    for _ in range(4):
        s.apply(_step("search", q="x"))
    snap = json.loads(json.dumps(s.snapshot()))
    again = GoalSession.restore(snap)
    assert again.metrics.failure_risk == s.metrics.failure_risk
    assert again.snapshot() == s.snapshot()
    # A snapshot written before failure_risk existed: the goal's prior, evidence from the restore on.
    del snap["failure_risk"]
    old = GoalSession.restore(snap)
    assert old.metrics.failure_risk == pytest.approx(
        PRIOR_WEIGHT * goal_complexity("Fix the failing test. Then open a pull request.")
    )
    with pytest.raises(SnapshotError):
        GoalSession.restore(json.loads(json.dumps(s.snapshot())) | {"failure_risk": {"complexity": 2}})
