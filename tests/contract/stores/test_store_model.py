"""Property test: random commit batches behave like a tiny reference model (memory and SQLite)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store

GOALS = ["a", "b", "c"]
commit_spec = st.tuples(
    st.sampled_from(GOALS),
    st.integers(-1, 1),  # offset from the true version: stale, correct or ahead
    st.lists(st.sampled_from([f"e{i}" for i in range(8)]), max_size=4),
    st.lists(st.sampled_from([f"s{i}" for i in range(6)]), max_size=3),
    st.integers(0, 3),  # metric points in the commit
)
batches = st.lists(st.lists(commit_spec, min_size=1, max_size=4), min_size=1, max_size=6)


def _point(tag: str) -> dict[str, object]:
    return {
        "event_id": tag,
        "event_type": "step",
        "ts": 1.0,
        "progress": 0.5,
        "drift_score": 0.0,
        "loop_risk": 0.0,
        "action": "continue",
    }


async def _check(url: str, spec: list[list[tuple[str, int, list[str], list[str], int]]], keep: int) -> None:
    versions = dict.fromkeys(GOALS, 0)
    inbox: dict[str, list[str]] = {g: [] for g in GOALS}
    outbox: list[str] = []
    history: dict[str, list[tuple[int, str]]] = {g: [] for g in GOALS}  # (seq, tag), all ever kept
    async with open_store(f"{url}?inbox_keep={keep}&metrics_retention={keep + 1}") as store:
        for n, batch in enumerate(spec):
            commits, expected = [], []
            for goal, offset, events, sids, npoints in batch:
                snapshot = {"batch": n, "goal": goal}
                suggestions = [{"suggestion_id": f"{goal}-{s}"} for s in sids]
                points = [_point(f"{n}-{goal}-{k}") for k in range(npoints)]
                # The model predicts the outcome from the version the commit expects.
                target = max(0, versions[goal] + offset)
                commits.append(
                    Commit(goal, target, snapshot, event_ids=events, suggestions=suggestions, metrics=points)
                )
                if target != versions[goal]:
                    expected.append((False, versions[goal], (), (), ()))
                    continue
                versions[goal] += 1
                first = len(history[goal]) + 1
                seqs = tuple(range(first, first + npoints))
                history[goal].extend(zip(seqs, (str(p["event_id"]) for p in points), strict=True))
                unique = list(dict.fromkeys(events))
                order_e = [e for e in unique if e in inbox[goal]] + [
                    e for i, e in enumerate(events) if e in events[:i]
                ]
                inbox[goal] = (inbox[goal] + [e for e in unique if e not in inbox[goal]])[-keep:]
                ids = [f"{goal}-{s}" for s in sids]
                firsts = list(dict.fromkeys(ids))
                dup_s = [s for s in firsts if s in outbox] + [s for i, s in enumerate(ids) if s in ids[:i]]
                outbox.extend(s for s in firsts if s not in outbox)
                expected.append((True, versions[goal], tuple(order_e), tuple(dup_s), seqs))
            results = await store.commit_many(commits)
            got = [
                (r.committed, r.version, r.duplicate_event_ids, r.duplicate_suggestion_ids, r.metric_seqs)
                for r in results
            ]
            assert got == expected
        for goal in GOALS:
            record = await store.load(goal)
            assert (record.version if record else 0) == versions[goal]
            pool = [f"e{i}" for i in range(8)]
            assert await store.applied_event_ids(goal, pool) == set(inbox[goal])
            kept = [(m.seq, m.point["event_id"]) for m in await store.metrics_history(goal)]
            assert kept == history[goal][-(keep + 1) :]
        assert [p.suggestion_id for p in await store.pending_suggestions(limit=1000)] == outbox


@settings(max_examples=60, deadline=None)
@given(spec=batches, keep=st.integers(1, 5))
def test_memory_store_matches_model(spec, keep: int) -> None:
    asyncio.run(_check("memory://", spec, keep))


@settings(max_examples=30, deadline=None)
@given(spec=batches, keep=st.integers(1, 5))
def test_sqlite_store_matches_model(spec, keep: int) -> None:
    asyncio.run(_check("sqlite:///:memory:", spec, keep))
