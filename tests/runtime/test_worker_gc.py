"""The processes goalkeeper owns freeze their startup heap; library code leaves the collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from goalkeeper._gc import freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_moves_everything_alive_out_of_the_collectors_reach(unfrozen: None) -> None:
    kept = [[i] for i in range(1_000)]  # live containers (lists are always tracked)
    assert gc.get_freeze_count() == 0
    freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    # A full collection now traverses only what was allocated since: none of the frozen objects.
    assert all(not any(k is o for o in gc.get_objects()) for k in kept[:3])
    later = [[i] for i in range(10)]
    assert any(later[0] is o for o in gc.get_objects())
    # Reference counting still frees frozen objects that are no longer used.
    del kept
    assert gc.get_freeze_count() < frozen


def test_constructing_and_running_a_worker_does_not_touch_the_collector(unfrozen: None, tmp_path) -> None:
    import asyncio

    from goalkeeper.worker import GoalFeedbackWorker

    async def run() -> None:
        db = tmp_path / "w.db"
        async with GoalFeedbackWorker(f"sqlite:///{db}", f"memory://{db}") as worker:
            await worker.run_until_idle(10)

    asyncio.run(run())
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
