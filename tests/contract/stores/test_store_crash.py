"""Crash safety: a writer killed with SIGKILL mid-commit leaves the last committed state intact."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_backends import DURABLE_STORE_URLS

from goalkeeper.stores import open_store

WRITER = Path(__file__).with_name("crash_writer.py")
GOAL = "crash"


def _run_writer_until_killed(url: str, at_least: int, delay: float) -> int:
    """Run the writer until it reports ``at_least``, wait ``delay`` s, SIGKILL it; return its last report."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), url, GOAL], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    last = 0
    deadline = time.monotonic() + 60
    try:
        while last < at_least:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"writer exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
            last = int(line)
            assert time.monotonic() < deadline, "writer too slow"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
    rest = proc.stdout.read().split()
    if proc.stderr:
        proc.stderr.close()
    proc.stdout.close()
    return max([last, *map(int, rest)])


async def _verify(url: str, reported: int) -> int:
    async with open_store(url) as store:
        record = await store.load(GOAL)
        assert record is not None
        version = record.version
        # Nothing acknowledged is lost, and the snapshot is the one of exactly that version.
        assert version >= reported
        assert record.snapshot == {"n": version, "blob": [version] * 2000}
        ids = [f"e{i}" for i in range(1, version + 2)]
        assert await store.applied_event_ids(GOAL, ids) == set(ids[:-1])
        pending = await store.pending_suggestions(goal_id=GOAL, limit=100_000)
        assert [p.suggestion_id for p in pending] == [f"s{i}" for i in range(1, version + 1)]
        assert [p.version for p in pending] == list(range(1, version + 1))
        # One metric point per commit, written atomically with it: exactly ``version`` of them.
        history = await store.metrics_history(GOAL, limit=100_000)
        assert [(m.seq, m.point["event_id"]) for m in history] == [
            (i, f"e{i}") for i in range(1, version + 1)
        ]
        log = await store.read_events(GOAL, limit=100_000)
        # The log append precedes the commit, so it holds version or version + 1 events, gap-free.
        assert len(log) in (version, version + 1)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert all(
            e.event == {"goal_id": GOAL, "event_id": f"e{e.seq}", "type": "step", "n": e.seq} for e in log
        )
        return version


# memory:// lives and dies with its process; its atomicity is covered by the contract tests.
@pytest.mark.parametrize("backend", DURABLE_STORE_URLS, indirect=True)
def test_writer_killed_mid_commit_leaves_previous_state_intact(store_url: str, backend: str) -> None:
    rng = random.Random(20240611)
    version = 0
    for _ in range(2):  # kill, verify, restart on top of the recovered state, kill again
        reported = _run_writer_until_killed(store_url, version + 5, rng.uniform(0.0, 0.05))
        version = asyncio.run(_verify(store_url, reported))
