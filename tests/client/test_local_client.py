"""The in-process clients: every method, its errors, and sync/async parity."""

from __future__ import annotations

import threading

import pytest

from goalkeeper import Budget, GoalBook, StepEvent
from goalkeeper.client import (
    AsyncLocalClient,
    ConfigurationError,
    Decision,
    LocalClient,
    connect,
    connect_async,
)
from goalkeeper.errors import GoalError, GoalNotFound, InvalidInputError, ValidationError

GOAL = "Find the population of Paris and report it"


def clock() -> float:
    return 1_700_000_000.0


def loop_steps(gk: LocalClient, goal_id: str, n: int) -> list[Decision]:
    return [gk.step(goal_id, "search", {"q": "paris population"}, output="no results") for _ in range(n)]


def test_goal_lifecycle() -> None:
    gk = LocalClient(clock=clock)
    goal = gk.create_goal(
        GOAL, goal_id="paris", plan=["search", "report"], goal_state={"progress": 10}, budget=Budget(steps=20)
    )
    assert (goal.goal_id, goal.status, goal.version) == ("paris", "active", 1)
    assert goal.description == GOAL
    assert goal.plan == ("search", "report")
    assert "progress" in goal.goal_state
    assert goal.recommended_action == "continue"
    assert gk.get_goal("paris") == goal
    receipt = gk.update_goal("paris", plan=["search", "verify", "report"])
    assert (receipt.accepted, receipt.duplicates) == (1, 0)
    assert gk.get_goal("paris").plan == ("search", "verify", "report")
    closed = gk.close_goal("paris")
    assert closed.status == "closed"
    assert gk.close_goal("paris").status == "closed"  # idempotent
    assert [g.goal_id for g in gk.list_goals("closed")] == ["paris"]
    assert gk.list_goals("active") == []


def test_generated_goal_ids_are_unique() -> None:
    gk = LocalClient()
    ids = {gk.create_goal(GOAL).goal_id for _ in range(3)}
    assert len(ids) == 3


def test_record_answers_with_the_sessions_decision() -> None:
    gk = LocalClient(clock=clock)
    gk.create_goal(GOAL, goal_id="paris")
    decisions = loop_steps(gk, "paris", 6)
    assert [d.action for d in decisions] == ["continue", "continue", "adjust", "replan", "replan", "abort"]
    assert [d.version for d in decisions] == [2, 3, 4, 5, 6, 7]
    third = decisions[2]
    assert third.suggestion is not None
    assert third.suggestion.kind.value == "adjust"
    assert third.nudge == third.suggestion.message
    assert "`search`" in third.describe()
    assert decisions[4].nudge is None  # an unchanged state repeats no suggestion
    assert decisions[4].describe().startswith("goalkeeper recommends replan (progress ")
    assert set(third.metrics) == {"current_progress", "drift_score", "loop_risk"}
    assert decisions[-1].metrics["loop_risk"] > third.metrics["loop_risk"]


def test_an_event_sent_twice_is_applied_once() -> None:
    gk = LocalClient()
    gk.create_goal(GOAL, goal_id="paris")
    event = StepEvent(goal_id="paris", event_id="e1", tool="search", args={"q": "x"}, output="none")
    first, again = gk.record(event), gk.record(event)
    assert not first.duplicate
    assert again.duplicate
    assert again.version == first.version
    receipt = gk.send([event, {"type": "step", "goal_id": "paris", "event_id": "e2", "tool": "t"}])
    assert (receipt.accepted, receipt.duplicates, receipt.event_ids) == (1, 1, ("e1", "e2"))


def test_events_without_ids_get_one_and_a_ts() -> None:
    gk = LocalClient(clock=clock)
    receipt = gk.send([{"type": "step", "goal_id": "new-goal", "tool": "search"}])
    assert len(receipt.event_ids[0]) == 32
    (point,) = gk.metrics_history("new-goal")
    assert point["event_id"] == receipt.event_ids[0]
    assert point["ts"] == clock()


def test_suggestions_feedback_metrics_and_task() -> None:
    gk = LocalClient(clock=clock)
    gk.create_goal(GOAL, goal_id="paris")
    loop_steps(gk, "paris", 4)
    kinds = [s.kind.value for s in gk.suggestions("paris")]
    assert kinds == ["adjust", "replan"]
    assert [s.kind.value for s in gk.suggestions("paris", after_version=4)] == ["replan"]
    assert len(gk.suggestions("paris", limit=1)) == 1
    replan = gk.suggestions("paris")[-1]
    receipt = gk.feedback(replan.suggestion_id, "accepted")
    assert receipt.accepted == 1
    points = gk.metrics_history("paris")
    assert [p["seq"] for p in points] == [1, 2, 3, 4, 5, 6]
    assert points[-1]["event_type"] == "feedback"
    assert points[3]["flags"] == ["escalation:nudge", "suggestion:adjust"]
    assert [p["seq"] for p in gk.metrics_history("paris", after_seq=4, limit=1)] == [5]
    task = gk.task("paris")
    assert task["goal"] == GOAL
    assert task["steps"] == 4
    assert task["tools"]["search"]["calls"] == 4
    assert "[TASK STATE]" in task["context"]
    assert gk.health()["status"] == "ok"


def test_retention_bounds_what_is_kept() -> None:
    gk = LocalClient(retention=2)
    gk.create_goal(GOAL, goal_id="paris")
    decisions = loop_steps(gk, "paris", 6)
    assert [p["seq"] for p in gk.metrics_history("paris")] == [6, 7]
    assert [s.kind.value for s in gk.suggestions("paris")] == ["replan", "abort"]
    dropped = decisions[2].suggestions[0]  # the adjust nudge, pushed out
    with pytest.raises(InvalidInputError, match="no suggestion"):
        gk.feedback(dropped.suggestion_id, "helped")


@pytest.mark.parametrize(
    ("call", "error", "field"),
    [
        (lambda gk: gk.get_goal("nope"), GoalNotFound, None),
        (lambda gk: gk.create_goal(GOAL, goal_id="paris"), GoalError, None),
        (lambda gk: gk.create_goal(GOAL, plan="search"), ValidationError, "plan"),
        (lambda gk: gk.create_goal(GOAL, budget={"steps": -1}), ValidationError, "budget.steps"),
        (lambda gk: gk.update_goal("nope", description="x"), GoalNotFound, None),
        (
            lambda gk: gk.send([{"type": "step", "goal_id": "paris", "args": [1]}]),
            ValidationError,
            "events[0].args",
        ),
        (lambda gk: gk.send({"type": "step"}), ValidationError, "events"),
        (lambda gk: gk.record({"type": "nope", "goal_id": "paris"}), ValidationError, "type"),
        (lambda gk: gk.record(42), ValidationError, None),
        (lambda gk: gk.suggestions("paris", limit=0), InvalidInputError, "limit"),
        (lambda gk: gk.metrics_history("paris", after_seq=-1), InvalidInputError, "after_seq"),
        (lambda gk: gk.list_goals("done"), InvalidInputError, "status"),
        (lambda gk: gk.feedback("unknown", "accepted"), InvalidInputError, "suggestion_id"),
        (lambda gk: gk.feedback("unknown", "great"), InvalidInputError, "outcome"),
        (lambda gk: gk.get_goal(""), InvalidInputError, "goal_id"),
        (lambda gk: gk.suggestions("nope"), GoalNotFound, None),
    ],
)
def test_bad_calls_raise_precise_errors(call, error, field) -> None:
    gk = LocalClient()
    gk.create_goal(GOAL, goal_id="paris")
    before = gk.get_goal("paris").version
    with pytest.raises(error) as caught:
        call(gk)
    if field is not None:
        assert caught.value.field == field
    assert gk.get_goal("paris").version == before  # nothing changed


def test_a_closed_goal_refuses_a_whole_batch() -> None:
    gk = LocalClient()
    gk.create_goal(GOAL, goal_id="open")
    gk.create_goal(GOAL, goal_id="shut")
    gk.close_goal("shut")
    batch = [
        {"type": "step", "goal_id": "open", "tool": "a"},
        {"type": "step", "goal_id": "shut", "tool": "b"},
    ]
    with pytest.raises(GoalError, match="closed"):
        gk.send(batch)
    assert gk.get_goal("open").version == 1


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        LocalClient(retention=0)
    with pytest.raises(ConfigurationError):
        LocalClient(book="not a book")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="target"):
        connect("ftp://example.com")
    with pytest.raises(ConfigurationError, match="connect"):
        connect("local", token="x")
    with pytest.raises(ConfigurationError, match="connect_async"):
        connect_async("local", nope=1)


def test_connect_picks_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(connect("local"), LocalClient)
    assert isinstance(connect_async("local://"), AsyncLocalClient)
    monkeypatch.delenv("GOALKEEPER_URL", raising=False)
    assert isinstance(connect(), LocalClient)
    book = GoalBook(max_active=2)
    client = connect("local", book=book)
    assert isinstance(client, LocalClient)
    assert client.book is book
    monkeypatch.setenv("GOALKEEPER_URL", "http://127.0.0.1:9")
    from goalkeeper.client import GoalkeeperClient

    remote = connect()
    assert isinstance(remote, GoalkeeperClient)
    remote.close()


async def test_the_async_client_gives_the_same_answers() -> None:
    sync, asy = LocalClient(clock=clock), AsyncLocalClient(clock=clock)
    sync.create_goal(GOAL, goal_id="paris")
    async with asy:
        await asy.create_goal(GOAL, goal_id="paris")
        for _ in range(6):
            a = sync.step("paris", "search", {"q": "paris population"}, output="no results", event_id=None)
            b = await asy.step("paris", "search", {"q": "paris population"}, output="no results")
            assert (a.action, a.version, a.metrics) == (b.action, b.version, b.metrics)
            assert [s.suggestion_id for s in a.suggestions] == [s.suggestion_id for s in b.suggestions]
        assert [s.to_dict() for s in sync.suggestions("paris")] == [
            s.to_dict() for s in await asy.suggestions("paris")
        ]
        assert sync.task("paris") == await asy.task("paris")
        assert (await asy.get_goal("paris")).metrics == sync.get_goal("paris").metrics
        assert (await asy.update_goal("paris", description="new text")).accepted == 1
        assert [g.goal_id for g in await asy.list_goals()] == ["paris"]
        sid = (await asy.suggestions("paris"))[0].suggestion_id
        assert (await asy.feedback(sid, "helped")).accepted == 1
        assert len(await asy.metrics_history("paris")) == 9
        assert (await asy.health())["mode"] == "local"
        assert (await asy.close_goal("paris")).status == "closed"
        assert (await asy.send([])).accepted == 0
        assert (await asy.record({"type": "step", "goal_id": "other", "tool": "t"})).version == 1


def test_threads_can_share_a_local_client() -> None:
    gk = LocalClient()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                gk.step(f"goal-{n}", "tool", {"i": i}, output=str(i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(g.version for g in gk.list_goals()) == [50, 50, 50, 50]
