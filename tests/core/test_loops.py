"""MultiResolutionLoopDetector: profiles, fusion, graded escalation, loop_risk, re-entry, snapshots,
and the two complaints users make about peer detectors."""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.core.loops import (
    PARTIAL_RISK_CAP,
    PROFILES,
    REENTRY_CONFIDENCE,
    RISK_BANDS,
    TRIED_APPROACHES,
    Escalation,
    Keying,
    LoopAction,
    LoopEvent,
    LoopPolicy,
    LoopSignal,
    LoopType,
    MultiResolutionLoopDetector,
    combined_confidence,
    recommend_action,
)
from goalkeeper.core.steps import ContextCompressed, Message, Step
from goalkeeper.errors import ConfigurationError, InvalidInputError, SnapshotError


def S(tool: str, output: str = "", error: str | None = None, **args: Any) -> Step:
    return Step.of(tool, args, output=output, error=error)


def run(items: list[Any], detector: MultiResolutionLoopDetector | None = None) -> list[LoopEvent | None]:
    d = detector or MultiResolutionLoopDetector()
    return [d.observe(item) for item in items]


def levels(events: list[LoopEvent | None]) -> list[str]:
    return [e.escalation.value if e else "-" for e in events]


def no_loop(items: list[Any], profile: str = "goalkeeper") -> None:
    d = MultiResolutionLoopDetector(profile=profile)
    events = run(items, d)
    assert [e for e in events if e] == [], [e.message for e in events if e]
    assert d.loop_risk < 0.5


# -- enums and profiles -------------------------------------------------------------------------


def test_enum_values_are_pinned():
    assert [e.value for e in Escalation] == ["none", "nudge", "replan", "stop"]
    assert [a.value for a in LoopAction] == ["replan", "backtrack", "escalate"]
    assert [k.value for k in Keying] == ["reference", "goalkeeper"]


GOALKEEPER_PROFILE = {
    "name": "goalkeeper",
    "keying": "goalkeeper",
    "exact_threshold": 3,
    "exact_window": 500,
    "progress_aware": True,
    "progress_reset": 4,
    "jaccard_threshold": 0.65,
    "semantic_min_similar": 2,
    "semantic_window": 30,
    "oscillation_min_cycles": 2,
    "oscillation_periods": [2, 3, 4],
    "oscillation_window": 20,
    "dead_end_threshold": 3,
    "dead_end_window": 15,
    "dead_end_counts_steps": True,
    "peer_rules": True,
    "action_observation_threshold": 4,
    "action_error_threshold": 3,
    "alternation_cycles": 3,
    "monologue_threshold": 3,
    "empty_response_threshold": 3,
    "compression_threshold": 2,
    "tool_call_streak": 5,
    "user_turn_resets": True,
    "escalate_across_turns": False,
    "replan_at": 2,
    "stop_at": 4,
    "episode_close_after": 3,
    "risk_decay": 0.7,
    "memory_size": 64,
    "history_size": 50,
    "exempt_tools": [],
}
REFERENCE_PROFILE = GOALKEEPER_PROFILE | {
    "name": "reference",
    "keying": "reference",
    "progress_aware": False,
    "dead_end_counts_steps": False,
    "peer_rules": False,
    "user_turn_resets": False,
    "escalate_across_turns": True,
}


def test_profiles_are_pinned():
    assert sorted(PROFILES) == ["goalkeeper", "reference"]
    assert PROFILES["goalkeeper"].to_dict() == GOALKEEPER_PROFILE
    assert PROFILES["reference"].to_dict() == REFERENCE_PROFILE
    assert LoopPolicy() == PROFILES["goalkeeper"]
    assert MultiResolutionLoopDetector().policy is PROFILES["goalkeeper"]
    assert LoopPolicy.from_dict(REFERENCE_PROFILE) == PROFILES["reference"]


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigurationError, match="unknown loop profile 'fast'; known: goalkeeper, reference"):
        MultiResolutionLoopDetector(profile="fast")


def test_constructor_thresholds_override_the_profile():
    d = MultiResolutionLoopDetector(4, 0.5, 3, 5, profile="reference")
    p = d.policy
    assert (p.exact_threshold, p.jaccard_threshold, p.oscillation_min_cycles, p.dead_end_threshold) == (
        4,
        0.5,
        3,
        5,
    )
    assert p.keying is Keying.REFERENCE
    custom = dataclasses.replace(PROFILES["goalkeeper"], exact_threshold=5)
    assert MultiResolutionLoopDetector(profile=custom).policy.exact_threshold == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exact_threshold": 1},
        {"jaccard_threshold": 1.5},
        {"oscillation_periods": (1, 2)},
        {"replan_at": 1},
        {"replan_at": 4, "stop_at": 4},
        {"risk_decay": 1.0},
        {"risk_decay": float("nan")},
        {"memory_size": 0},
        {"history_size": True},
        {"keying": "fuzzy"},
        {"exempt_tools": "sleep"},
        {"name": 3},
        {"tool_call_streak": 1},
        {"progress_reset": 0, "progress_aware": False},
        {"peer_rules": "yes"},
        {"exempt_tools": 3},
        {"oscillation_periods": 2},
    ],
)
def test_policy_validation(kwargs):
    with pytest.raises(ConfigurationError):
        LoopPolicy(**kwargs)


def test_policy_from_dict_errors():
    with pytest.raises(ConfigurationError, match="missing 'name'"):
        LoopPolicy.from_dict({})
    assert LoopPolicy(exempt_tools=["sleep"]).exempt_tools == frozenset({"sleep"})  # type: ignore[arg-type]


# -- fusion -------------------------------------------------------------------------------------


def sig(conf: float, kind: LoopType = LoopType.EXACT_REPEAT, repeats: int = 3) -> LoopSignal:
    return LoopSignal("x", conf, "", kind, repeats, 0.0)


def test_combined_confidence_formula():
    assert combined_confidence([]) == 0.0
    assert combined_confidence([sig(0.5)]) == 0.5
    assert combined_confidence([sig(0.5), sig(0.8)]) == pytest.approx(0.75)  # mean 0.65 + 0.1
    assert combined_confidence([sig(0.6), sig(0.6), sig(0.6)]) == pytest.approx(0.8)
    assert combined_confidence([sig(1.0), sig(1.0)]) == 1.0


def test_recommended_action_precedence():
    assert recommend_action(LoopType.EXACT_REPEAT, 0.85, 5) is LoopAction.REPLAN  # both limits are strict
    assert recommend_action(LoopType.EXACT_REPEAT, 0.86, 3) is LoopAction.ESCALATE
    assert recommend_action(LoopType.EXACT_REPEAT, 0.5, 6) is LoopAction.ESCALATE
    assert recommend_action(LoopType.DEAD_END, 0.6, 3) is LoopAction.BACKTRACK
    assert recommend_action(LoopType.REPEATING_ACTION_ERROR, 0.6, 3) is LoopAction.BACKTRACK
    assert recommend_action(LoopType.DEAD_END, 0.9, 3) is LoopAction.ESCALATE  # escalate wins
    assert recommend_action(LoopType.OSCILLATION, 0.5, 2) is LoopAction.REPLAN


# -- the reference profile ----------------------------------------------------------------------


def test_reference_check_plain_repeat():
    d = MultiResolutionLoopDetector(profile="reference")
    events = [d.check("search", "search foo", "no results", now=float(i)) for i in range(6)]
    assert events[:2] == [None, None]
    e = events[2]
    assert e is not None
    # Exact fires at 0.5 and semantic (2 similar) at 0.8: the highest confidence names the type.
    assert [(s.detector_name, s.confidence) for s in e.signals] == [
        ("ExactHashDetector", 0.5), ("SemanticJaccardDetector", pytest.approx(0.8)),
    ]  # fmt: skip
    assert e.loop_type is LoopType.SEMANTIC_REPEAT
    assert e.combined_confidence == pytest.approx(0.75)
    assert e.recommended_action is LoopAction.REPLAN
    assert e.step_number == 3
    assert e.signals[0].timestamp == 2.0
    assert events[3] is not None
    assert events[3].combined_confidence == pytest.approx(0.925)  # (0.65 + 1.0) / 2 + 0.1
    assert events[3].recommended_action is LoopAction.ESCALATE


def test_reference_hash_is_description_and_output_only():
    d = MultiResolutionLoopDetector(profile="reference")
    # Different action types, same description and output: the reference hashes only description|output.
    assert [bool(d.check(t, "Do it", "Done")) for t in ("a", "b", "c")] == [False, False, True]


def test_reference_oscillation_keys_on_action_type():
    # edit/test/edit/test with new content and new results: the reference flags it, goalkeeper does not.
    items = [
        ("edit", "edit a.py v1", "ok"),
        ("test", "run tests", "3 failed"),
        ("edit", "edit a.py v2", "ok"),
        ("test", "run tests", "1 failed"),
    ]
    ref = MultiResolutionLoopDetector(profile="reference")
    events = [ref.check(*i) for i in items]
    assert events[3] is not None
    assert events[3].loop_type is LoopType.OSCILLATION
    gk = MultiResolutionLoopDetector()
    assert [gk.check(*i) for i in items] == [None] * 4


def test_reference_dead_end_backtracks():
    d = MultiResolutionLoopDetector(profile="reference")
    ideas = ["install the package", "vendor the module", "patch sys.path"]
    events = [d.check("run", idea, "", "ImportError: no module named x") for idea in ideas]
    e = events[2]
    assert e is not None
    assert e.loop_type is LoopType.DEAD_END
    assert e.recommended_action is LoopAction.BACKTRACK
    assert "The same error came back 3 times" in e.message


def test_goalkeeper_check_keys_on_the_description():
    d = MultiResolutionLoopDetector()
    # Different descriptions of one action type with the same output are different actions...
    assert [d.check("search", f"look up order {n}", "none") for n in ("A1", "B2", "C3", "D4")] == [None] * 4
    # ...while the same description repeated is a loop, whatever volatile details it carries.
    events = [d.check("search", f"look up order A1 (request {uuid.uuid4()})", "none") for _ in range(3)]
    assert events[:2] == [None, None]
    assert events[-1] is not None
    assert events[-1].message.startswith("You called `search` with the same arguments 3 times")


def test_reference_ignores_messages_and_compressions():
    d = MultiResolutionLoopDetector(profile="reference")
    assert run([Message.of("assistant", "")] * 5 + [ContextCompressed()] * 3, d) == [None] * 8
    assert d.step_number == 0


# -- graded escalation --------------------------------------------------------------------------


def test_plain_repeat_ladder_nudge_replan_stop():
    events = run([S("search", "no hits", q="foo")] * 7)
    assert levels(events) == ["-", "-", "nudge", "replan", "replan", "stop", "stop"]
    first = events[2]
    assert first is not None
    assert (
        first.message
        == "You called `search` with the same arguments 3 times and got the same result; try something else."
    )
    assert first.ordinal == 1
    stop = events[5]
    assert stop is not None
    assert stop.recommended_action is LoopAction.ESCALATE  # repeats > 5, as in the reference
    assert stop.message.endswith("The loop continued after a replan: stopping.")
    assert events[3].message.endswith("This continued after a warning: stop and make a new plan.")  # type: ignore[union-attr]


def test_alternation_ladder_nudge_at_four_stop_at_seven():
    a, b = S("open", "A", path="a.txt"), S("open", "B", path="b.txt")
    assert levels(run([a, b] * 4)) == ["-", "-", "-", "nudge", "replan", "replan", "stop", "stop"]


def test_episode_closes_after_three_clean_steps():
    a = S("search", "no hits", q="foo")
    clean = [S("read", f"page {i}", n=i) for i in range(3)]
    d = MultiResolutionLoopDetector()
    events = run([a, a, a, *clean], d)
    assert levels(events) == ["-", "-", "nudge", "-", "-", "-"]
    assert d.escalation is Escalation.NONE
    # Two clean steps are not enough: the loop continues the same episode.
    d2 = MultiResolutionLoopDetector()
    assert levels(run([a, a, a, *clean[:2], a], d2)) == ["-", "-", "nudge", "-", "-", "replan"]
    assert d2.escalation is Escalation.REPLAN


def test_after_an_episode_closes_a_new_loop_starts_with_a_nudge():
    a, b = S("search", "x", q="a"), S("search", "y", q="b")
    clean = [S("read", f"page {i}", n=i) for i in range(3)]
    assert levels(run([a] * 4 + clean + [b] * 3))[-1] == "nudge"


def test_custom_ladder():
    policy = dataclasses.replace(PROFILES["goalkeeper"], replan_at=3, stop_at=5)
    events = run([S("search", "x", q="a")] * 7, MultiResolutionLoopDetector(profile=policy))
    assert levels(events) == ["-", "-", "nudge", "nudge", "replan", "replan", "stop"]


# The same failing call, re-sent by the agent each time the user asks again (tau-bench task 13, trial
# 2: the agent retries an update with an unavailable flight while the user keeps asking for another).
_FAILING = S("update_reservation", error="Error: flight HAT030 not available", reservation_id="XEWRD9")


def _user_driven(n: int) -> list[Any]:
    items: list[Any] = []
    for i in range(n):
        items += [Message.of("user", f"Please go ahead with the change, take {i}."), _FAILING]
        items.append(Message.of("assistant", f"It seems there is still an issue ({i})."))
    return items


def test_no_escalation_across_a_user_turn():
    events = [e for e in run(_user_driven(6)) if e is not None]
    # The dead end is reported at the 3rd failure and at every one after it, but each repeat answers a
    # new user turn, so the agent is nudged again instead of being told to replan over the user's head.
    assert [e.escalation.value for e in events] == ["nudge"] * 4
    assert [e.ordinal for e in events] == [1] * 4
    assert all(e.loop_risk < RISK_BANDS[Escalation.REPLAN][0] for e in events)


def test_the_ladder_climbs_when_the_agent_repeats_after_a_nudge_on_its_own():
    items = _user_driven(3)
    # After the nudge of the 3rd failure the agent repeats the call without the user speaking: it
    # ignored the nudge, so the ladder climbs; one more such repeat after the replan stops it.
    more = [Message.of("assistant", "Let me try again."), _FAILING]
    levels_ = [e.escalation.value for e in run(items + more * 3) if e is not None]
    assert levels_ == ["nudge", "replan", "replan", "stop"]
    # A user turn in the middle holds the ladder where it is (no climb, no fall).
    mid = [*items, *more, Message.of("user", "Please try once more."), _FAILING, *more]
    assert [e.escalation.value for e in run(mid) if e is not None] == ["nudge", "replan", "replan", "replan"]


def test_escalation_across_turns_is_the_reference_ladder():
    policy = dataclasses.replace(PROFILES["goalkeeper"], escalate_across_turns=True)
    events = [e for e in run(_user_driven(6), MultiResolutionLoopDetector(profile=policy)) if e is not None]
    assert [e.escalation.value for e in events] == ["nudge", "replan", "replan", "stop"]
    assert PROFILES["reference"].escalate_across_turns is True


def test_consecutive_loops_climb_as_before():
    # Injected loops (no user message inside) keep the ladder: nudge at the 3rd repeat, replan at the 4th.
    items = [Message.of("user", "Find me a flight."), *([S("search", "no hits", q="foo")] * 5)]
    assert levels(run(items)) == ["-", "-", "-", "nudge", "replan", "replan"]


def test_a_closed_episode_forgets_a_pending_user_turn():
    a, b = S("search", "x", q="a"), S("search", "y", q="b")
    clean = [S("read", f"page {i}", n=i) for i in range(3)]
    d = MultiResolutionLoopDetector()
    events = run([a, a, a, Message.of("user", "ok"), *clean, b, b, b, b], d)
    assert levels(events)[-2:] == ["nudge", "replan"]
    assert d.snapshot()["turn_break"] is False


def test_old_snapshots_without_the_turn_rule_restore_with_the_old_ladder():
    d = MultiResolutionLoopDetector()
    run(_user_driven(3), d)
    snap = json.loads(json.dumps(d.snapshot()))
    del snap["turn_break"]
    del snap["policy"]["escalate_across_turns"]
    old = MultiResolutionLoopDetector.restore(snap)
    assert old.policy.escalate_across_turns is True
    assert [e.escalation.value for e in run(_user_driven(1), old) if e is not None] == ["replan"]


# -- loop_risk ----------------------------------------------------------------------------------


def test_risk_constants_are_pinned():
    assert dict(RISK_BANDS) == {
        Escalation.NUDGE: (0.5, 0.7), Escalation.REPLAN: (0.75, 0.9), Escalation.STOP: (0.9, 1.0),
    }  # fmt: skip
    assert (PARTIAL_RISK_CAP, REENTRY_CONFIDENCE, TRIED_APPROACHES) == (0.4, 0.75, 10)


def test_loop_risk_rises_bands_and_decays():
    d = MultiResolutionLoopDetector()
    a = S("search", "x", q="a")
    risks = []
    for item in [a, a, a, a, a, a]:
        d.observe(item)
        risks.append(d.loop_risk)
    assert risks[0] == 0.0
    assert risks[1] == pytest.approx(0.4 * 0.5)  # partial evidence: 2 of 3 repeats
    assert 0.5 <= risks[2] <= 0.7  # nudge band: 0.5 + 0.2 * combined
    assert risks[2] == pytest.approx(0.5 + 0.2 * 0.75)
    assert 0.7 < risks[3] <= 0.9  # replan band: above "break the loop"
    assert risks[3] == pytest.approx(0.75 + 0.15 * 0.95)  # combined: (0.65 + 1.0 + 0.6) / 3 + 0.2
    assert risks[5] >= 0.9  # stop band
    assert risks == sorted(risks)
    d.observe(S("read", "new", n=1))
    assert d.loop_risk == pytest.approx(risks[-1] * 0.7)
    for i in range(2, 6):
        d.observe(S("read", "new", n=i))
    assert d.loop_risk < 0.5


def test_partial_evidence_stays_below_the_nudge_level():
    d = MultiResolutionLoopDetector()
    for item in [
        S("a", "1"),
        S("a", "1"),
        S("b", "1"),
        S("b", "1"),
        Message.of("assistant", "x"),
        Message.of("assistant", "x"),
    ]:
        assert d.observe(item) is None
        assert d.loop_risk < 0.5


# -- re-entry after reset -----------------------------------------------------------------------


def test_reset_remembers_loops_and_resumes_the_ladder():
    a = S("search", "no hits", q="foo")
    d = MultiResolutionLoopDetector()
    assert levels(run([a] * 4, d)) == ["-", "-", "nudge", "replan"]
    d.reset()
    assert (d.loop_risk, d.escalation) == (0.0, Escalation.NONE)
    e = d.observe(a)  # the very first repeat after the replan
    assert e is not None
    assert e.loop_type is LoopType.REENTRY
    assert (e.escalation, e.ordinal) == (Escalation.REPLAN, 3)
    assert e.message.startswith("You went back to calling `search`")
    e = d.observe(a)
    assert e is not None
    assert e.escalation is Escalation.STOP


def test_reset_lets_new_work_and_new_loops_start_fresh():
    a, b = S("search", "no hits", q="foo"), S("search", "other", q="bar")
    d = MultiResolutionLoopDetector()
    run([a] * 4, d)
    d.reset()
    assert levels(run([b, b, b], d)) == ["-", "-", "nudge"]
    # Same action with a new result is not the remembered loop.
    assert d.observe(S("search", "finally a hit", q="foo")) is None


def test_reset_in_the_reference_profile_also_remembers():
    d = MultiResolutionLoopDetector(profile="reference")
    for _ in range(3):
        d.check("search", "foo", "none")
    d.reset()
    e = d.check("search", "foo", "none")
    assert e is not None
    assert e.escalation is Escalation.REPLAN


def test_memory_is_bounded():
    policy = dataclasses.replace(PROFILES["goalkeeper"], memory_size=2)
    d = MultiResolutionLoopDetector(profile=policy)
    for q in ("a", "b", "c"):
        run([S("search", "x", q=q)] * 3 + [S("read", f"{q}{i}", n=i) for i in range(3)], d)
    d.reset()
    assert d.observe(S("search", "x", q="a")) is None  # forgotten: the oldest of three
    assert d.observe(S("search", "x", q="c")) is not None


# -- complaint (a): legitimate repetition whose result changes is not a loop --------------------


@pytest.mark.parametrize(
    "outputs",
    [
        [f"status: running, {p}% done" for p in range(0, 100, 10)],
        [f"{n}/10 files processed" for n in range(10)],
        ["queued", "queued", "running", "running", "running 40%", "running 80%", "succeeded"],
        [f"job {uuid.uuid4()} state=running progress={p}" for p in (5, 20, 45, 70, 90)],
    ],
)
def test_polling_a_changing_job_is_not_a_loop(outputs):
    no_loop([S("job_status", out, job_id="J-17") for out in outputs])


def test_rerunning_tests_after_edits_is_not_a_loop():
    items = []
    for i, result in enumerate(
        ["3 failed, 7 passed", "1 failed, 9 passed", "2 failed, 8 passed", "10 passed"]
    ):
        items.append(S("edit", "ok", path="app.py", content=f"def f():\n    return {i}\n"))
        items.append(
            Step.of("bash", {"cmd": "pytest -q"}, output=result, exit_code=1 if "failed" in result else 0)
        )
    no_loop(items)
    no_loop([Message.of("assistant", "Let me fix that."), *items])


def test_batch_work_over_different_objects_is_not_a_loop():
    no_loop(
        [
            S("get_reservation_details", f'{{"id": "{r}", "status": "ok"}}', reservation_id=r)
            for r in ("ABC123", "XYZ789", "QWE456", "RTY111", "UIO222")
        ]
    )
    no_loop([S("move_file", "OK", src=f"in/{i}.txt", dst=f"out/{i}.txt") for i in range(10)])
    no_loop(
        [
            S("search_direct_flight", "[]", origin="JFK", destination="SEA", date=f"2024-05-{d}")
            for d in range(10, 20)
        ]
    )
    no_loop([S("read_file", f"page {p} of the report", path="report.pdf", page=p) for p in range(1, 9)])


def test_rereading_after_real_work_is_not_a_loop():
    config = S("read_file", "debug = false", path="config.toml")
    items = [config]
    for r in range(3):
        items += [S("edit", "ok", path=f"src/{r}_{i}.py", content=str(i)) for i in range(4)] + [config]
    no_loop(items)
    # With fewer than 4 new steps between the reads, re-reading is counted.
    assert levels(run([config, items[1], config, items[2], config]))[-1] == "nudge"


def test_repeating_a_call_for_each_new_user_request_is_not_a_loop():
    fetch = S("get_user_details", '{"name": "Mia"}', user_id="mia_li_3668")
    items: list[Any] = []
    for q in ("What is my address?", "And my email?", "Which cards do I have?", "What is my tier?"):
        items += [Message.of("user", q), fetch, Message.of("assistant", "Here it is.")]
    no_loop(items)
    # The same agent without user turns would be looping.
    policy = dataclasses.replace(PROFILES["goalkeeper"], user_turn_resets=False)
    assert any(run(items, MultiResolutionLoopDetector(profile=policy)))


def test_a_canned_reply_to_different_requests_is_not_a_monologue():
    reply = Message.of("assistant", "I am sorry, I cannot change a basic economy flight.")
    no_loop(
        [m for q in ("Change it?", "Please?", "And now?", "Really?") for m in (Message.of("user", q), reply)]
    )


def test_exempt_tools_are_never_loops():
    policy = dataclasses.replace(PROFILES["goalkeeper"], exempt_tools=frozenset({"sleep"}))
    d = MultiResolutionLoopDetector(profile=policy)
    assert run([S("sleep", "", seconds=5)] * 8, d) == [None] * 8
    assert d.step_number == 8


# -- complaint (b): loops that differ only in volatile details are still loops ------------------


def first_event(items: list[Any]) -> tuple[int, LoopEvent]:
    events = run(items)
    for i, e in enumerate(events):
        if e is not None:
            return i + 1, e
    raise AssertionError("no loop detected")


@pytest.mark.parametrize(
    "make",
    [
        lambda i: S("search", "no results", q="flights", request_id=str(uuid.uuid4())),
        lambda i: S("fetch", f"error id {uuid.uuid4()} at 2024-05-2{i}T10:00:0{i}Z", url="https://x.io/a"),
        lambda i: S(
            "call",
            f"trace {i:x}ab12cd34ef done",
            payload={"b": 1, "a": [1, 2]} if i % 2 else {"a": [1, 2], "b": 1},
        ),
        lambda i: S("grep", "no matches", pattern="TODO", path="src", timestamp=1716200000 + i),
        lambda i: Step.of(
            "run", {"cmd": "make test"}, output="FAILED", thought=f"attempt {i}, maybe it works now"
        ),
        lambda i: S("bash", "   no such file\n", cmd="cat  missing.txt" if i % 2 else "cat missing.txt"),
        lambda i: S("lookup", f"took {i + 1}.{i}s: nothing", key="k", thought=f"reason {i}"),
    ],
)
def test_volatile_variants_are_still_loops(make):
    at, e = first_event([make(i) for i in range(8)])
    assert at == 3
    assert e.escalation is Escalation.NUDGE
    assert "with the same arguments 3 times" in e.message


@pytest.mark.parametrize(
    "queries",
    [
        ["python asyncio tutorial", "asyncio tutorial python", "tutorial for python asyncio"],
        ["cheap flights to seattle", "cheap flights seattle", "find cheap flights to seattle"],
    ],
)
@pytest.mark.parametrize("result", ["[]", "No results found.", "ERROR echo: no results for '{q}'"])
def test_reworded_queries_with_the_same_result_are_loops(queries, result):
    items = [S("web_search", result.format(q=q), query=q, limit=10) for q in queries]
    at, e = first_event(items)
    assert at == 3
    assert e.loop_type is LoopType.SEMANTIC_REPEAT
    assert "nearly the same arguments 3 times" in e.message


def test_reworded_queries_with_new_results_are_not_loops():
    queries = ["python asyncio tutorial", "asyncio tutorial python", "tutorial for python asyncio"]
    no_loop([S("web_search", f"result {i}: a new page", query=q) for i, q in enumerate(queries)])


def test_alternation_with_volatile_details_is_a_loop():
    items = []
    for i in range(4):
        items.append(S("open", f"opened at 10:00:0{i}", path="a.txt"))
        items.append(S("open", f"opened at 10:01:0{i}", path="b.txt"))
    at, e = first_event(items)
    assert at == 4
    assert e.loop_type is LoopType.OSCILLATION
    events = run(items)
    assert any(s.loop_type is LoopType.ALTERNATING_PATTERN for s in events[5].signals)  # type: ignore[union-attr]


# -- peer rules through the detector ------------------------------------------------------------


def test_peer_rules_fire_through_observe():
    at, e = first_event([Message.of("assistant", "")] * 3)
    assert (at, e.loop_type, e.message) == (
        3,
        LoopType.EMPTY_RESPONSE,
        "Your last 3 responses were empty; answer or call a tool.",
    )
    at, e = first_event(
        [Message.of("assistant", "Let me think. Request 3f2a9c1e77ab.")] * 2
        + [Message.of("assistant", "Let me  think. Request 9bd01c44e2f0.")]
    )
    assert (at, e.loop_type) == (3, LoopType.MONOLOGUE)
    at, e = first_event([S("a", "1"), ContextCompressed(), Message.of("user", "go"), ContextCompressed()])
    assert (at, e.loop_type) == (4, LoopType.CONTEXT_WINDOW)
    at, e = first_event([S("deploy", error=f"timeout #{i}", env="prod") for i in range(3)])
    assert any(s.loop_type is LoopType.REPEATING_ACTION_ERROR for s in e.signals)
    assert e.recommended_action in (LoopAction.BACKTRACK, LoopAction.ESCALATE)


def test_dead_end_survives_user_turns_but_repeats_do_not():
    fail = S("update_reservation", error="Error: flight HAT030 not available", reservation_id="XEWRD9")
    items: list[Any] = []
    for _ in range(3):
        items += [fail, Message.of("assistant", "That failed."), Message.of("user", "Please try again.")]
    at, e = first_event(items)
    assert e.loop_type is LoopType.DEAD_END
    assert at == 7


def test_pressure_after_a_message_does_not_depend_on_an_earlier_snapshot():
    fail = S("run", error="boom", cmd="make")
    whole = MultiResolutionLoopDetector()
    run([fail, fail], whole)
    again = MultiResolutionLoopDetector.restore(json.loads(json.dumps(whole.snapshot())))
    for d in (whole, again):
        d.observe(Message.of("assistant", ""))
    assert again.snapshot() == whole.snapshot()


def test_own_message_fed_back_is_not_a_user_turn():
    a = S("search", "none", q="x")
    d = MultiResolutionLoopDetector()
    e = run([a, a, a], d)[-1]
    assert e is not None
    d.observe(Message.of("user", e.message))  # the tracker injects the nudge as a user message
    assert d.observe(a) is not None  # windows were not reset: the loop goes on
    assert d.escalation is Escalation.REPLAN
    d.observe(Message.of("system", "anything"))
    assert d.observe(a) is not None


# -- stats, history, time, validation -----------------------------------------------------------


def test_stats_and_history_cap():
    d = MultiResolutionLoopDetector()
    run([S("search", "x", q="a")] * 60, d)
    assert d.get_stats() == {
        "step_number": 60,
        "total_loops_detected": 58,
        "loop_history_size": 50,
        "recent_loop_types": ["exact_repeat"] * 5,
    }
    assert len(d.loop_history) == 50
    assert d.tried_approaches == ('search:{"q":"a"}',)


def test_tried_approaches_keep_the_last_ten_distinct():
    d = MultiResolutionLoopDetector()
    run([S("read", "x", n=i) for i in range(12)] + [S("read", "x", n=5)], d)
    assert len(d.tried_approaches) == 10
    assert d.tried_approaches[0] == 'read:{"n":2}'


def test_time_comes_from_now_then_item_then_last_known():
    d = MultiResolutionLoopDetector()
    a = S("search", "x", q="a")
    d.observe(a, now=5.0)
    d.observe(Step.of("search", {"q": "a"}, output="x", ts=7.0))
    e = d.observe(a)
    assert e is not None
    assert {s.timestamp for s in e.signals} == {7.0}
    e = d.observe(a, now=9)
    assert e is not None
    assert e.signals[0].timestamp == 9.0
    assert MultiResolutionLoopDetector().check("a", "b", "c") is None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda d: d.observe(42), "item"),
        (lambda d: d.observe(Step(tool=5)), "tool"),  # type: ignore[arg-type]
        (lambda d: d.observe(Step(tool="a", args=[1])), "args"),  # type: ignore[arg-type]
        (lambda d: d.observe(Step(tool="a", output=None)), "output"),  # type: ignore[arg-type]
        (lambda d: d.observe(Step(tool="a", error=3)), "error"),  # type: ignore[arg-type]
        (lambda d: d.observe(Step(tool="a", exit_code=True)), "exit_code"),
        (lambda d: d.observe(Step(tool="a", ts=math.nan)), "ts"),
        (lambda d: d.observe(Message("bot", "x")), "role"),  # type: ignore[arg-type]
        (lambda d: d.observe(Message("user", 5)), "content"),  # type: ignore[arg-type]
        (lambda d: d.observe(ContextCompressed(ts=math.nan)), "ts"),
        (lambda d: d.observe(S("a"), now=math.inf), "now"),
        (lambda d: d.observe(S("a"), now="1"), "now"),  # type: ignore[arg-type]
        (lambda d: d.check(1, "d", "o"), "action_type"),  # type: ignore[arg-type]
        (lambda d: d.check("a", "d", None), "output"),  # type: ignore[arg-type]
        (lambda d: d.check("a", "d", "o", 5), "error"),  # type: ignore[arg-type]
        (lambda d: d.check("a", "d", "o", now=math.nan), "now"),
    ],
)
def test_bad_input_is_rejected_without_corrupting_state(call, field):
    for profile in PROFILES:
        d = MultiResolutionLoopDetector(profile=profile)
        d.observe(S("a", "x"), now=1.0)
        before = d.snapshot()
        with pytest.raises(InvalidInputError) as info:
            call(d)
        assert info.value.field == field
        assert d.snapshot() == before


# -- snapshots ----------------------------------------------------------------------------------


def test_snapshot_is_json_and_restores():
    d = MultiResolutionLoopDetector()
    run([S("search", "x", q="a")] * 4 + [Message.of("assistant", "")] * 2, d)
    d.reset()
    snap = d.snapshot()
    assert snap["kind"] == "MultiResolutionLoopDetector"
    assert snap["schema"] == 2
    again = MultiResolutionLoopDetector.restore(json.loads(json.dumps(snap)))
    assert again.snapshot() == snap
    assert again.loop_history == d.loop_history


def test_restore_rejects_bad_snapshots():
    snap = MultiResolutionLoopDetector().snapshot()
    with pytest.raises(SnapshotError, match="expected a MultiResolutionLoopDetector"):
        MultiResolutionLoopDetector.restore(snap | {"kind": "DriftEngine"})
    with pytest.raises(SnapshotError, match="schema"):
        MultiResolutionLoopDetector.restore(snap | {"schema": 3})
    for name in ("policy", "detectors", "risk", "memory", "level", "history"):
        with pytest.raises(SnapshotError, match=name):
            MultiResolutionLoopDetector.restore({k: v for k, v in snap.items() if k != name})
    with pytest.raises(SnapshotError, match="policy"):
        MultiResolutionLoopDetector.restore(snap | {"policy": snap["policy"] | {"stop_at": 1}})
    with pytest.raises(SnapshotError, match="detectors"):
        MultiResolutionLoopDetector.restore(snap | {"detectors": snap["detectors"][:3]})
    with pytest.raises(SnapshotError):
        MultiResolutionLoopDetector.restore(snap | {"level": "panic"})
    with pytest.raises(SnapshotError):
        MultiResolutionLoopDetector.restore(snap | {"memory": [["a"]]})
    with pytest.raises(SnapshotError):
        MultiResolutionLoopDetector.restore(snap | {"history": [{"loop_type": "exact_repeat"}]})
    with pytest.raises(SnapshotError):
        MultiResolutionLoopDetector.restore(snap | {"history": [["exact_repeat", [], 0.5]]})


# -- properties ---------------------------------------------------------------------------------

# A small pool makes repetition (and so loops, re-entries and every escalation level) common.
_POOL: list[Any] = [
    S("search", "no hits", q="a"),
    S("search", "no hits", q="long text query"),
    S("search", "no hits", q="text query long"),
    S("search", "3 results", q="a"),
    S("edit", "ok", path="a.py"),
    S("test", "3 failed", cmd="pytest"),
    S("test", "1 failed", cmd="pytest"),
    S("run", error="boom", cmd="make"),
    S("run", error="Error: no target", cmd="make all"),
    Message.of("user", "please go on"),
    Message.of("assistant", ""),
    Message.of("assistant", "same"),
    Message.of("assistant", "other"),
    Message.of("system", "note"),
    ContextCompressed(),
    "reset",
]
_runs = st.tuples(st.sampled_from(_POOL), st.integers(1, 4), st.one_of(st.none(), st.floats(0, 1e9)))
_ops = st.lists(_runs, max_size=25).map(lambda runs: [(item, now) for item, n, now in runs for _ in range(n)])


def apply(d: MultiResolutionLoopDetector, op: tuple[Any, float | None]) -> dict[str, Any] | None:
    item, now = op
    if item == "reset":
        d.reset()
        return None
    e = d.observe(item, now=now)
    return e.to_dict() if e else None


@settings(max_examples=300, deadline=None)
@given(ops=_ops, cut=st.integers(0, 100), profile=st.sampled_from(sorted(PROFILES)))
def test_restore_and_continue_equals_an_uninterrupted_run(ops, cut, profile):
    cut = min(cut, len(ops))
    whole = MultiResolutionLoopDetector(profile=profile)
    expected = [apply(whole, op) for op in ops]
    first = MultiResolutionLoopDetector(profile=profile)
    head = [apply(first, op) for op in ops[:cut]]
    again = MultiResolutionLoopDetector.restore(json.loads(json.dumps(first.snapshot())))
    tail = [apply(again, op) for op in ops[cut:]]
    assert head + tail == expected
    assert again.snapshot() == whole.snapshot()


@settings(max_examples=120, deadline=None)
@given(ops=_ops, profile=st.sampled_from(sorted(PROFILES)))
def test_ranges_and_the_ladder_hold_for_any_stream(ops, profile):
    d = MultiResolutionLoopDetector(profile=profile)
    seen: list[LoopEvent] = []
    for op in ops:
        before = d.loop_risk
        apply(d, op)
        assert 0.0 <= d.loop_risk <= 1.0
        if not seen and op[0] != "reset":
            assert d.loop_risk < 0.5 or d.loop_history  # partial evidence never reaches the nudge band
        if d.loop_history and (not seen or d.loop_history[-1] is not seen[-1]):
            e = d.loop_history[-1]
            seen.append(e)
            assert e.loop_risk >= before or op[0] == "reset"
    for e in seen:
        assert 0.0 <= e.combined_confidence <= 1.0
        assert all(0.0 <= s.confidence <= 1.0 for s in e.signals)
        assert 0.0 <= e.loop_risk <= 1.0
        assert e.recommended_action in set(LoopAction)
    if seen:
        assert seen[0].escalation is Escalation.NUDGE  # never a stop (or replan) on the first sign
    for i, e in enumerate(seen):
        if e.escalation is Escalation.STOP:
            assert any(p.escalation is Escalation.REPLAN for p in seen[:i])


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_risk_decays_on_clean_steps(ops):
    d = MultiResolutionLoopDetector()
    for op in ops:
        apply(d, op)
    start = d.loop_risk
    for i in range(10):
        assert d.observe(S("fresh", f"new result {i}", n=i)) is None
        assert d.loop_risk <= max(start * 0.7 ** (i + 1), 0.0) + 1e-12
    assert d.loop_risk < 0.05
    assert d.escalation is Escalation.NONE
