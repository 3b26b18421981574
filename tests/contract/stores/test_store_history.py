"""Metrics history contract: points committed atomically with the snapshot, numbered, retained, paged."""

from __future__ import annotations

import math
from enum import StrEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_backends import with_options

from goalkeeper.errors import ConflictError, InvalidInputError
from goalkeeper.ports.store import Commit, MetricPoint, _explain_point, _point_is_valid, check_metric_point
from goalkeeper.stores import open_store
from goalkeeper.stores._base import DEFAULT_METRICS_RETENTION, BaseStore


class _Action(StrEnum):
    CONTINUE = "continue"


def point(event_id: str, progress: float = 0.25, **extra: object) -> dict[str, object]:
    """A metric point as the worker builds it: one per applied event."""
    return {
        "event_id": event_id,
        "event_type": "step",
        "ts": 1_700_000_000.5,
        "progress": progress,
        "drift_score": 0.1,
        "loop_risk": 0.0,
        "action": "continue",
        **extra,
    }


async def test_points_are_numbered_per_goal_and_read_back_in_order(store: BaseStore) -> None:
    first = await store.commit(
        Commit("g1", 0, {"n": 1}, event_ids=["e1", "e2"], metrics=[point("e1"), point("e2", flags=["loop"])])
    )
    assert first.metric_seqs == (1, 2)
    second = await store.commit(Commit("g1", 1, {"n": 2}, metrics=[point("e3", 0.5, tool="search")]))
    assert second.metric_seqs == (3,)
    other = await store.commit(Commit("g2", 0, {}, metrics=[point("x1")]))
    assert other.metric_seqs == (1,)  # numbering is per goal
    assert (await store.commit(Commit("g1", 2, {"n": 3}))).metric_seqs == ()  # no points, no numbers

    history = await store.metrics_history("g1")
    assert all(isinstance(m, MetricPoint) for m in history)
    assert [(m.goal_id, m.seq) for m in history] == [("g1", 1), ("g1", 2), ("g1", 3)]
    assert history[1].point == point("e2", flags=["loop"])
    assert history[2].point == point("e3", 0.5, tool="search")  # extra JSON-able keys are kept
    assert all(m.created_at > 1e9 for m in history)
    assert history[0].created_at == history[1].created_at  # one commit, one time
    # What is returned is a copy: changing it changes nothing stored.
    history[0].point["progress"] = 0.99
    assert (await store.metrics_history("g1", limit=1))[0].point["progress"] == 0.25

    assert [m.seq for m in await store.metrics_history("g1", after_seq=1)] == [2, 3]
    assert [m.seq for m in await store.metrics_history("g1", limit=2)] == [1, 2]
    assert [m.seq for m in await store.metrics_history("g1", after_seq=1, limit=1)] == [2]
    assert await store.metrics_history("g1", after_seq=3) == []
    assert await store.metrics_history("g1", after_seq=10**12) == []
    assert await store.metrics_history("nobody") == []
    assert [m.point["event_id"] for m in await store.metrics_history("g2")] == ["x1"]


async def test_commit_many_numbers_points_of_the_same_goal_in_input_order(store: BaseStore) -> None:
    results = await store.commit_many(
        [
            Commit("a", 0, {}, metrics=[point("a1"), point("a2")]),
            Commit("b", 0, {}, metrics=[point("b1")]),
            Commit("a", 1, {}, metrics=[point("a3")]),
        ]
    )
    assert [r.metric_seqs for r in results] == [(1, 2), (1,), (3,)]
    assert [m.point["event_id"] for m in await store.metrics_history("a")] == ["a1", "a2", "a3"]


async def test_a_conflicting_commit_writes_no_points(store: BaseStore) -> None:
    await store.commit(Commit("g1", 0, {}, metrics=[point("e1")]))
    with pytest.raises(ConflictError):
        await store.commit(Commit("g1", 0, {}, metrics=[point("stale")]))
    results = await store.commit_many(
        [Commit("g1", 5, {}, metrics=[point("ahead")]), Commit("g2", 0, {}, metrics=[point("ok")])]
    )
    assert [(r.committed, r.metric_seqs) for r in results] == [(False, ()), (True, (1,))]
    assert [m.point["event_id"] for m in await store.metrics_history("g1")] == ["e1"]
    # The next real commit continues the numbering without a gap.
    assert (await store.commit(Commit("g1", 1, {}, metrics=[point("e2")]))).metric_seqs == (2,)


async def test_a_batch_with_a_bad_point_writes_nothing(store: BaseStore) -> None:
    good = Commit("g1", 0, {}, metrics=[point("e1")])
    bad = Commit("g2", 0, {}, metrics=[point("e1"), point("e2", extra=math.inf)])
    with pytest.raises(InvalidInputError) as info:
        await store.commit_many([good, bad])
    assert info.value.field == "commits[1].metrics[1]"
    with pytest.raises(InvalidInputError, match="JSON-able"):
        await store.commit_many([Commit("g1", 0, {}, metrics=[point("e1", blob=object())])])
    assert await store.load("g1") is None
    assert await store.metrics_history("g1") == []


async def test_retention_keeps_the_newest_points_per_goal(store_url: str) -> None:
    async with open_store(with_options(store_url, metrics_retention=3)) as s:
        assert s.metrics_retention == 3
        await s.commit(Commit("g1", 0, {}, metrics=[point("e1"), point("e2")]))
        await s.commit(Commit("g1", 1, {}, metrics=[point("e3"), point("e4")]))
        assert [m.seq for m in await s.metrics_history("g1")] == [2, 3, 4]
        # One commit with more points than the retention keeps only its newest ones.
        result = await s.commit(Commit("g1", 2, {}, metrics=[point(f"e{i}") for i in range(5, 10)]))
        assert result.metric_seqs == (5, 6, 7, 8, 9)
        history = await s.metrics_history("g1")
        assert [(m.seq, m.point["event_id"]) for m in history] == [(7, "e7"), (8, "e8"), (9, "e9")]
        assert [m.seq for m in await s.metrics_history("g1", after_seq=1, limit=2)] == [7, 8]
        # Each goal has its own budget.
        await s.commit(Commit("g2", 0, {}, metrics=[point("x1")]))
        assert [m.seq for m in await s.metrics_history("g2")] == [1]
        assert [m.seq for m in await s.metrics_history("g1")] == [7, 8, 9]
    assert DEFAULT_METRICS_RETENTION == 10_000


async def test_default_retention_is_used_when_not_configured(store: BaseStore) -> None:
    assert store.metrics_retention == DEFAULT_METRICS_RETENTION
    await store.commit(Commit("g1", 0, {}, metrics=[point(f"e{i}") for i in range(250)]))
    history = await store.metrics_history("g1", limit=1000)
    assert [m.seq for m in history] == list(range(1, 251))


@pytest.mark.parametrize(
    ("metrics", "field"),
    [
        ("points", "metrics"),
        ({"event_id": "e1"}, "metrics"),
        (None, "metrics"),
        ([point("e1"), 3], "metrics[1]"),
        ([{1: "x", **point("e1")}], "metrics[0]"),
        ([{k: v for k, v in point("e1").items() if k != "event_id"}], "metrics[0].event_id"),
        ([point("")], "metrics[0].event_id"),
        ([point("e1", event_type=None)], "metrics[0].event_type"),
        ([point("e1", action="")], "metrics[0].action"),
        ([point("e1", action=3)], "metrics[0].action"),
        ([point("e1", ts="now")], "metrics[0].ts"),
        ([point("e1", ts=math.nan)], "metrics[0].ts"),
        ([point("e1", ts=True)], "metrics[0].ts"),
        ([{k: v for k, v in point("e1").items() if k != "ts"}], "metrics[0].ts"),
        ([point("e1"), point("e2", progress=1.5)], "metrics[1].progress"),
        ([point("e1", progress=True)], "metrics[0].progress"),
        ([point("e1", progress="0.5")], "metrics[0].progress"),
        ([point("e1", drift_score=-0.01)], "metrics[0].drift_score"),
        ([point("e1", loop_risk=None)], "metrics[0].loop_risk"),
        ([point("e1", loop_risk=math.inf)], "metrics[0].loop_risk"),
        ([point("e1", flags="loop")], "metrics[0].flags"),
        ([point("e1", flags=["loop", 2])], "metrics[0].flags[1]"),
    ],
)
def test_commit_validates_metric_points(metrics: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Commit("g1", 0, {}, metrics=metrics)  # type: ignore[arg-type]
    assert info.value.field == field


def test_valid_points_at_the_bounds_are_accepted() -> None:
    commit = Commit(
        "g1",
        0,
        {},
        metrics=[
            point("e1", progress=0, drift_score=1, loop_risk=1.0, ts=0, flags=()),
            point("e2", flags=["loop", "drift"], note={"any": ["json", 1, None]}),
            point("e3", ts=None, action=_Action.CONTINUE),  # an event without a time; an enum action
        ],
    )
    assert isinstance(commit.metrics, tuple)
    assert len(commit.metrics) == 3


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.metrics_history(""), "goal_id"),
        (lambda s: s.metrics_history(None), "goal_id"),
        (lambda s: s.metrics_history("g", after_seq=-1), "after_seq"),
        (lambda s: s.metrics_history("g", after_seq=1.5), "after_seq"),
        (lambda s: s.metrics_history("g", after_seq=True), "after_seq"),
        (lambda s: s.metrics_history("g", limit=0), "limit"),
        (lambda s: s.metrics_history("g", limit="10"), "limit"),
    ],
)
async def test_history_arguments_are_checked(store: BaseStore, call, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        await call(store)
    assert info.value.field == field


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(-0.5, 1.5),
    st.sampled_from([math.nan, math.inf, 1e18]),
    st.sampled_from([_Action.CONTINUE, ""]),
    st.sampled_from(["", "step", "continue"]),
    st.lists(st.sampled_from(["loop", 1, None]), max_size=2),
    st.tuples(st.sampled_from(["loop", "drift"])),
)
_keys = ["event_id", "event_type", "ts", "progress", "drift_score", "loop_risk", "action", "flags"]


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(_keys), _values, max_size=2),
    drop=st.sets(st.sampled_from(_keys), max_size=1),
    odd_key=st.sampled_from([None, None, 1, "extra"]),
)
def test_fast_and_thorough_point_checks_agree(
    changes: dict[str, object], drop: set[str], odd_key: object
) -> None:
    """The hot-path check accepts exactly what the field-by-field check accepts.

    Candidates are valid points with up to two values replaced and maybe a key dropped or added,
    so both accepted and refused points are common.
    """
    candidate: dict[object, object] = {k: v for k, v in (point("e1") | changes).items() if k not in drop}
    if odd_key is not None:
        candidate[odd_key] = 0
    try:
        _explain_point(candidate, "metrics[0]")
        thorough = True
    except InvalidInputError:
        thorough = False
    try:
        check_metric_point(candidate, "metrics[0]")
        fast = True
    except InvalidInputError:
        fast = False
    assert fast == thorough
    if not thorough:
        assert not _point_is_valid(candidate)


async def test_points_round_trip_as_json(store: BaseStore) -> None:
    """An enum value is stored as its string; a missing time stays None."""
    await store.commit(Commit("g1", 0, {}, metrics=[point("e1", ts=None, action=_Action.CONTINUE)]))
    (stored,) = await store.metrics_history("g1")
    assert stored.point == point("e1", ts=None, action="continue")
    assert type(stored.point["action"]) is str
