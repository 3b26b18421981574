"""How long one full garbage collection stops a process that holds many live goals.

Usage::

    python benchmarks/gc_pause.py                  # 500 goals after 20, 100 and 300 events each
    python benchmarks/gc_pause.py --goals 1000 --events 50

A service keeps its goals' sessions in memory (the worker's session cache). CPython's full
(generation-2) collections traverse every live container object, so the pause grows with the
number of goals and with what each goal keeps, and it lands on whatever request or batch is
running: it sets the tail latency of ``goalkeeper serve``. For each size the script feeds the
worker benchmark's event mix through ``GoalSession.apply``, then prints the container objects and
references the collector must traverse per goal and the time of one full collection (best of 3).
The baseline in the same run is the process before any goal exists (modules and classes only),
with and without the startup freeze ``goalkeeper serve`` and ``goalkeeper worker`` do
(``goalkeeper._gc.freeze_startup_heap``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from goalkeeper._gc import freeze_startup_heap
from goalkeeper.core.session import GoalSession
from goalkeeper.events import parse_event
from worker_e2e import workload  # benchmarks/ is on sys.path when this script runs


def full_collection_ms() -> float:
    gc.collect()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=500)
    parser.add_argument("--events", type=int, action="append", help="events per goal (repeatable)")
    args = parser.parse_args()
    sizes = args.events or [20, 100, 300]

    print(f"Full garbage collection, Python {sys.version.split()[0]}, {args.goals:,} live goals\n")
    print(f"| {'heap':<38} | {'objects/goal':>12} | {'refs/goal':>9} | {'full GC ms':>10} |")
    print(f"|{'-' * 40}|{'-' * 14}|{'-' * 11}|{'-' * 12}|")
    for label in ("baseline: modules only, no goal", "baseline: after the startup freeze"):
        if "freeze" in label:
            freeze_startup_heap()
        print(f"| {label:<38} | {'-':>12} | {'-':>9} | {full_collection_ms():>10.1f} |")
    for per_goal in sizes:
        events = [parse_event(e, received_at=1.7e9) for e in workload(args.goals, per_goal, seed=7)]
        gc.collect()
        before = {id(o) for o in gc.get_objects()}
        sessions: dict[str, GoalSession] = {}
        for event in events:
            session = sessions.get(event.goal_id)
            if session is None:
                session = sessions[event.goal_id] = GoalSession(event.goal_id)
            session.apply(event)
        del events
        # A service's frequent young collections untrack tuples of plain values (one nesting level per
        # collection); count what stays tracked, as the timed collections below see it.
        for _ in range(3):
            gc.collect()
        mine = [o for o in gc.get_objects() if id(o) not in before and o is not before]
        refs = sum(len(gc.get_referents(o)) for o in mine)
        n = len(mine)
        del mine, before
        ms = full_collection_ms()
        label = f"{args.goals:,} goals x {per_goal} events"
        print(f"| {label:<38} | {n / args.goals:>12,.0f} | {refs / args.goals:>9,.0f} | {ms:>10.1f} |")
        del sessions


if __name__ == "__main__":
    main()
