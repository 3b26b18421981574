"""Goal status and per-goal suggestions: what the API, CLI and dashboard read."""

from __future__ import annotations

import pytest
from store_backends import DURABLE_STORE_URLS

from goalkeeper.errors import ConflictError, InvalidInputError
from goalkeeper.ports.store import Commit, GoalStatus, StoredSuggestion
from goalkeeper.stores import open_store
from goalkeeper.stores._base import BaseStore


def sugg(sid: str, goal: str = "g1", **extra: object) -> dict[str, object]:
    return {"suggestion_id": sid, "goal_id": goal, "kind": "nudge", "message": f"try {sid}", **extra}


async def test_goals_start_active_and_status_changes_only_by_set_goal_status(store: BaseStore) -> None:
    assert await store.set_goal_status("nobody", "closed") is False  # nothing is created
    assert await store.load("nobody") is None
    assert await store.list_goals() == []

    await store.commit_many([Commit(g, 0, {"id": g}) for g in ("a", "b", "c")])
    listed = await store.list_goals()
    assert [(g.goal_id, g.status) for g in listed] == [("a", "active"), ("b", "active"), ("c", "active")]
    assert all(isinstance(g.status, GoalStatus) for g in listed)

    before = await store.load("b")
    assert before is not None
    assert before.status is GoalStatus.ACTIVE
    assert await store.set_goal_status("b", GoalStatus.CLOSED) is True
    assert await store.set_goal_status("c", "archived") is True
    after = await store.load("b")
    assert after is not None
    assert after.status == "closed"  # GoalStatus is a str
    # The status is not a commit: version, snapshot and updated_at are untouched.
    assert (after.version, after.snapshot, after.updated_at) == (
        before.version,
        before.snapshot,
        before.updated_at,
    )

    # A commit never changes the status.
    await store.commit(Commit("b", 1, {"id": "b", "n": 2}))
    again = await store.load("b")
    assert again is not None
    assert (again.version, again.status) == (2, GoalStatus.CLOSED)

    assert [g.goal_id for g in await store.list_goals(status="active")] == ["a"]
    assert [(g.goal_id, g.version, g.status) for g in await store.list_goals(status=GoalStatus.CLOSED)] == [
        ("b", 2, GoalStatus.CLOSED)
    ]
    assert [g.goal_id for g in await store.list_goals(status="archived")] == ["c"]
    assert [(g.goal_id, g.status) for g in await store.list_goals(status=None)] == [
        ("a", "active"),
        ("b", "closed"),
        ("c", "archived"),
    ]

    # Setting the same status again is fine; moving back works too.
    assert await store.set_goal_status("b", "closed") is True
    assert await store.set_goal_status("b", "active") is True
    assert [g.goal_id for g in await store.list_goals(status="active")] == ["a", "b"]
    assert await store.list_goals(status="closed") == []


async def test_status_filter_pages_with_prefix_and_cursor(store: BaseStore) -> None:
    ids = [f"t{i:02d}" for i in range(12)] + ["u01", "u02"]
    await store.commit_many([Commit(g, 0, {}) for g in ids])
    for i, goal_id in enumerate(ids):
        if i % 3 == 0:
            assert await store.set_goal_status(goal_id, "closed")
    closed = [g for i, g in enumerate(ids) if i % 3 == 0]
    assert closed == ["t00", "t03", "t06", "t09", "u01"]
    page1 = await store.list_goals(status="closed", prefix="t", limit=2)
    page2 = await store.list_goals(status="closed", prefix="t", limit=2, after=page1[-1].goal_id)
    page3 = await store.list_goals(status="closed", prefix="t", limit=2, after=page2[-1].goal_id)
    assert [g.goal_id for g in page1 + page2 + page3] == ["t00", "t03", "t06", "t09"]
    active = await store.list_goals(status="active", limit=100)
    assert [g.goal_id for g in active] == [g for g in ids if g not in closed]
    assert [g.goal_id for g in await store.list_goals(status="active", prefix="u")] == ["u02"]
    assert [g.goal_id for g in await store.list_goals(status="closed", after="t09")] == ["u01"]


async def test_suggestions_of_a_goal_delivered_or_not(store: BaseStore) -> None:
    await store.commit(Commit("g1", 0, {}, suggestions=[sugg("s1", n=1), sugg("s2")]))
    await store.commit(Commit("g2", 0, {}, suggestions=[sugg("t1", "g2")]))
    await store.commit(Commit("g1", 1, {}, suggestions=[sugg("s3")]))
    await store.commit(Commit("g1", 2, {}))  # a version without suggestions
    # A replayed id is a duplicate: it does not show up twice, and keeps its first version.
    await store.commit(Commit("g1", 3, {}, suggestions=[sugg("s0"), sugg("s2", n=99)]))
    with pytest.raises(ConflictError, match="expected version 0"):
        await store.commit(Commit("g1", 0, {}, suggestions=[sugg("s-stale")]))
    assert await store.mark_delivered(["s1", "t1"]) == 2

    listed = await store.suggestions("g1")
    assert all(isinstance(s, StoredSuggestion) for s in listed)
    assert [(s.suggestion_id, s.version, s.delivered) for s in listed] == [
        ("s1", 1, True),
        ("s2", 1, False),
        ("s3", 2, False),
        ("s0", 4, False),
    ]
    assert listed[0].suggestion == sugg("s1", n=1)
    assert listed[1].suggestion == sugg("s2")  # the first stored one is kept
    assert all(s.goal_id == "g1" and s.created_at > 1e9 for s in listed)
    assert [s.suggestion_id for s in await store.suggestions("g1", after_version=1)] == ["s3", "s0"]
    assert [s.suggestion_id for s in await store.suggestions("g1", after_version=2)] == ["s0"]
    assert await store.suggestions("g1", after_version=4) == []
    assert [s.suggestion_id for s in await store.suggestions("g1", limit=2)] == ["s1", "s2"]
    assert [s.suggestion_id for s in await store.suggestions("g1", limit=1, after_version=1)] == ["s3"]
    assert [(s.suggestion_id, s.delivered) for s in await store.suggestions("g2")] == [("t1", True)]
    assert await store.suggestions("nobody") == []


async def test_get_suggestion_finds_the_goal_of_an_id(store: BaseStore) -> None:
    await store.commit(Commit("g1", 0, {}, suggestions=[sugg("s1", rule="loop")]))
    await store.commit(Commit("g2", 0, {}))
    await store.commit(Commit("g2", 1, {}, suggestions=[sugg("t1", "g2")]))
    found = await store.get_suggestion("t1")
    assert found is not None
    assert (found.suggestion_id, found.goal_id, found.version, found.delivered) == ("t1", "g2", 2, False)
    assert found.suggestion == sugg("t1", "g2")
    assert found.created_at > 1e9
    assert await store.get_suggestion("missing") is None
    await store.mark_delivered(["s1"])
    delivered = await store.get_suggestion("s1")
    assert delivered is not None
    assert (delivered.goal_id, delivered.delivered, delivered.suggestion["rule"]) == ("g1", True, "loop")
    # Ids with characters that mean something to some backend (globs, separators) are plain ids.
    await store.commit(Commit("g3", 0, {}, suggestions=[sugg("a|b *[x] ?", "g3")]))
    odd = await store.get_suggestion("a|b *[x] ?")
    assert odd is not None
    assert odd.goal_id == "g3"
    assert [s.suggestion_id for s in await store.suggestions("g3")] == ["a|b *[x] ?"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.suggestions(""), "goal_id"),
        (lambda s: s.suggestions("g", limit=0), "limit"),
        (lambda s: s.suggestions("g", after_version=-1), "after_version"),
        (lambda s: s.suggestions("g", after_version="1"), "after_version"),
        (lambda s: s.get_suggestion(""), "suggestion_id"),
        (lambda s: s.get_suggestion(7), "suggestion_id"),
        (lambda s: s.set_goal_status("g", "done"), "status"),
        (lambda s: s.set_goal_status("g", None), "status"),
        (lambda s: s.set_goal_status("g", "ACTIVE"), "status"),
        (lambda s: s.set_goal_status("", "active"), "goal_id"),
        (lambda s: s.list_goals(status="bogus"), "status"),
        (lambda s: s.list_goals(status=1), "status"),
    ],
)
async def test_bad_arguments_name_the_field(store: BaseStore, call, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await call(store)
    assert info.value.field == field


async def test_bad_status_message_lists_the_known_ones(store: BaseStore) -> None:
    with pytest.raises(
        InvalidInputError, match="status: must be one of active, closed, archived, got 'done'"
    ):
        await store.set_goal_status("g", "done")


# memory:// keeps nothing outside the store object (documented), so it has nothing to reopen.
@pytest.mark.parametrize("backend", DURABLE_STORE_URLS, indirect=True)
async def test_status_history_and_suggestions_survive_reopening(store_url: str, backend: str) -> None:
    point = {
        "event_id": "e1",
        "event_type": "step",
        "ts": 1.0,
        "progress": 0.5,
        "drift_score": 0.0,
        "loop_risk": 0.0,
        "action": "continue",
    }
    async with open_store(store_url) as s:
        await s.commit(Commit("g1", 0, {}, suggestions=[sugg("s1")], metrics=[point]))
        assert await s.set_goal_status("g1", "archived")
    async with open_store(store_url) as s:
        record = await s.load("g1")
        assert record is not None
        assert record.status == "archived"
        assert [g.goal_id for g in await s.list_goals(status="archived")] == ["g1"]
        assert [m.point for m in await s.metrics_history("g1")] == [point]
        assert [x.suggestion_id for x in await s.suggestions("g1")] == ["s1"]
        # Numbering continues after a reopen.
        result = await s.commit(Commit("g1", 1, {}, metrics=[{**point, "event_id": "e2"}]))
        assert result.metric_seqs == (2,)
