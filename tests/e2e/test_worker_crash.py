"""Issue 6's acceptance tests: SIGKILLed worker processes lose nothing and repeat nothing.

For each pairing (embedded SQLite; Redis Streams + PostgreSQL; NATS + PostgreSQL) 20,000 events
across 500 goals are published while worker processes are killed with SIGKILL at random moments
and restarted; at the end every event is applied exactly once in per-goal order, the final state
equals a single clean run, no ``suggestion_id`` reached the sink as two different suggestions, every
suggestion was delivered and every poison event is a dead letter (see ``e2e_harness``).
The random seed is printed on failure; rerun with ``GOALKEEPER_E2E_SEED`` to reproduce a schedule.
"""

from __future__ import annotations

import functools
import os

from e2e_harness import Reference, Scenario, Workload, make_workload, reference, takeovers, verify
from e2e_pairings import Pairing

GOALS = 500
PER_GOAL = 40  # 500 x 40 = 20,000 valid events (+ 10 poison)


@functools.cache
def _workload() -> tuple[Workload, Reference]:
    """The workload and its clean run, computed once per session (not at collection time)."""
    work = make_workload(GOALS, PER_GOAL, seed=6)
    return work, reference(work)


def _seed() -> dict[str, int]:
    raw = os.environ.get("GOALKEEPER_E2E_SEED")
    return {} if raw is None else {"seed": int(raw)}


async def test_single_worker_killed_repeatedly(pairing: Pairing) -> None:
    """One worker process, SIGKILLed four times at random moments and restarted."""
    work, ref = _workload()
    scenario = Scenario(pairing.store_url, pairing.bus_url, pairing.workdir, workers=1, kills=4, **_seed())
    await scenario.run(work)
    counts = await verify(pairing.store_url, work, ref, scenario.sink)
    assert counts["events"] == GOALS * PER_GOAL
    assert sum(p.kills for p in scenario.procs) == 4


async def test_two_workers_one_killed(pairing: Pairing) -> None:
    """Two worker processes share the partitions; one is SIGKILLed, restarted, SIGKILLed again and
    left dead: the survivor takes its partitions over (after the takeover fence; at once on NATS,
    which rewinds the partitions instead) and finishes."""
    work, ref = _workload()
    scenario = Scenario(
        pairing.store_url, pairing.bus_url, pairing.workdir, workers=2, kills=2, victims=(0,),
        restart_last=False, **_seed(),
    )  # fmt: skip
    await scenario.run(work)
    await verify(pairing.store_url, work, ref, scenario.sink)
    assert scenario.procs[0].kills == 2
    assert not scenario.procs[0].alive()
    survivor = takeovers(scenario.procs[1].log)
    assert survivor, "the surviving worker never took a dead worker's partitions over"
    rewinds = pairing.bus_url.startswith("nats")
    assert all((wait == 0.0) == rewinds for _, wait in survivor), survivor
