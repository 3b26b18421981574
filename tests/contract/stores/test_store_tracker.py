"""GoalStateTracker: the reference's load/save over any store, now with compare-and-set."""

from __future__ import annotations

import asyncio

import pytest

from goalkeeper.errors import ConfigurationError, ConflictError
from goalkeeper.stores import GoalStateTracker, SyncGoalStateTracker, open_store
from goalkeeper.stores._base import BaseStore


async def test_load_save_and_stale_save_conflicts(store: BaseStore) -> None:
    a = GoalStateTracker(store, goal_id="g")
    b = GoalStateTracker(store, goal_id="g")
    assert await a.load() == {}
    assert a.version == 0
    assert await b.load() == {}
    assert await a.save({"goal": "improve retention"}) == 1
    with pytest.raises(ConflictError):
        await b.save({"goal": "overwrite"})  # the reference's tracker silently lost a's update here
    assert await b.load() == {"goal": "improve retention"}
    assert await b.save({"goal": "merged"}) == 2


async def test_concurrent_updates_lose_nothing(store: BaseStore) -> None:
    """16 concurrent writers each add their key (the reference test kept only one of them)."""

    async def add(i: int) -> None:
        tracker = GoalStateTracker(store, goal_id="shared")

        def change(state: dict[str, object]) -> None:
            state[f"value{i}"] = i

        await tracker.update(change, attempts=100)

    await asyncio.gather(*(add(i) for i in range(16)))
    assert await GoalStateTracker(store, goal_id="shared").load() == {f"value{i}": i for i in range(16)}


async def test_update_gives_up_after_the_given_attempts() -> None:
    store = open_store("memory://")
    async with GoalStateTracker(store, goal_id="g") as tracker:
        rival = GoalStateTracker(store, goal_id="g")
        save = tracker.save

        async def save_after_a_rival(state: dict[str, object]) -> int:
            # Another writer commits between our load and our save, every time.
            await rival.load()
            await rival.save({"rival": rival.version})
            return await save(state)

        tracker.save = save_after_a_rival  # type: ignore[method-assign]
        with pytest.raises(ConflictError, match="still conflicting after 3 attempts"):
            await tracker.update(lambda state: {"mine": True}, attempts=3)
        assert rival.version == 3


async def test_tracker_owns_only_stores_it_opened(tmp_path) -> None:
    store = open_store("memory://")
    async with GoalStateTracker(store, goal_id="g") as tracker:
        await tracker.save({"a": 1})
    # The borrowed store is still open.
    record = await store.load("g")
    assert record is not None
    async with GoalStateTracker(f"sqlite:///{tmp_path / 'owned.db'}", goal_id="g") as owned:
        await owned.save({"b": 2})
    with pytest.raises(Exception, match="not open"):
        await owned.load()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"goal_id": ""}, "goal_id must be a non-empty string"),
        ({"store": 3}, "store must be a StateStore or a URL"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GoalStateTracker(**kwargs)  # type: ignore[arg-type]


def test_sync_tracker_round_trip_across_instances(tmp_path) -> None:
    """The reference's scenario: save through one tracker, a second tracker on the same file loads it."""
    url = f"sqlite:///{tmp_path / 'goals.db'}"
    state = {"goal": "improve retention", "progress": {"score": 0.75}}
    with SyncGoalStateTracker(url, goal_id="g") as first:
        assert first.load() == {}
        assert first.save(state) == 1
        assert first.version == 1
    with SyncGoalStateTracker(url, goal_id="g") as second:
        assert second.load() == state
        assert second.update(lambda s: {**s, "done": True}) == {**state, "done": True}
        assert second.version == 2
    second.close()  # idempotent
