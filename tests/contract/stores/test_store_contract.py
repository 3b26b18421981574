"""The StateStore contract: every backend (memory, SQLite, PostgreSQL, Redis) passes these unchanged."""

from __future__ import annotations

import asyncio
import math

import pytest
from store_backends import DURABLE_STORE_URLS, with_options

from goalkeeper.errors import ConflictError, InvalidInputError, StoreError
from goalkeeper.ports.store import Commit, StateStore
from goalkeeper.stores import open_store
from goalkeeper.stores._base import DEFAULT_INBOX_KEEP, SCHEMA_VERSION, BaseStore


def sugg(sid: str, goal: str = "g1", **extra: object) -> dict[str, object]:
    return {"suggestion_id": sid, "goal_id": goal, "kind": "nudge", "message": f"try {sid}", **extra}


def event(goal: str, eid: str, **extra: object) -> dict[str, object]:
    return {"goal_id": goal, "event_id": eid, "type": "step", "ts": 1.5, **extra}


async def test_store_satisfies_protocol(store: BaseStore) -> None:
    assert isinstance(store, StateStore)
    assert "***" not in store.url or "@" in store.url


async def test_round_trip(store: BaseStore) -> None:
    assert await store.load("g1") is None
    snapshot = {"kind": "GoalSession", "schema": 1, "x": [1, 2.5, "é", None, True], "nested": {"a": 0.1}}
    result = await store.commit(Commit("g1", 0, snapshot, event_ids=["e1"]))
    assert (result.committed, result.conflict, result.version) == (True, False, 1)
    assert result.duplicate_event_ids == ()
    assert result.duplicate_suggestion_ids == ()
    record = await store.load("g1")
    assert record is not None
    assert (record.goal_id, record.version, record.snapshot) == ("g1", 1, snapshot)
    assert isinstance(record.updated_at, float)
    assert record.updated_at > 1e9
    # What load returns is a copy: changing it changes nothing stored.
    record.snapshot["x"].append("mutated")
    again = await store.load("g1")
    assert again is not None
    assert again.snapshot == snapshot
    assert (await store.commit(Commit("g1", 1, {"n": 2}))).version == 2
    latest = await store.load("g1")
    assert latest is not None
    assert (latest.version, latest.snapshot) == (2, {"n": 2})


async def test_stale_writer_gets_conflict_and_nothing_is_written(store: BaseStore) -> None:
    await store.commit(Commit("g1", 0, {"n": 1}, event_ids=["e1"], suggestions=[sugg("s1")]))
    stale = Commit("g1", 0, {"n": "stale"}, event_ids=["e-stale"], suggestions=[sugg("s-stale")])
    with pytest.raises(ConflictError, match=r"goal 'g1': expected version 0 but the stored version is 1"):
        await store.commit(stale)
    with pytest.raises(ConflictError, match="nothing was written"):
        await store.commit(Commit("g1", 7, {"n": "ahead"}))
    record = await store.load("g1")
    assert record is not None
    assert (record.version, record.snapshot) == (1, {"n": 1})
    assert await store.applied_event_ids("g1", ["e1", "e-stale"]) == {"e1"}
    assert [s.suggestion_id for s in await store.pending_suggestions()] == ["s1"]
    # A goal that has no state yet is at version 0: expecting anything else is stale too.
    with pytest.raises(ConflictError, match="stored version is 0"):
        await store.commit(Commit("new", 3, {}))
    assert await store.load("new") is None


async def test_commit_many_reports_conflicts_per_goal(store: BaseStore) -> None:
    await store.commit(Commit("b", 0, {"v": 1}))
    results = await store.commit_many(
        [
            Commit("a", 0, {"v": 1}, event_ids=["a1"]),
            Commit("b", 0, {"v": "lost"}, event_ids=["b-lost"], suggestions=[sugg("sb", "b")]),
            Commit("c", 0, {"v": 1}, suggestions=[sugg("sc", "c")]),
            Commit("a", 1, {"v": 2}, event_ids=["a2"]),  # same goal again: applies in order
        ]
    )
    assert [(r.goal_id, r.committed, r.version) for r in results] == [
        ("a", True, 1),
        ("b", False, 1),
        ("c", True, 1),
        ("a", True, 2),
    ]
    b = await store.load("b")
    assert b is not None
    assert b.snapshot == {"v": 1}
    assert await store.applied_event_ids("b", ["b-lost"]) == set()
    assert [s.suggestion_id for s in await store.pending_suggestions()] == ["sc"]
    a = await store.load("a")
    assert a is not None
    assert (a.version, a.snapshot) == (2, {"v": 2})
    assert await store.commit_many([]) == []


async def test_invalid_batch_is_rejected_before_anything_is_written(store: BaseStore) -> None:
    good = Commit("g1", 0, {"ok": True})
    bad = Commit("g2", 0, {"x": math.nan})
    with pytest.raises(InvalidInputError) as info:
        await store.commit_many([good, bad])
    assert info.value.field == "commits[1].snapshot"
    unserialisable = Commit("g2", 0, {"x": object()})
    with pytest.raises(InvalidInputError, match="JSON-able"):
        await store.commit_many([good, unserialisable])
    with pytest.raises(InvalidInputError) as info:
        await store.commit_many([good, "not a commit"])  # type: ignore[list-item]
    assert info.value.field == "commits[1]"
    assert await store.load("g1") is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"goal_id": ""}, "goal_id"),
        ({"goal_id": 3}, "goal_id"),
        ({"expected_version": -1}, "expected_version"),
        ({"expected_version": True}, "expected_version"),
        ({"expected_version": 1.0}, "expected_version"),
        ({"snapshot": [1]}, "snapshot"),
        ({"event_ids": "e1"}, "event_ids"),
        ({"event_ids": ["e1", ""]}, "event_ids[1]"),
        ({"suggestions": [{"kind": "nudge"}]}, "suggestions[0].suggestion_id"),
        ({"suggestions": [sugg("s", goal="other")]}, "suggestions[0].goal_id"),
        ({"suggestions": ["s"]}, "suggestions[0]"),
    ],
)
def test_commit_validates_its_fields(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"goal_id": "g1", "expected_version": 0, "snapshot": {}} | kwargs
    with pytest.raises(InvalidInputError) as info:
        Commit(**args)  # type: ignore[arg-type]
    assert info.value.field == field


async def test_racing_writers_lose_no_update(store: BaseStore, peer: BaseStore) -> None:
    """Two writers race 1,000 read-modify-write commits on one goal; every increment survives."""
    total = 1000
    conflicts = 0

    async def writer(s: BaseStore, name: str, count: int) -> None:
        nonlocal conflicts
        done = 0
        while done < count:
            record = await s.load("race")
            version = record.version if record else 0
            n = record.snapshot["n"] if record else 0
            event_id = f"{name}-{done}"
            point = {
                "event_id": event_id,
                "event_type": "step",
                "ts": float(n),
                "progress": 0.5,
                "drift_score": 0.0,
                "loop_risk": 0.0,
                "action": "continue",
            }
            try:
                await s.commit(Commit("race", version, {"n": n + 1}, event_ids=[event_id], metrics=[point]))
            except ConflictError:
                conflicts += 1
                continue
            done += 1

    await asyncio.gather(writer(store, "a", total // 2), writer(peer, "b", total // 2))
    record = await store.load("race")
    assert record is not None
    assert record.version == total
    assert record.snapshot == {"n": total}
    ids = [f"{w}-{i}" for w in "ab" for i in range(total // 2)]
    assert await store.applied_event_ids("race", ids) == set(ids)
    # The history got exactly one point per winning commit, numbered without gaps, in commit order.
    history = await store.metrics_history("race", limit=total + 10)
    assert [m.seq for m in history] == list(range(1, total + 1))
    assert sorted(m.point["event_id"] for m in history) == sorted(ids)
    assert [m.point["ts"] for m in history] == [float(i) for i in range(total)]


async def test_duplicate_event_ids_are_reported_and_skipped(store: BaseStore) -> None:
    first = await store.commit(Commit("g1", 0, {"n": 1}, event_ids=["e1", "e2", "e1"]))
    assert first.duplicate_event_ids == ("e1",)
    second = await store.commit(Commit("g1", 1, {"n": 2}, event_ids=["e3", "e2", "e4"]))
    assert second.committed
    assert second.version == 2
    assert second.duplicate_event_ids == ("e2",)
    assert await store.applied_event_ids("g1", ["e1", "e2", "e3", "e4", "e5"]) == {"e1", "e2", "e3", "e4"}
    # The inbox is per goal: the same id applied to another goal is not a duplicate there.
    assert await store.applied_event_ids("g2", ["e1"]) == set()
    other = await store.commit(Commit("g2", 0, {}, event_ids=["e1"]))
    assert other.duplicate_event_ids == ()
    assert await store.applied_event_ids("g1", []) == set()


async def test_applied_event_ids_for_many_goals_at_once(store: BaseStore) -> None:
    await store.commit(Commit("g1", 0, {}, event_ids=["e1", "e2"]))
    await store.commit(Commit("g2", 0, {}, event_ids=["e1", "x"]))
    ids = [f"e{i}" for i in range(1200)]  # more than one SQL statement's worth of parameters
    await store.commit(Commit("big", 0, {}, event_ids=ids[::2]))
    found = await store.applied_event_ids_many(
        {"g1": ["e1", "e3", "x"], "g2": ("e1", "e2", "x"), "none": ["e1"], "empty": [], "big": ids}
    )
    assert found == {"g1": {"e1"}, "g2": {"e1", "x"}, "none": set(), "empty": set(), "big": set(ids[::2])}
    # The same answers as asking goal by goal.
    for goal_id, wanted in (("g1", ["e1", "e3", "x"]), ("g2", ["e1", "e2", "x"]), ("big", ids)):
        assert await store.applied_event_ids(goal_id, wanted) == found[goal_id]
    assert await store.applied_event_ids_many({}) == {}
    with pytest.raises(InvalidInputError):
        await store.applied_event_ids_many([("g1", ["e1"])])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        await store.applied_event_ids_many({"": ["e1"]})
    with pytest.raises(InvalidInputError):
        await store.applied_event_ids_many({"g1": [3]})  # type: ignore[list-item]


async def test_inbox_keeps_the_newest_ids_per_goal(store_url: str) -> None:
    async with open_store(with_options(store_url, inbox_keep=3)) as s:
        assert s.inbox_keep == 3
        await s.commit(Commit("g1", 0, {}, event_ids=["e1", "e2"]))
        await s.commit(Commit("g1", 1, {}, event_ids=["e3", "e2", "e4"]))  # e2 is a duplicate
        await s.commit(Commit("g1", 2, {}, event_ids=["e5"]))
        assert await s.applied_event_ids("g1", [f"e{i}" for i in range(1, 6)]) == {"e3", "e4", "e5"}
    assert DEFAULT_INBOX_KEEP == 10_000


async def test_suggestions_are_unique_by_id_and_delivered_once(store: BaseStore) -> None:
    r1 = await store.commit(Commit("g1", 0, {}, suggestions=[sugg("s1", n=1), sugg("s2"), sugg("s1", n=9)]))
    assert r1.duplicate_suggestion_ids == ("s1",)
    r2 = await store.commit(Commit("g1", 1, {}, suggestions=[sugg("s2", n=2), sugg("s3")]))
    assert r2.duplicate_suggestion_ids == ("s2",)
    await store.commit(Commit("g2", 0, {}, suggestions=[sugg("t1", "g2")]))
    pending = await store.pending_suggestions()
    assert [(p.suggestion_id, p.goal_id, p.version) for p in pending] == [
        ("s1", "g1", 1),
        ("s2", "g1", 1),
        ("s3", "g1", 2),
        ("t1", "g2", 1),
    ]
    assert pending[0].suggestion == sugg("s1", n=1)  # the first one stored is kept
    assert not pending[0].delivered
    assert pending[0].created_at > 1e9
    assert [p.suggestion_id for p in await store.pending_suggestions(goal_id="g2")] == ["t1"]
    assert [p.suggestion_id for p in await store.pending_suggestions(limit=2)] == ["s1", "s2"]
    assert await store.mark_delivered(["s1", "s3", "unknown", "s1"]) == 2
    assert await store.mark_delivered(["s1"]) == 0
    assert [p.suggestion_id for p in await store.pending_suggestions()] == ["s2", "t1"]
    # A delivered suggestion is still known: committing it again is a duplicate, not a new one.
    r3 = await store.commit(Commit("g1", 2, {}, suggestions=[sugg("s1")]))
    assert r3.duplicate_suggestion_ids == ("s1",)
    assert [p.suggestion_id for p in await store.pending_suggestions(goal_id="g1")] == ["s2"]
    assert await store.mark_delivered([]) == 0


async def test_event_log_append_read_and_trim(store: BaseStore) -> None:
    result = await store.append_events(
        [event("g1", "a"), event("g2", "x"), event("g1", "b"), event("g1", "a"), event("g1", "c")]
    )
    assert [(e.goal_id, e.seq, e.event_id) for e in result.appended] == [
        ("g1", 1, "a"),
        ("g2", 1, "x"),
        ("g1", 2, "b"),
        ("g1", 3, "c"),
    ]
    assert result.duplicate_event_ids == ("a",)
    again = await store.append_events([event("g1", "b"), event("g1", "d", tool="search")])
    assert [(e.seq, e.event_id) for e in again.appended] == [(4, "d")]
    assert again.duplicate_event_ids == ("b",)
    log = await store.read_events("g1")
    assert [(e.seq, e.event_id) for e in log] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert log[3].event == event("g1", "d", tool="search")
    assert log[3].appended_at > 1e9
    assert [e.seq for e in await store.read_events("g1", from_seq=3)] == [3, 4]
    assert [e.seq for e in await store.read_events("g1", from_seq=2, limit=2)] == [2, 3]
    assert await store.read_events("g1", from_seq=5) == []
    assert await store.read_events("nobody") == []
    assert await store.trim_events("g1", before_seq=3) == 2
    assert [e.seq for e in await store.read_events("g1")] == [3, 4]
    assert await store.trim_events("g1", before_seq=3) == 0
    # Sequence numbers continue after a trim; they are never reused.
    after = await store.append_events([event("g1", "e")])
    assert [e.seq for e in after.appended] == [5]
    assert [e.seq for e in await store.read_events("g2")] == [1]
    assert (await store.append_events([])).appended == ()


async def test_event_log_append_is_validated_as_a_whole(store: BaseStore) -> None:
    with pytest.raises(InvalidInputError) as info:
        await store.append_events([event("g1", "a"), {"goal_id": "g1"}])
    assert info.value.field == "events[1].event_id"
    with pytest.raises(InvalidInputError) as info:
        await store.append_events([event("g1", "a"), event("g1", "b", x=math.inf)])
    assert info.value.field == "events[1]"
    assert await store.read_events("g1") == []


async def test_list_goals_pages_by_id_in_code_point_order(store: BaseStore) -> None:
    ids = ["b", "a", "ab", "B", "é", "a%", "a_", "abc", "ac", "z"]
    await store.commit_many([Commit(g, 0, {"id": g}) for g in ids])
    listed = await store.list_goals()
    assert [g.goal_id for g in listed] == sorted(ids)
    assert all(g.version == 1 and g.updated_at > 1e9 for g in listed)
    assert [g.goal_id for g in await store.list_goals(prefix="a")] == ["a", "a%", "a_", "ab", "abc", "ac"]
    assert [g.goal_id for g in await store.list_goals(prefix="ab")] == ["ab", "abc"]
    assert [g.goal_id for g in await store.list_goals(prefix="a%")] == ["a%"]
    assert await store.list_goals(prefix="q") == []
    page1 = await store.list_goals(limit=4)
    page2 = await store.list_goals(limit=4, after=page1[-1].goal_id)
    page3 = await store.list_goals(limit=4, after=page2[-1].goal_id)
    assert [g.goal_id for g in page1 + page2 + page3] == sorted(ids)
    assert [g.goal_id for g in await store.list_goals(prefix="a", after="ab")] == ["abc", "ac"]


async def test_dead_letters(store: BaseStore) -> None:
    first = await store.add_dead_letter(
        {"type": "bogus"}, "type: unknown event type", goal_id="g1", event_id="e1"
    )
    second = await store.add_dead_letter({"raw": "%%%"}, "not JSON")
    assert first.id < second.id
    assert (first.reason, first.payload, first.goal_id, first.event_id) == (
        "type: unknown event type",
        {"type": "bogus"},
        "g1",
        "e1",
    )
    everything = await store.dead_letters()
    assert [(d.id, d.reason, d.goal_id, d.event_id) for d in everything] == [
        (first.id, first.reason, "g1", "e1"),
        (second.id, "not JSON", None, None),
    ]
    assert everything[1].payload == {"raw": "%%%"}
    assert everything[1].created_at > 1e9
    assert [d.id for d in await store.dead_letters(goal_id="g1")] == [first.id]
    assert [d.id for d in await store.dead_letters(limit=1)] == [first.id]
    with pytest.raises(InvalidInputError) as info:
        await store.add_dead_letter({}, "")
    assert info.value.field == "reason"


async def test_dead_letter_is_recorded_once_per_event(store: BaseStore) -> None:
    # A worker killed between recording a poison event and acking it gets the event again.
    first = await store.add_dead_letter({"type": "bogus"}, "type: unknown", goal_id="g1", event_id="e1")
    again = await store.add_dead_letter(
        {"type": "bogus", "n": 2}, "another reason", goal_id="g1", event_id="e1"
    )
    assert again == first  # the record written first, unchanged
    other_event = await store.add_dead_letter({"type": "bogus"}, "type: unknown", goal_id="g1", event_id="e2")
    other_goal = await store.add_dead_letter({"type": "bogus"}, "type: unknown", goal_id="g2", event_id="e1")
    # Without both ids there is no key to deduplicate on: every call is recorded.
    anonymous = [await store.add_dead_letter({"raw": "x"}, "not JSON", event_id="e1") for _ in range(2)]
    ids = [d.id for d in await store.dead_letters()]
    assert ids == [first.id, other_event.id, other_goal.id, *(d.id for d in anonymous)]
    assert len(set(ids)) == 5
    assert [d.event_id for d in await store.dead_letters(goal_id="g1")] == ["e1", "e2"]


async def test_migrations_from_an_empty_database(store_url: str) -> None:
    s = open_store(store_url)
    with pytest.raises(StoreError, match="not open"):
        await s.load("g1")
    await s.open()
    try:
        assert await s.schema_version() == SCHEMA_VERSION == 2
        assert await s.migrate() == SCHEMA_VERSION  # idempotent
        await s.open()  # idempotent too
        await s.commit(Commit("g1", 0, {"n": 1}))
    finally:
        await s.close()
        await s.close()
    with pytest.raises(StoreError, match="not open"):
        await s.load("g1")


# memory:// keeps nothing outside the store object (documented), so it has nothing to reopen.
@pytest.mark.parametrize("backend", DURABLE_STORE_URLS, indirect=True)
async def test_reopening_keeps_committed_state(store_url: str, backend: str) -> None:
    async with open_store(store_url) as s:
        await s.commit(Commit("g1", 0, {"n": 1}, event_ids=["e1"], suggestions=[sugg("s1")]))
        await s.append_events([event("g1", "e1")])
    async with open_store(store_url) as s:
        record = await s.load("g1")
        assert record is not None
        assert (record.version, record.snapshot) == (1, {"n": 1})
        assert await s.applied_event_ids("g1", ["e1"]) == {"e1"}
        assert [p.suggestion_id for p in await s.pending_suggestions()] == ["s1"]
        assert [e.event_id for e in await s.read_events("g1")] == ["e1"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.load(""), "goal_id"),
        (lambda s: s.read_events("g", from_seq=-1), "from_seq"),
        (lambda s: s.read_events("g", limit=0), "limit"),
        (lambda s: s.pending_suggestions(limit=True), "limit"),
        (lambda s: s.list_goals(prefix=None), "prefix"),
        (lambda s: s.list_goals(after=3), "after"),
        (lambda s: s.applied_event_ids("g", "abc"), "event_ids"),
        (lambda s: s.mark_delivered([""]), "suggestion_ids[0]"),
        (lambda s: s.trim_events("g", before_seq=1.5), "before_seq"),
        (lambda s: s.dead_letters(goal_id=""), "goal_id"),
        (lambda s: s.add_dead_letter([], "why"), "payload"),
        (lambda s: s.add_dead_letter({}, "why", goal_id=3), "goal_id"),
    ],
)
async def test_bad_arguments_name_the_field(store: BaseStore, call, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await call(store)
    assert info.value.field == field
