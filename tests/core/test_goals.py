"""GoalBook: many goals by id, lifecycle, LRU eviction to compressed snapshots, transparent restore."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goalkeeper.core import goals as g
from goalkeeper.core.feedback_strategies import AdaptiveGoalFeedbackStrategy
from goalkeeper.core.goals import GoalBook, GoalInfo, GoalStatus
from goalkeeper.core.model import Budget, GoalEvent, MessageEvent, MetricsEvent, StepEvent
from goalkeeper.core.session import GoalSession
from goalkeeper.errors import ConfigurationError, GoalError, GoalNotFound, InvalidInputError, SnapshotError


def step(goal_id: str, i: int = 0, **kw: Any) -> StepEvent:
    kw.setdefault("tool", "search")
    kw.setdefault("args", {"q": i % 3})
    kw.setdefault("output", f"result {i % 2}")
    return StepEvent(goal_id=goal_id, ts=float(i), **kw)


def goal(goal_id: str, **kw: Any) -> GoalEvent:
    kw.setdefault("description", f"Finish task {goal_id}")
    return GoalEvent(goal_id=goal_id, **kw)


def test_constants_and_statuses_are_pinned() -> None:
    assert g.DEFAULT_MAX_ACTIVE == 1024
    assert g.COMPRESSION_LEVEL == 6
    assert g.ZDICT_LIMIT == 32 * 1024
    assert [s.value for s in GoalStatus] == ["active", "closed", "archived"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_active": 0}, "max_active"),
        ({"max_active": True}, "max_active"),
        ({"auto_create": 1}, "auto_create"),
        ({"on_evict": 3}, "on_evict"),
        ({"strategy": "simple"}, "strategy"),
        ({"profile": "fast"}, "profile"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GoalBook(**kwargs)


def test_create_get_list_and_lifecycle() -> None:
    book = GoalBook()
    session = book.create("a")
    assert isinstance(session, GoalSession)
    assert book.get("a") is session
    assert "a" in book
    assert len(book) == 1
    assert book.status("a") is GoalStatus.ACTIVE
    with pytest.raises(GoalError, match="already exists"):
        book.create("a")
    with pytest.raises(ConfigurationError):
        book.create("")
    book.apply(goal("b"))  # auto-created
    book.apply(step("b", 1))
    assert book.list() == [
        GoalInfo("a", GoalStatus.ACTIVE, 0, True),
        GoalInfo("b", GoalStatus.ACTIVE, 2, True),
    ]
    book.close("a")
    book.archive("b")
    assert [i.goal_id for i in book.list("closed")] == ["a"]
    assert book.list(GoalStatus.ARCHIVED) == [GoalInfo("b", GoalStatus.ARCHIVED, 2, False)]
    assert book.list("active") == []
    stats = book.stats()
    assert (stats["goals"], stats["resident"], stats["evicted"]) == (2, 0, 2)
    assert stats["evicted_bytes"] > 0
    with pytest.raises(GoalError, match="closed"):
        book.apply(step("a"))
    with pytest.raises(GoalError, match="archived"):
        book.apply(step("b"))
    copy = book.get("b")  # a restored copy, for reading
    assert copy.version == 2
    assert book.get("b") is not copy
    copy.apply(step("b", 5))
    assert book.get("b").version == 2
    with pytest.raises(InvalidInputError) as err:
        book.list("deleted")
    assert err.value.field == "status"


def test_unknown_goals() -> None:
    book = GoalBook(auto_create=False)
    for call in (book.get, book.close, book.archive, book.evict, book.forget, book.export, book.status):
        with pytest.raises(GoalNotFound):
            call("nope")
    with pytest.raises(GoalNotFound):
        book.apply(step("nope"))
    assert len(book) == 0
    with pytest.raises(GoalNotFound):
        book.get(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("goal_id", ["", "  ", None, 7])
def test_apply_needs_a_goal_id(goal_id: Any) -> None:
    book = GoalBook()
    with pytest.raises(InvalidInputError) as err:
        book.apply(StepEvent(goal_id=goal_id))
    assert err.value.field == "goal_id"
    assert len(book) == 0
    with pytest.raises(InvalidInputError):
        book.apply(object())  # type: ignore[arg-type]


def test_invalid_event_leaves_the_goal_unchanged() -> None:
    book = GoalBook()
    book.apply(goal("a"))
    before = json.dumps(book.export("a"), sort_keys=True)
    with pytest.raises(InvalidInputError) as err:
        book.apply(StepEvent(goal_id="a", tokens=-3))
    assert err.value.field == "tokens"
    assert json.dumps(book.export("a"), sort_keys=True) == before


def test_least_recently_used_is_evicted_and_restored_transparently() -> None:
    evicted: list[tuple[str, dict[str, Any]]] = []
    book = GoalBook(max_active=2, on_evict=lambda gid, snap: evicted.append((gid, snap)))
    for gid in ("a", "b"):
        book.apply(goal(gid))
    book.apply(step("a", 1))  # a is now the most recently used
    book.apply(goal("c"))
    assert [gid for gid, _ in evicted] == ["b"]
    assert json.loads(json.dumps(evicted[0][1]))["goal_id"] == "b"
    assert [(i.goal_id, i.resident) for i in book.list()] == [("a", True), ("b", False), ("c", True)]
    assert book.stats()["resident"] == 2
    assert book.stats()["evicted"] == 1
    assert book.export("b") == evicted[0][1]
    session = book.get("b")  # restored; evicts a (least recently used now)
    assert session.version == 1
    assert session.goal == "Finish task b"
    assert [gid for gid, _ in evicted] == ["b", "a"]
    assert book.apply(step("b", 2)).version == 2
    assert book.evict("b")
    assert not book.evict("b")
    assert book.list()[1] == GoalInfo("b", GoalStatus.ACTIVE, 2, False)


def test_on_evict_failure_leaves_the_book_consistent() -> None:
    calls: list[str] = []

    def hook(gid: str, snapshot: dict[str, Any]) -> None:
        calls.append(gid)
        raise RuntimeError("store down")

    book = GoalBook(max_active=1, on_evict=hook)
    book.apply(goal("a"))
    with pytest.raises(RuntimeError):
        book.apply(goal("b"))  # a is evicted (safely kept) before b is created; then the hook fails
    assert calls == ["a"]
    assert "b" not in book
    assert book.stats()["evicted"] == 1
    assert book.get("a").version == 1  # nothing resident any more, so no eviction, no hook


def test_export_load_and_forget() -> None:
    book = GoalBook()
    book.apply(goal("a", goal_state={"p": 10}, budget=Budget(steps=9)))
    book.apply(MetricsEvent(goal_id="a", values={"p": 3}))
    snapshot = book.export("a")
    other = GoalBook()
    info = other.load(json.loads(json.dumps(snapshot)), status="closed")
    assert info == GoalInfo("a", GoalStatus.CLOSED, 2, False)
    assert other.export("a") == snapshot
    with pytest.raises(GoalError):
        other.load(snapshot)
    with pytest.raises(SnapshotError):
        other.load({"kind": "GoalSession", "schema": 1})
    with pytest.raises(InvalidInputError):
        other.load(snapshot, status="gone")
    book.forget("a")
    assert "a" not in book
    assert len(book) == 0


def test_strategy_factory_gives_each_goal_its_own_strategy() -> None:
    book = GoalBook(strategy=AdaptiveGoalFeedbackStrategy)
    a, b = book.create("a"), book.create("b")
    assert a.feedback_loop.strategy is not b.feedback_loop.strategy
    assert isinstance(a.feedback_loop.strategy, AdaptiveGoalFeedbackStrategy)


def test_evicted_bytes_are_small() -> None:
    book = GoalBook(max_active=1)
    for n in range(3):
        gid = f"goal-{n}"
        book.apply(goal(gid, goal_state={"progress": 10}, plan=("search", "book"), budget=Budget(steps=40)))
        for i in range(6):
            book.apply(step(gid, i, tool=f"tool{i % 3}", args={"id": f"R{n}{i}"}, output=f"row {i}"))
        book.apply(MetricsEvent(goal_id=gid, values={"progress": n + 1}))
        book.apply(MessageEvent(goal_id=gid, role="user", content="any direct flight?"))
    book.evict("goal-2")
    stats = book.stats()
    # The preset dictionary makes a small blob much smaller than plain zlib would.
    assert stats["evicted_bytes"] / stats["evicted"] < 2500


# -- property: eviction is invisible ------------------------------------------------------------------


@st.composite
def interleavings(draw: st.DrawFn) -> list[tuple[str, int]]:
    return draw(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 50)), max_size=40))


def event_for(goal_id: str, r: int, i: int) -> Any:
    kind = r % 5
    if kind == 0:
        return goal(goal_id, goal_state={"p": 10}, budget=Budget(steps=5 + r % 7))
    if kind == 1:
        return MetricsEvent(goal_id=goal_id, event_id=f"m{r}", values={"p": r % 11})
    if kind == 2:
        return MessageEvent(goal_id=goal_id, role="assistant", content="thinking" if r % 2 else "")
    return step(goal_id, i, args={"q": r % 3}, event_id=f"s{r}")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=interleavings(), max_active=st.integers(1, 3))
def test_eviction_never_changes_an_outcome(plan: list[tuple[str, int]], max_active: int) -> None:
    small, large = GoalBook(max_active=max_active), GoalBook(max_active=100)
    for i, (gid, r) in enumerate(plan):
        event = event_for(gid, r, i)
        assert small.apply(event).to_dict() == large.apply(event).to_dict()
        assert small.stats()["resident"] <= max_active
    for info in large.list():
        assert small.export(info.goal_id) == large.export(info.goal_id)
