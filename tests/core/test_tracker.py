"""Tests for GoalTracker, its decision precedence and its helpers."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goalkeeper.core import decision as d
from goalkeeper.core._tracker_parts import (
    KeywordMemory,
    keyword_alignment,
    llm_prompt,
    parse_llm_score,
    reference_state_hash,
)
from goalkeeper.core.loops import Escalation
from goalkeeper.core.routing import ProcessType
from goalkeeper.core.steps import ContextCompressed, Message, Step
from goalkeeper.core.tracker import GoalState, GoalTracker, StepVerification
from goalkeeper.core.weights import WeightCategory
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError

GOAL = "Book the cheapest direct flight from New York to Seattle on May 20"
PLAN = ["search direct flights", "book the cheapest flight", "confirm the reservation"]


def search(i: int = 0, out: str | None = None) -> Step:
    return Step(
        tool="search_direct_flight",
        args={"origin": "JFK", "destination": "SEA", "request_id": f"r{i}"},
        output=out if out is not None else f"[HAT{100 + i}] direct flights found",
    )


# -- the documented numbers -------------------------------------------------------------------------


def test_reference_constants() -> None:
    assert d.DRIFT_WARNING == 0.3
    assert d.DRIFT_CRITICAL == 0.6
    assert d.LOOP_THRESHOLD == 3
    assert d.PROGRESS_STALL_TURNS == 5
    assert d.LLM_VERIFY_BELOW == 0.7
    assert (d.LLM_BLEND_HEURISTIC, d.LLM_BLEND_LLM) == (0.3, 0.7)
    assert d.ABORT_ALIGNMENT == 0.3
    assert d.ADJUST_ALIGNMENT == 0.5
    assert d.VERIFICATION_HISTORY == 200
    assert d.STATE_HASH_HISTORY == 500
    assert d.DRIFT_SMOOTHING == 0.5
    assert d.DRIFT_CARRY == 0.3
    assert d.NO_PLAN_EXPECTED_STEPS == 20


def _ref(**kw: object) -> tuple[str, str]:
    base: dict[str, object] = {
        "escalation": Escalation.NONE,
        "loop_detected": False,
        "drift": 0.0,
        "stall": 0,
        "alignment": 1.0,
        "low_alignment_turns": 0,
        "replanned_off_track": False,
    }
    base.update(kw)
    return d.decide("reference", **base)  # type: ignore[arg-type]


def _gk(**kw: object) -> tuple[str, str]:
    base: dict[str, object] = {
        "escalation": Escalation.NONE,
        "loop_detected": False,
        "drift": 0.0,
        "stall": 0,
        "alignment": 1.0,
        "low_alignment_turns": 0,
        "replanned_off_track": False,
    }
    base.update(kw)
    return d.decide("goalkeeper", **base)  # type: ignore[arg-type]


def test_reference_precedence_in_order() -> None:
    # Each rule, and that it beats every rule below it.
    assert _ref(loop_detected=True, drift=0.9, stall=9, alignment=0.0) == ("replan", "loop detected")
    assert _ref(drift=0.6, stall=9, alignment=0.0) == ("replan", "drift >= 0.6")
    assert _ref(drift=0.59, stall=5, alignment=0.0) == ("replan", "stall >= 5 turns")
    assert _ref(drift=0.3, stall=4, alignment=0.0) == ("adjust", "drift >= 0.3")
    assert _ref(drift=0.29, alignment=0.29) == ("abort", "alignment < 0.3")
    assert _ref(alignment=0.3) == ("adjust", "alignment < 0.5")
    assert _ref(alignment=0.49) == ("adjust", "alignment < 0.5")
    assert _ref(alignment=0.5) == ("continue", "otherwise")
    assert len(d.REFERENCE_PRECEDENCE) == 7


def test_goalkeeper_precedence_is_graded() -> None:
    assert _gk(escalation=Escalation.STOP, drift=0.9) == d.PRECEDENCE[0]
    assert _gk(escalation=Escalation.REPLAN, drift=0.9) == d.PRECEDENCE[1]
    assert _gk(drift=0.6, stall=9) == d.PRECEDENCE[2]
    assert _gk(drift=0.59, stall=5) == d.PRECEDENCE[3]
    assert _gk(drift=0.3, low_alignment_turns=99, replanned_off_track=True) == d.PRECEDENCE[4]
    # Low alignment never aborts at once: first adjust, then replan after 5 turns, abort only
    # after 10 turns *and* a replan already recommended for the streak.
    assert _gk(alignment=0.1, low_alignment_turns=1) == d.PRECEDENCE[7]
    assert _gk(alignment=0.1, low_alignment_turns=5) == d.PRECEDENCE[6]
    assert _gk(alignment=0.1, low_alignment_turns=10) == d.PRECEDENCE[6]
    assert _gk(alignment=0.1, low_alignment_turns=10, replanned_off_track=True) == d.PRECEDENCE[5]
    assert d.PRECEDENCE[5][0] == "abort"
    # A suspected loop is a nudge ("adjust").
    assert _gk(escalation=Escalation.NUDGE) == d.PRECEDENCE[7]
    assert d.PRECEDENCE[7][0] == "adjust"
    assert _gk() == ("continue", "otherwise")
    assert [a for a, _ in d.PRECEDENCE] == [
        "abort", "replan", "replan", "replan", "adjust", "abort", "replan", "adjust", "continue",
    ]  # fmt: skip


# -- helpers ------------------------------------------------------------------------------------------


def test_reference_state_hash_recipe() -> None:
    # Unique sorted tokens, first 20, of "desc|output[:200]" lowercased: order and case do not matter.
    a = reference_state_hash("  Search Flights ", "NO results here")
    b = reference_state_hash("search flights", "no results here")
    assert a == b
    assert len(a) == 12
    assert reference_state_hash("search flights", "results here no") != a  # token boundary moved
    # Output beyond 200 characters is ignored.
    assert reference_state_hash("x", "y" * 200 + " tail") == reference_state_hash("x", "y" * 200 + " other")


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("0.8", 0.8),
        (0.25, 0.25),
        (1, 1.0),
        ("Score: 0.65 because...", 0.65),
        ("80%", 0.8),
        ("8/10", 0.8),
        ("7 out of 10", 0.7),
        ("85 / 100", 0.85),
        ("9", 0.9),
        ("75", 0.75),
        ("no idea", None),
        ("-0.5", None),
        ("1000", None),
        (True, None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_llm_score(reply: object, score: float | None) -> None:
    got = parse_llm_score(reply)
    if score is None:
        assert got is None
    else:
        assert got == pytest.approx(score)


def test_keyword_alignment() -> None:
    vocab = KeywordMemory(GOAL)
    # Three matching keywords (or all, when fewer) is full alignment.
    assert keyword_alignment(Step(tool="search", description="direct flight to Seattle"), vocab) == 1.0
    assert keyword_alignment(Step(description="flight weather forecast"), vocab) == pytest.approx(1 / 3)
    assert keyword_alignment(Step(description="order pizza"), vocab) == 0.0
    # A tool with nothing else carries no evidence...
    assert keyword_alignment(Step(tool="think"), vocab) == 0.5
    # ...unless its name matches the goal; and a tool name never counts against a step.
    assert keyword_alignment(Step(tool="book_flight"), vocab) == 1.0
    assert keyword_alignment(Step(tool="zzz_tool", args={"city": "Seattle"}), vocab) == 1.0
    # What the user said becomes on-topic.
    assert keyword_alignment(Step(description="reservation ZFA04Y"), vocab) == 0.0
    vocab.add_context("My reservation code is ZFA04Y")
    assert keyword_alignment(Step(description="reservation ZFA04Y"), vocab) == 1.0


def test_keyword_memory_is_bounded_and_round_trips() -> None:
    mem = KeywordMemory(GOAL)
    mem.add_context(" ".join(f"word{i:04d}x" for i in range(700)))
    assert len(mem.to_dict()["context"]) == 500
    again = KeywordMemory.from_dict(json.loads(json.dumps(mem.to_dict())))
    assert again.to_dict() == mem.to_dict()
    with pytest.raises(SnapshotError):
        KeywordMemory.from_dict({"goal": []})


def test_llm_prompt_names_goal_plan_and_step() -> None:
    p = llm_prompt(GOAL, PLAN, Step(tool="search", args={"to": "SEA"}, output="x" * 900, error="boom"))
    assert GOAL in p
    assert "1. search direct flights" in p
    assert "search(to='SEA')" in p
    assert "Error: boom" in p
    assert "x" * 500 in p
    assert "x" * 501 not in p


# -- the tracker ----------------------------------------------------------------------------------------


def test_construction_errors() -> None:
    with pytest.raises(ConfigurationError):
        GoalTracker("")
    with pytest.raises(ConfigurationError):
        GoalTracker(GOAL, profile="fancy")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        GoalTracker(GOAL, llm_verify_fn=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as info:
        GoalTracker(GOAL, plan="one step")
    assert info.value.field == "plan"
    with pytest.raises(InvalidInputError) as info:
        GoalTracker(GOAL, plan=["ok", 3])  # type: ignore[list-item]
    assert info.value.field == "plan[1]"


def test_bad_inputs_raise_named_errors_and_change_nothing() -> None:
    t = GoalTracker(GOAL)
    before = t.snapshot()
    with pytest.raises(InvalidInputError):
        t.verify("search flights")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        t.verify(search(), now=float("nan"))
    with pytest.raises(InvalidInputError) as info:
        t.verify_step("x", tokens=-1)
    assert info.value.field == "tokens"
    with pytest.raises(InvalidInputError):
        t.observe(search())  # type: ignore[arg-type]
    assert t.snapshot() == before


def test_plan_progress_is_linear_in_productive_steps() -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    v1 = t.verify(search(1), now=1.0)
    assert v1.progress == pytest.approx(1 / 3)
    assert v1.progress_delta == pytest.approx(1 / 3)
    assert t.get_state().current_step == 1
    # set_plan resets the step counter (reference behaviour).
    t.set_plan(PLAN[:2])
    assert t.get_state().current_step == 0
    assert t.get_state().total_steps_planned == 2


def test_without_plan_progress_is_asymptotic() -> None:
    t = GoalTracker(GOAL)
    for i in range(3):
        v = t.verify(search(i), now=float(i))
    assert v.progress == pytest.approx(1 - (1 - 1 / 20) ** 3)


def test_exact_loop_escalates_nudge_replan_stop() -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    actions = [t.verify(search(i, out="[]"), now=float(i)) for i in range(8)]
    levels = [v.escalation for v in actions]
    # Graded: never a stop before a nudge and a replan.
    first = {lvl: levels.index(lvl) for lvl in (Escalation.NUDGE, Escalation.REPLAN, Escalation.STOP)}
    assert first[Escalation.NUDGE] < first[Escalation.REPLAN] < first[Escalation.STOP]
    assert actions[first[Escalation.NUDGE]].recommended_action in ("adjust", "replan")
    assert actions[first[Escalation.REPLAN]].recommended_action == "replan"
    assert actions[first[Escalation.STOP]].recommended_action == "abort"
    assert "search_direct_flight" in (actions[first[Escalation.NUDGE]].nudge or "")
    # Progress does not advance while the agent loops.
    assert actions[-1].progress == pytest.approx(1 / 3)
    assert t.get_state().loop_detected
    assert t.get_state().loop_count == 1
    assert t.get_state().stall_turns >= 5


def test_reference_profile_replans_on_third_identical_hash() -> None:
    t = GoalTracker(GOAL, profile="reference", plan=PLAN)
    out = [t.verify_step("search direct flights JFK SEA", "no results", now=float(i)) for i in range(3)]
    assert [v.recommended_action for v in out][:2] != ["replan", "replan"]
    assert out[2].recommended_action == "replan"
    assert out[2].rule == "loop detected"
    assert t.get_state().loop_detected


def test_polling_with_changing_result_is_not_a_loop() -> None:
    t = GoalTracker("Wait for the deployment job to finish and report its status")
    for i in range(10):
        v = t.verify(
            Step(
                tool="get_job_status", args={"job": "deploy-42"}, output=f"deployment job running: {i * 10}%"
            ),
            now=float(i),
        )
        assert v.escalation is Escalation.NONE
        assert v.recommended_action in ("continue", "adjust")


def test_reset_loop_detection_does_not_allow_silent_reentry() -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    for i in range(4):
        t.verify(search(i, out="[]"), now=float(i))
    assert t.get_state().loop_detected
    t.reset_loop_detection()
    assert not t.get_state().loop_detected
    other = t.verify(Step(tool="book_flight", args={"flight": "HAT1"}, output="booked"), now=10.0)
    assert other.escalation is Escalation.NONE
    again = t.verify(search(99, out="[]"), now=11.0)
    # The very first repeat of the looping step is flagged, at the level the loop had reached.
    assert again.loop_event is not None
    assert again.escalation in (Escalation.REPLAN, Escalation.STOP)
    assert again.recommended_action in ("replan", "abort")


def test_reference_reset_also_remembers_looping_hashes() -> None:
    t = GoalTracker(GOAL, profile="reference")
    for i in range(3):
        t.verify_step("search flights", "none", now=float(i))
    t.reset_loop_detection()
    assert not t.get_state().loop_detected
    v = t.verify_step("search flights", "none", now=5.0)
    assert v.recommended_action == "replan"


def test_metrics_are_written_through_weight_engine_with_reasons() -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    t.verify(search(1), now=1.0)
    changes = t.weights.get_recent_changes(10)
    keys = {c.update.key for c in changes}
    assert "current_progress" in keys
    for c in changes:
        assert c.update.category is WeightCategory.GOAL_ALIGNMENT
        assert c.update.reason.startswith("step 1")
        assert c.update.source == "goal_tracker"
        assert c.update.timestamp == 1.0
    ga = t.weights.goal_alignment
    assert ga["current_progress"] == t.get_state().progress
    assert ga["drift_score"] == t.get_state().drift_score
    assert ga["loop_risk"] == t.get_state().loop_risk


def test_drift_rises_at_once_and_falls_with_carry() -> None:
    # Goalkeeper profile: drift = max(score, 0.7 * score + 0.3 * previous) (docs/quality.md: the
    # tau-bench drift injection is detected on its first step instead of its third).
    t = GoalTracker(GOAL)
    poem = Step(tool="read_file", args={"path": "poem.txt"}, output="roses are red, violets are blue")
    off = t.verify(poem, now=1.0)
    assert off.drift is not None
    assert off.drift_score == off.drift.score > 0.3  # the off-topic step itself is flagged
    on_topic = Step(tool="search_direct_flight", args={"origin": "New York", "destination": "Seattle"},
                    output="direct flights from New York to Seattle on May 20")  # fmt: skip
    back = t.verify(on_topic, now=2.0)
    assert back.drift is not None
    assert back.drift.score < off.drift_score
    assert back.drift_score == pytest.approx(0.7 * back.drift.score + 0.3 * off.drift_score)
    # The reference profile reports the raw score.
    ref = GoalTracker(GOAL, profile="reference")
    ref.verify(poem, now=1.0)
    raw = ref.verify(on_topic, now=2.0)
    assert raw.drift is not None
    assert raw.drift_score == raw.drift.score


def test_failed_step_routes_to_system2() -> None:
    t = GoalTracker(GOAL)
    # An on-topic first step (drift rises at once, so a step naming "JFK" for "New York" would
    # already route to System 2 on drift alone).
    on_topic = Step(tool="search_direct_flight", args={"origin": "New York", "destination": "Seattle"},
                    output="direct flights from New York to Seattle on May 20")  # fmt: skip
    assert t.verify(on_topic, now=1.0).process is ProcessType.SYSTEM1
    v = t.verify(Step(tool="book_flight", args={"f": "HAT1"}, error="card declined"), now=2.0)
    assert v.process is ProcessType.SYSTEM2
    assert t.router.last_escalation_reasons


def test_llm_rescore_below_threshold_only() -> None:
    prompts: list[str] = []

    def llm(prompt: str) -> str:
        prompts.append(prompt)
        return "0.9"

    t = GoalTracker(GOAL, llm_verify_fn=llm)
    v = t.verify(Step(description="order pizza for the team"), now=1.0)
    assert v.llm_score == 0.9
    assert v.alignment_score == pytest.approx(0.3 * 0.0 + 0.7 * 0.9)
    assert len(prompts) == 1
    # Heuristic >= 0.7: the LLM is not asked.
    v2 = t.verify(Step(description="search direct flight to Seattle"), now=2.0)
    assert v2.llm_score is None
    assert len(prompts) == 1


def test_llm_failures_keep_the_heuristic() -> None:
    def broken(prompt: str) -> str:
        raise TimeoutError("llm down")

    t = GoalTracker(GOAL, llm_verify_fn=broken)
    v = t.verify(Step(description="order pizza"), now=1.0)
    assert v.alignment_score == 0.0
    assert "LLM verification failed" in v.reasoning
    v2 = t.verify(Step(description="order pizza"), llm_verify_fn=lambda p: "dunno", now=2.0)
    assert "no score" in v2.reasoning


def test_async_llm_needs_averify() -> None:
    async def llm(prompt: str) -> str:
        return "1.0"

    t = GoalTracker(GOAL, llm_verify_fn=llm)
    with pytest.raises(ConfigurationError):
        t.verify(Step(description="order pizza"), now=1.0)
    v = asyncio.run(t.averify(Step(description="order pizza"), now=1.0))
    assert v.alignment_score == pytest.approx(0.7)
    v2 = asyncio.run(t.averify_step("order pizza", "ok", lambda p: "0.5", now=2.0))
    assert v2.llm_score == 0.5


def test_summary_has_the_ten_reference_keys() -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    t.verify(search(1), now=100.0)
    t.verify(search(2), now=104.5)
    s = t.get_summary()
    assert list(s) == [
        "goal", "progress", "drift", "steps_completed", "steps_planned", "loops_detected",
        "stall_turns", "elapsed_seconds", "verifications", "avg_alignment",
    ]  # fmt: skip
    assert s["elapsed_seconds"] == 4.5
    assert s["steps_completed"] == 2
    assert s["verifications"] == 2


def test_histories_are_bounded() -> None:
    t = GoalTracker(GOAL)
    for i in range(260):
        t.verify(search(i), now=float(i))
    assert len(t.verifications) == 200
    assert t.verifications[-1].step_number == 260
    assert t.verification_history == 200
    assert t.get_summary()["verifications"] == 200
    short = GoalTracker(GOAL, verification_history=5)
    for i in range(8):
        short.verify(search(i), now=float(i))
    assert [v.step_number for v in short.verifications] == [4, 5, 6, 7, 8]
    assert short.get_summary()["verifications"] == 5
    assert GoalTracker.restore(short.snapshot(), verification_history=5).verification_history == 5
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigurationError):
            GoalTracker(GOAL, verification_history=bad)  # type: ignore[arg-type]


def test_time_comes_from_now_then_step_then_clock() -> None:
    ticks = iter([50.0, 60.0])
    t = GoalTracker(GOAL, clock=lambda: next(ticks))
    t.verify(search(1))
    assert t.get_state().timestamp == 50.0
    t.verify(Step(tool="x", ts=55.0))
    assert t.get_state().timestamp == 55.0
    t.verify(search(2), now=70.0)
    assert t.get_state().timestamp == 70.0
    t2 = GoalTracker(GOAL)  # no clock: deterministic, time stands still
    t2.verify(search(1))
    assert t2.get_state().timestamp == 0.0


def test_messages_feed_vocabulary_and_loop_rules() -> None:
    t = GoalTracker(GOAL)
    t.observe(Message("user", "my reservation is ZFA04Y"))
    v = t.verify(Step(description="reservation ZFA04Y"), now=1.0)
    assert v.alignment_score == 1.0
    events = [t.observe(Message("assistant", "")) for _ in range(4)]
    assert any(e is not None for e in events)
    t.observe(ContextCompressed())  # markers are accepted
    assert t.loops.step_number > 0


def test_state_and_verification_types() -> None:
    t = GoalTracker(GOAL)
    v = t.verify(search(1), now=1.0)
    assert isinstance(v, StepVerification)
    assert isinstance(t.get_state(), GoalState)
    data = v.to_dict()
    json.dumps(data)
    assert data["recommended_action"] in ("continue", "adjust", "replan", "abort")


def test_restore_rejects_bad_snapshots() -> None:
    with pytest.raises(SnapshotError):
        GoalTracker.restore({"kind": "Nope", "schema": 1})
    with pytest.raises(SnapshotError):
        GoalTracker.restore({"kind": "GoalTracker", "schema": 99})
    snap = GoalTracker(GOAL).snapshot()
    del snap["progress"]
    with pytest.raises(SnapshotError):
        GoalTracker.restore(snap)


# -- properties ----------------------------------------------------------------------------------------

TOOLS = ["search_direct_flight", "book_flight", "get_user", "think", ""]
step_strategy = st.builds(
    Step,
    tool=st.sampled_from(TOOLS),
    args=st.dictionaries(
        st.sampled_from(["q", "id", "request_id"]), st.sampled_from(["SEA", "a1", "7"]), max_size=2
    ),
    description=st.sampled_from(["", "search flights", "book it", "order pizza", "Seattle JFK"]),
    output=st.sampled_from(["", "[]", "ok", "HAT136 155", "error: none"]),
    error=st.sampled_from([None, None, "timeout", "declined"]),
    tokens=st.integers(0, 5000),
)
item_strategy = st.one_of(
    step_strategy,
    step_strategy,
    step_strategy,
    st.builds(
        Message, role=st.sampled_from(["user", "assistant"]), content=st.sampled_from(["", "hi", "SEA"])
    ),
    st.just(ContextCompressed()),
)


def _feed(t: GoalTracker, items: list[object], start: int) -> list[object]:
    out: list[object] = []
    for i, item in enumerate(items, start=start):
        if isinstance(item, Step):
            out.append(t.verify(item, now=float(i)).to_dict())
        else:
            ev = t.observe(item, now=float(i))  # type: ignore[arg-type]
            out.append(ev.to_dict() if ev else None)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item_strategy, max_size=40), st.data(), st.sampled_from(["goalkeeper", "reference"]))
def test_snapshot_restore_equivalence(items: list[object], data: st.DataObject, profile: str) -> None:
    cut = data.draw(st.integers(0, len(items)))
    whole = GoalTracker(GOAL, plan=PLAN, profile=profile)  # type: ignore[arg-type]
    expected = _feed(whole, items, 0)

    first = GoalTracker(GOAL, plan=PLAN, profile=profile)  # type: ignore[arg-type]
    got = _feed(first, items[:cut], 0)
    restored = GoalTracker.restore(json.loads(json.dumps(first.snapshot())))
    got += _feed(restored, items[cut:], cut)
    assert got == expected
    assert restored.snapshot() == whole.snapshot()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item_strategy, max_size=60))
def test_metrics_stay_in_unit_interval(items: list[object]) -> None:
    t = GoalTracker(GOAL)
    for i, item in enumerate(items):
        if isinstance(item, Step):
            v = t.verify(item, now=float(i))
            for x in (v.alignment_score, v.progress, v.drift_score, v.loop_risk):
                assert 0.0 <= x <= 1.0
            assert v.recommended_action in ("continue", "adjust", "replan", "abort")
        else:
            t.observe(item, now=float(i))  # type: ignore[arg-type]
    for value in t.weights.goal_alignment.values():
        assert 0.0 <= value <= 1.0


def test_set_progress_takes_over_from_step_counting() -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    t.verify(search(1), now=1.0)
    assert t.set_progress(0.8, reason="3 of 4 sub-goals done", now=2.0) == pytest.approx(0.8 - 1 / 3)
    v = t.verify(search(2), now=3.0)
    assert v.progress == 0.8  # steps no longer move progress by themselves
    assert t.weights.goal_alignment["current_progress"] == 0.8
    assert any(c.update.reason == "3 of 4 sub-goals done" for c in t.weights.get_recent_changes(10))
    for bad in (1.5, -0.1, float("nan"), True, "0.5"):
        with pytest.raises(InvalidInputError) as info:
            t.set_progress(bad, reason="x")  # type: ignore[arg-type]
        assert info.value.field == "progress"
    restored = GoalTracker.restore(json.loads(json.dumps(t.snapshot())))
    assert restored.verify(search(3), now=4.0).progress == 0.8


def test_rising_external_progress_ends_a_stall() -> None:
    t = GoalTracker(GOAL)
    for i in range(3):
        t.verify(Step(tool="book_flight", args={"f": "HAT1"}, error="card declined"), now=float(i))
    assert t.get_state().stall_turns == 3
    t.set_progress(0.5, reason="metric")
    assert t.get_state().stall_turns == 0


# -- validation at the boundary, shared features ---------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (Step(tool="search", tokens=-1), "tokens"),
        (Step(tool="search", tokens=True), "tokens"),  # type: ignore[arg-type]
        (Step(tool="search", ts=float("nan")), "ts"),
        (Step(tool="search", ts="noon"), "ts"),  # type: ignore[arg-type]
        (Step(tool="search", output=None), "output"),  # type: ignore[arg-type]
        (Step(tool="search", args=["q"]), "args"),  # type: ignore[arg-type]
        (Step(tool="search", exit_code=1.0), "exit_code"),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_step_is_rejected_before_anything_changes(step: Step, field: str) -> None:
    # Steps built without Step.of are not validated; the tracker checks one whole step before it
    # touches any detector, so a bad field cannot leave the loop windows a step ahead of the drift.
    t = GoalTracker(GOAL, plan=PLAN)
    t.verify(search(0), now=1.0)
    before = t.snapshot()
    with pytest.raises(InvalidInputError) as info:
        t.verify(step, now=2.0)
    assert info.value.field == field
    assert t.snapshot() == before


def test_think_steps_with_new_thoughts_are_new_results() -> None:
    # With every think() call keyed "think:{}", only the first thought counted as a new result.
    t = GoalTracker("Check the payment and the baggage of the Seattle reservation")
    thoughts = ["check the payment of the reservation", "check the baggage of the reservation"]
    verdicts = [t.verify(Step.of("think", {"thought": th}), now=float(i)) for i, th in enumerate(thoughts)]
    assert all(v.progress_delta > 0 for v in verdicts)
    assert verdicts[-1].loop_event is None


def test_keyword_memo_stays_bounded() -> None:
    t = GoalTracker(GOAL)
    for i in range(300):
        t.verify(Step(tool="search", args={"id": f"id_{i}_x{i}", "q": f"word{i} other{i}"}, output=f"r{i}x"))
    assert len(t._keywords) <= 512


@pytest.mark.parametrize(
    ("item", "now"),
    [
        (Message("user", 42), None),  # type: ignore[arg-type]
        (Message("user", "book SEA", float("inf")), None),
        (Message("user", "book SEA"), float("nan")),
        (Message(["user"], "book SEA"), None),  # type: ignore[arg-type]
    ],
)
def test_a_malformed_message_is_rejected_before_anything_changes(item: Message, now: float | None) -> None:
    t = GoalTracker(GOAL, plan=PLAN)
    t.observe(Message.of("user", "I need a flight to Seattle"), now=1.0)
    before = t.snapshot()
    with pytest.raises(InvalidInputError):
        t.observe(item, now=now)
    assert t.snapshot() == before
