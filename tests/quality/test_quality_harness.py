"""The quality benchmark's machinery on tiny inputs, so the harness cannot silently rot.

The full benchmark (``python benchmarks/quality/run.py``) needs the tau-bench data and takes under a
minute; these tests check its statistics, injections and peer rules on a few known values and on
the three real runs of ``tests/data/openai_chat/``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from goalkeeper.core.model import Event, GoalEvent, MessageEvent, StepEvent
from goalkeeper.importers import openai_chat

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "quality"))

import numpy as np  # noqa: E402
import quality_ceiling as C  # noqa: E402
import quality_harness as H  # noqa: E402
import quality_peers as P  # noqa: E402

# run.py under a name no other test module can shadow.
_spec = importlib.util.spec_from_file_location("quality_run", ROOT / "benchmarks" / "quality" / "run.py")
assert _spec is not None
assert _spec.loader is not None
quality_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality_run)

SAMPLE = ROOT / "tests" / "data" / "openai_chat" / "tau_bench_airline_sample.json"


def _runs() -> list[H.Run]:
    return [H.Run.of(t) for t in openai_chat.read(SAMPLE)]


def _step(tool: str, output: str = "ok", **args: object) -> StepEvent:
    return StepEvent(goal_id="g", tool=tool, args=args, output=output)


# --- statistics ------------------------------------------------------------------------------------


def test_auroc_known_values() -> None:
    assert H.auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert H.auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    # 3 of the 4 positive/negative pairs are ordered correctly.
    assert H.auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    # Ties count half: every score equal is chance.
    assert H.auroc([0.5] * 4, [True, False, True, False]) == 0.5
    assert H.auroc([1.0, 0.0, 1.0], [True, True, False]) == 0.25
    assert math.isnan(H.auroc([0.1, 0.2], [True, True]))
    with pytest.raises(ValueError, match="length"):
        H.auroc([0.1], [True, False])


def test_auroc_matches_pairwise_definition_on_random_data() -> None:
    rng = random.Random(3)
    scores = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(60)]
    labels = [rng.random() < 0.4 for _ in range(60)]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    pairwise = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert H.auroc(scores, labels) == pytest.approx(pairwise)


def test_spearman_and_ranks() -> None:
    assert H.ranks([10, 20, 20, 30]) == [1.0, 2.5, 2.5, 4.0]
    assert H.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert H.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Monotone but not linear: still 1 (ranks only).
    assert H.spearman([1, 2, 3, 4], [1, 8, 27, 1000]) == pytest.approx(1.0)
    # With ties: Pearson on average ranks, worked out by hand.
    assert H.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    assert math.isnan(H.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(H.spearman([1], [1]))


def test_median_and_first() -> None:
    assert H.median([3, 1, math.inf]) == 3
    assert H.median([1, 2, 3, 4]) == 2.5
    assert math.isnan(H.median([]))
    assert H.first([False, True, True], 1) == 0
    assert H.first([True, False, False], 1) is None
    assert H.prefix_length(7, 0.5) == 4
    assert H.prefix_length(1, 0.25) == 1
    assert H.prefix_length(0, 0.5) == 0


# --- runs, ground truth, injections ----------------------------------------------------------------


def test_runs_from_the_real_sample() -> None:
    runs = _runs()
    assert [r.failed for r in runs] == [False, True, True]
    assert runs[0].user == "amelia_sanchez_4739"
    assert [len(r.steps) for r in runs] == [2, 3, 0]
    assert all(isinstance(r.goal, GoalEvent) for r in runs)


def test_performed_fraction_counts_matching_calls_once() -> None:
    expected = [{"name": "cancel", "kwargs": {"id": "A"}}, {"name": "cancel", "kwargs": {"id": "B"}}]
    events: list[Event] = [
        _step("cancel", id="A"),
        MessageEvent(goal_id="g", role="assistant", content="done"),
        _step("cancel", id="A"),  # a second identical call performs nothing new
        _step("cancel", id="C"),
        _step("cancel", id="B"),
    ]
    assert H.performed_fraction(expected, events) == [0.5, 0.5, 0.5, 0.5, 1.0]
    assert all(math.isnan(x) for x in H.performed_fraction([], events))


@pytest.mark.parametrize("kind", ["exact", "volatile", "alternation"])
def test_inject_loop_shapes(kind: H.LoopKind) -> None:
    # Task 15 has three steps with messages between them; task 12 has two directly one after the
    # other (an alternation needs such a pair: a user turn between A and B would reset detection).
    run = _runs()[0 if kind == "alternation" else 1]
    inj = H.inject_loop(run, kind, random.Random(1), occurrences=6)
    assert inj is not None
    block = [e for e in inj.events[inj.start : inj.end] if isinstance(e, StepEvent)]
    assert len(inj.events) == len(run.events) + len(block) == len(run.events) + inj.end - inj.start
    assert len({e.event_id for e in inj.events}) == len(inj.events)  # ids stay unique
    before = inj.events[inj.start - 1]
    assert isinstance(before, StepEvent)
    if kind == "alternation":
        assert len(block) == 4
        a, b = inj.events[inj.start - 2], before
        assert isinstance(a, StepEvent)
        assert [e.tool for e in block] == [a.tool, b.tool, a.tool, b.tool]
        assert a.tool != b.tool or a.args != b.args
    else:
        assert len(block) == 5
        assert {e.tool for e in block} == {before.tool}
    if kind == "exact":
        assert all(replace(e, event_id="") == replace(before, event_id="") for e in block)
    if kind == "volatile":
        ids = {e.args["request_id"] for e in (before, *block) if isinstance(e, StepEvent)}
        assert len(ids) == 6  # the original carries one too: every attempt has its own
        stripped = [{k: v for k, v in e.args.items() if k != "request_id"} for e in block]
        assert all(s == stripped[0] for s in stripped)


def test_inject_narrated_loop_puts_a_message_before_each_repeat() -> None:
    run = _runs()[1]
    inj = H.inject_loop(run, "narrated", random.Random(4), occurrences=4)
    assert inj is not None
    block = inj.events[inj.start : inj.end]
    assert [type(e).__name__ for e in block] == ["MessageEvent", "StepEvent"] * 3
    assert all(isinstance(e, MessageEvent) and e.role == "assistant" for e in block[::2])
    # Loop steps seen at the 2nd block item: the one repeat (the original comes before the block).
    assert H.steps_until(inj.events, inj.start, 1) == 1
    assert H.steps_until(inj.events, inj.start, 0) == 0


def test_inject_polling_changes_the_result_every_time() -> None:
    run = _runs()[1]
    inj = H.inject_polling(run, random.Random(5), occurrences=5)
    assert inj is not None
    polled = [e for e in inj.events[inj.start - 1 : inj.end] if isinstance(e, StepEvent)]
    assert len(polled) == 5
    assert len({(e.tool, json.dumps(dict(e.args), sort_keys=True)) for e in polled}) == 1
    assert [e.output.rsplit("status: ", 1)[1] for e in polled] == list(H.POLL_STATES[:5])
    assert all(e.error is None for e in polled)  # failed steps are never the polled one
    # Goalkeeper does not call it a loop; the plain rule does, at the third call.
    gk = H.run_goalkeeper(run, inj.events)
    assert not any(o.verification and o.verification.loop_event for o in gk.outcomes[inj.start : inj.end])
    rule = P.fires(P.ThreeInFiveRule, inj.events)
    assert H.first(rule, inj.start, inj.end) == 1
    assert H.inject_polling(_runs()[2], random.Random(0)) is None


def test_inject_loop_needs_suitable_steps() -> None:
    no_steps = _runs()[2]
    kinds: tuple[H.LoopKind, ...] = ("exact", "volatile", "narrated", "alternation")
    for kind in kinds:
        assert H.inject_loop(no_steps, kind, random.Random(0)) is None


def test_inject_drift_splices_another_runs_steps() -> None:
    target, donor = _runs()[0], _runs()[1]
    inj = H.inject_drift(target, donor, random.Random(2), length=3)
    assert inj is not None
    block = inj.events[inj.start : inj.end]
    assert [e.tool for e in block if isinstance(e, StepEvent)] == [
        "get_reservation_details",
        "update_reservation_flights",
        "cancel_reservation",
    ]
    assert all(e.goal_id == target.id for e in block)
    assert inj.start > target.steps[0]  # never before the run's first step
    assert H.inject_drift(target, _runs()[2], random.Random(2)) is None  # donor without steps


# --- detectors -------------------------------------------------------------------------------------


def test_three_in_five_rule() -> None:
    a, b, c = _step("a"), _step("b"), _step("c")
    assert P.fires(P.ThreeInFiveRule, [a, a]) == [False, False]
    assert P.fires(P.ThreeInFiveRule, [a, b, a, c, a]) == [False, False, False, False, True]
    # Spread over six calls, the oldest falls out of the window of five.
    assert P.fires(P.ThreeInFiveRule, [a, b, c, a, b, a]) == [False] * 6
    assert P.fires(P.ThreeInFiveRule, [c, b, a, c, a, a]) == [False] * 5 + [True]
    # Arguments are part of the call; messages never fire.
    msg = MessageEvent(goal_id="g", role="assistant", content="hi")
    assert P.fires(P.ThreeInFiveRule, [_step("a", x=1), _step("a", x=2), _step("a", x=3), msg]) == [False] * 4
    assert P.call_key(_step("t", b=1, a=2)) == 't|{"a": 2, "b": 1}'


def test_goalkeeper_flags_an_injected_loop_at_the_third_occurrence() -> None:
    run = _runs()[1]
    inj = H.inject_loop(run, "exact", random.Random(0), occurrences=6)
    assert inj is not None
    gk = H.run_goalkeeper(run, inj.events)
    flags = [o.verification is not None and o.verification.loop_event is not None for o in gk.outcomes]
    assert H.first(flags, inj.start, inj.end) == 1  # block index 1 = third occurrence
    assert any(H.Goalkeeper.alarm(o) for o in gk.outcomes[inj.start : inj.end])  # it escalates
    assert not any(flags[: inj.start])


def test_failure_features_are_oriented_and_bounded() -> None:
    run = _runs()[1]
    gk = H.run_goalkeeper(run)
    feats = H.failure_features(gk.outcomes)
    assert set(feats) == {"loop_risk", "drift", "stall", "no_progress", "alarm", "risk", "fused_v1"}
    # "risk" is the core's failure_risk metric after the prefix's last event.
    assert feats["risk"] == gk.outcomes[-1].metrics.failure_risk
    assert 0.0 < feats["risk"] <= 1.0  # a goal with several requests has a prior above zero
    assert 0.0 <= feats["fused_v1"] <= 2.0
    assert 0.0 <= feats["no_progress"] <= 1.0
    assert H.failure_features([])["no_progress"] == 1.0


def test_failure_risk_of_a_prefix_never_falls() -> None:
    # Peaks and a fixed prior: a longer prefix of the same run never scores lower.
    for run in _runs():
        gk = H.run_goalkeeper(run)
        risks = [o.metrics.failure_risk for o in gk.outcomes]
        assert risks == sorted(risks)


def test_within_group_auroc_ignores_differences_between_groups() -> None:
    # Group "a" fails and scores high, group "b" succeeds and scores low: across groups the score is
    # perfect, within groups there is nothing to rank.
    scores, labels = [0.9, 0.8, 0.1, 0.2], [True, True, False, False]
    assert H.auroc(scores, labels) == 1.0
    assert math.isnan(H.within_group_auroc(scores, labels, ["a", "a", "b", "b"]))
    assert H.within_group_auroc([0.9, 0.1, 0.2, 0.8], [True, False, True, False], ["a", "a", "b", "b"]) == 0.5
    assert H.within_group_auroc([0.5, 0.5], [True, False], ["a", "a"]) == 0.5
    with pytest.raises(ValueError, match="differ in length"):
        H.within_group_auroc([0.1], [True], [])


def test_conversation_signals() -> None:
    def say(role: str, text: str) -> MessageEvent:
        return MessageEvent(goal_id="g", role=role, content=text)

    fail = replace(_step("book", output="Error: no seats"), error="Error: no seats")
    events: list[Event] = [
        say("user", "Please book flight HAT001 for me"),
        _step("search"),
        fail,
        fail,
        say("assistant", "Sorry, that did not work."),
        say("user", "No, please book flight HAT001 for me"),
        say("assistant", "Done."),
        _step("book"),
    ]
    sig = H.conversation_signals("Book a flight. Pay with the gift card. Ask for a refund if late.", events)
    assert sig["user_repeat"] == pytest.approx(6 / 7)
    assert sig["user_correction"] == 0.5  # "No, ..."
    assert sig["agent_apology"] == 0.5
    assert sig["tool_errors"] == 0.5
    assert sig["error_streak"] == 2
    assert sig["goal_complexity"] == pytest.approx(1 - math.exp(-3 / 5))
    assert H.conversation_signals("", [])["user_repeat"] == 0.0


def test_activity_signals() -> None:
    def say(role: str, text: str) -> MessageEvent:
        return MessageEvent(goal_id="g", role=role, content=text)

    events: list[Event] = [
        say("user", "I want to cancel my trip but I don't remember the booking number."),
        say("assistant", "Could you give me your user id?"),
        _step("get_user", user_id="u1"),
        _step("get_user", user_id="u1"),
        say("assistant", "Unfortunately I cannot find it."),
        _step("cancel_booking", booking="B1"),  # a write, no "yes" from the user since the last message
        say("user", "Yes, go on."),
        _step("cancel_booking", booking="B2"),  # confirmed
    ]
    sig = H.activity_signals("Cancel the trip to Paris. If it fails, ask for a refund.", events)
    assert sig["events"] == 8
    assert sig["steps"] == 4
    assert sig["user_turns"] == 2
    assert sig["steps_per_request"] == 2.0  # two requests in the goal
    assert sig["repeated_calls"] == 1
    assert sig["repeated_tools"] == 0.5
    assert sig["distinct_tools"] == 2
    assert sig["writes"] == 2
    assert sig["unconfirmed_writes"] == 1
    assert sig["writes_before_read"] == 0
    assert sig["agent_questions"] == 0.5
    assert sig["agent_cannot"] == 0.5
    assert sig["user_unsure"] == 0.5
    assert sig["talk_only"] == 0.5  # the first assistant message came before any step
    assert sig["goal_conditions"] == 1
    assert sig["goal_words"] == 12
    # Goal content words: cancel, trip, paris, fails, refund (ask is too short); the agent said none.
    assert sig["goal_unmentioned"] == 1.0
    assert sig["entities"] == 3  # u1, B1, B2
    assert H.activity_signals("Book it.", [_step("book_flight")])["writes_before_read"] == 1
    assert H.activity_signals("", [])["steps_per_request"] == 0.0


# --- the ceiling model -----------------------------------------------------------------------------


def test_logistic_regression_ranks_a_separable_signal_and_ignores_constants() -> None:
    rng = random.Random(1)
    x = np.array([[rng.gauss(0, 1), 3.0] for _ in range(80)])
    y = [bool(v > 0.2) for v in x[:, 0]]
    model = C.fit_logistic(x, y, lam=1.0)
    assert model.weights[1] > 0
    assert model.weights[2] == 0.0  # a constant column carries nothing
    assert H.auroc(model.score(x).tolist(), y) == 1.0
    # One class only: a constant score, no error.
    flat = C.fit_logistic(x[:5], [True] * 5)
    assert len(set(flat.score(x).tolist())) == 1


def test_grouped_cv_never_fits_on_the_scored_group() -> None:
    rng = random.Random(2)
    x = np.array([[rng.gauss(0, 1), rng.gauss(0, 1)] for _ in range(60)])
    y = [rng.random() < 0.5 for _ in range(60)]
    groups = [i // 4 for i in range(60)]
    for folds in (None, 5):
        scores = C.grouped_cv_scores(x, y, groups, 1.0, folds)
        # Flipping the labels of group 0 cannot change the scores of group 0's runs.
        flipped = [not v if g == 0 else v for v, g in zip(y, groups, strict=True)]
        again = C.grouped_cv_scores(x, flipped, groups, 1.0, folds)
        assert scores[:4] == pytest.approx(again[:4])
        assert scores[4:] != pytest.approx(again[4:])
    with pytest.raises(ValueError, match="differ in length"):
        C.grouped_cv_scores(x, y[:3], groups)


def test_other_trials_rate() -> None:
    rate = C.other_trials_rate([True, True, False, True, False], ["a", "a", "a", "b", "c"])
    assert rate[:3] == [0.5, 0.5, 1.0]
    assert math.isnan(rate[3])
    assert math.isnan(rate[4])


def test_task_halves() -> None:
    runs = _runs()
    assert {quality_run.half(r) for r in runs} <= {"even", "odd"}
    assert quality_run.half(replace(runs[0], task_id=4)) == "even"
    assert quality_run.half(replace(runs[0], task_id=7)) == "odd"
    # Non-integer ids split by a stable hash, the same in every process.
    assert quality_run.half(replace(runs[0], task_id="retail-12")) == quality_run.half(
        replace(runs[1], task_id="retail-12")
    )


@pytest.mark.skipif(
    not P.openhands_available(), reason='needs pip install "openhands-ai==0.9.8" --no-deps termcolor'
)
def test_openhands_stuck_detector_over_converted_events() -> None:
    a = _step("get_reservation_details", output='{"id": "X"}', reservation_id="X")
    b = _step("search_direct_flight", output="[]", origin="JFK")
    fail = replace(_step("book", output="Error: no seats"), error="Error: no seats")
    # Rule 1: four identical action/observation pairs.
    assert P.fires(P.OpenHandsStuck, [a, a, a, a]) == [False, False, False, True]
    # Rule 2: the same action failing three times (needs four actions in history).
    assert P.fires(P.OpenHandsStuck, [a, fail, fail, fail]) == [False, False, False, True]
    # Rule 4: A/B alternation, three cycles.
    assert P.fires(P.OpenHandsStuck, [a, b, a, b, a, b]) == [False] * 5 + [True]
    # A changed thought makes IPython cells unequal (OpenHands#15087).
    thoughts = [replace(a, thought=f"try {i}") for i in range(4)]
    assert P.fires(P.OpenHandsStuck, thoughts) == [False] * 4
    # User messages are filtered out, system messages dropped.
    user = MessageEvent(goal_id="g", role="user", content="again")
    assert P.to_openhands(MessageEvent(goal_id="g", role="system", content="policy")) == []
    assert P.fires(P.OpenHandsStuck, [a, user, a, user, a, user, a]) == [False] * 6 + [True]


# --- the command -----------------------------------------------------------------------------------


def test_run_prints_one_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q.json"
    assert quality_run.main(["--data", str(SAMPLE), "--trials", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 runs from tau_bench_airline_sample.json (1 successful, 2 failed)" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].split("|")[1].strip() == "measure"
    assert any(line.startswith("| loop recall: exact repeat") and "100.0%" in line for line in table)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(data) == {"failure", "progress", "drift", "loops", "false_alarms", "polling", "ceiling"}
    assert data["loops"]["goalkeeper"]["exact.recall"] == 1.0
    assert data["loops"]["three_in_five"]["volatile.recall"] == 0.0
    # The second table lists every failure signal; the fixed cutoffs count only longer runs.
    assert "| failure_risk (core metric)" in text
    assert "| user repeats a request (max Jaccard)" in text
    gk = data["failure"]["goalkeeper"]
    assert {"risk@0.5", "risk@0.5.even", "risk@0.5.odd", "risk@0.5.within", "risk#6", "runs#6"} <= set(gk)
    assert 0 < gk["runs#6"] <= 3
    # The third table: the fitted ceiling (3 runs of 3 tasks: leave-one-task-out works, 5 folds do not).
    assert "| logistic regression over all" in text
    assert 0.0 <= data["ceiling"]["loto.10@0.5"] <= 1.0
    assert "cv5@0.5" not in data["ceiling"]


def test_run_reports_a_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert quality_run.main(["--data", str(tmp_path / "none.json")]) == 2
    assert "data file not found" in capsys.readouterr().err
