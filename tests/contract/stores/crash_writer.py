"""Writer process for the crash-safety contract test: commits in a loop until it is killed.

Usage: ``python crash_writer.py URL GOAL_ID``. Each round appends one event to the goal's log, then
commits ``{"n": version, "blob": ...}`` with that event's id, one suggestion and one metric point
(``ts`` = version), and prints the
committed version (flushed), so the test knows a lower bound of what must survive a SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store


async def main(url: str, goal_id: str) -> None:
    async with open_store(url) as store:
        record = await store.load(goal_id)
        version = record.version if record else 0
        while True:
            n = version + 1
            await store.append_events([{"goal_id": goal_id, "event_id": f"e{n}", "type": "step", "n": n}])
            # A large snapshot makes a kill in the middle of writing it likely.
            snapshot = {"n": n, "blob": [n] * 2000}
            suggestion = {"suggestion_id": f"s{n}", "goal_id": goal_id, "n": n}
            point = {
                "event_id": f"e{n}",
                "event_type": "step",
                "ts": float(n),
                "progress": 0.5,
                "drift_score": 0.0,
                "loop_risk": 0.0,
                "action": "continue",
            }
            await store.commit(
                Commit(
                    goal_id, version, snapshot, event_ids=[f"e{n}"], suggestions=[suggestion], metrics=[point]
                )
            )
            version = n
            print(n, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
