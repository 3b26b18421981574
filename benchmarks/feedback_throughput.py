"""Events per second through GoalSession.apply, and memory per idle goal in a GoalBook.

Usage::

    python benchmarks/feedback_throughput.py            # histories 100 / 20,000; 10,000 and 100,000 goals
    python benchmarks/feedback_throughput.py --quick    # smaller, for a smoke run
    python benchmarks/feedback_throughput.py --profile  # also print the top cProfile entries

**Throughput.** One session is fed a seeded, realistic mix (about 50% steps, 25% messages, 15% metric
readings, and sub-goal, feedback, goal and context-compression events), first ``H`` events of
warm-up, then ``M`` timed events. Two baselines run on the same stream in the same run: the
GoalTracker alone on the steps and messages (what the session's biggest part costs by itself) and a
plain per-goal counter (the floor of any Python event loop). Per-event cost at the long history is
compared with the short one: it must stay flat (every window is bounded; nothing is rescanned).

**Memory.** A GoalBook (``max_active`` 1,000) gets ``N`` goals, each fed a handful of events (a goal
with a target, a plan and a budget, then steps, messages and a metric reading), after which every
goal is idle (evicted to compressed bytes). For the smaller ``N`` the whole build runs under
``tracemalloc`` (bytes still allocated at the end / N). ``tracemalloc`` makes the build ~4x slower,
so for larger ``N`` the build runs untraced and the retained structure is counted object by object
(``sys.getsizeof`` of the index, ids, entries and blobs); both numbers are printed for the smaller
``N``, where they can be compared. The target is at most 4 KiB per idle goal.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import random
import statistics
import sys
import time
import timeit
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

from goalkeeper.core.goals import GoalBook
from goalkeeper.core.model import (
    Budget,
    ContextCompressedEvent,
    Event,
    FeedbackEvent,
    FeedbackOutcome,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    SubGoalStatus,
)
from goalkeeper.core.session import GoalSession
from goalkeeper.core.steps import Message, Role
from goalkeeper.core.tracker import GoalTracker

GOAL = "Book the cheapest direct flight from New York to Seattle on May 20 and confirm the reservation"
PLAN = ("search flights", "choose the cheapest direct flight", "book it", "confirm")
TOOLS = ("search_flights", "get_reservation", "update_booking", "run_tests", "read_file", "bash")
OUTCOMES = tuple(FeedbackOutcome)
STATUSES = (SubGoalStatus.IN_PROGRESS, SubGoalStatus.DONE, SubGoalStatus.PENDING)


def goal_event(goal_id: str) -> GoalEvent:
    return GoalEvent(goal_id=goal_id, event_id=f"{goal_id}:goal", description=GOAL,
                     goal_state={"progress": 100}, plan=PLAN, budget=Budget(steps=200), ts=0.0)  # fmt: skip


def stream(goal_id: str, seed: int) -> Iterator[Event]:
    """An endless, seeded, realistic mix of events for one goal (after its goal event)."""
    rng = random.Random(seed)
    i = 0
    progress = 0
    while True:
        i += 1
        ts, eid, r = float(i), f"{goal_id}:{i}", rng.random()
        if r < 0.50:
            if rng.random() < 0.05:  # a short exact repeat
                tool, args, out = (
                    "search_flights",
                    {"origin": "JFK", "destination": "SEA"},
                    "no flights found",
                )
            else:
                tool = rng.choice(TOOLS)
                args = {"id": f"R{rng.randrange(10_000):05d}", "request_id": f"{rng.getrandbits(64):016x}"}
                out = f"record {rng.randrange(1_000_000)} updated at 2024-05-20T11:{i % 60:02d}:00Z"
            error = "timeout after 30s" if rng.random() < 0.03 else None
            yield StepEvent(goal_id=goal_id, event_id=eid, tool=tool, args=args, output=out, error=error,
                            description=f"{tool} for the Seattle booking", tokens=rng.randrange(50, 400),
                            ts=ts)  # fmt: skip
        elif r < 0.75:
            role: Role = "user" if rng.random() < 0.3 else "assistant"
            text = f"Checking option {rng.randrange(50)} for the Seattle flight"
            yield MessageEvent(goal_id=goal_id, event_id=eid, role=role, content=text, ts=ts)
        elif r < 0.90:
            progress = min(100, max(0, progress + rng.randrange(-2, 6)))
            values = {"progress": progress, "cost": 300 - i % 50}
            yield MetricsEvent(goal_id=goal_id, event_id=eid, values=values, ts=ts)
        elif r < 0.95:
            yield SubgoalEvent(goal_id=goal_id, event_id=eid, id=f"sg{rng.randrange(4)}",
                               description="a step of the booking", status=rng.choice(STATUSES),
                               ts=ts)  # fmt: skip
        elif r < 0.98:
            yield FeedbackEvent(goal_id=goal_id, event_id=eid, suggestion_id=f"s{rng.randrange(100)}",
                                outcome=rng.choice(OUTCOMES), ts=ts)  # fmt: skip
        elif r < 0.99:
            yield ContextCompressedEvent(goal_id=goal_id, event_id=eid, ts=ts)
        else:
            plan = (*PLAN[:3], f"confirm with code {rng.randrange(100)}")
            yield GoalEvent(goal_id=goal_id, event_id=eid, plan=plan, ts=ts)


def take(it: Iterator[Event], n: int) -> list[Event]:
    return [next(it) for _ in range(n)]


# -- throughput ---------------------------------------------------------------------------------------


def timed(apply: Any, events: list[Event], chunks: int = 5) -> float:
    """Median seconds per event over ``chunks`` consecutive slices (robust to a busy neighbour)."""
    size = max(1, len(events) // chunks)
    gc.collect()
    per_event = []
    for start in range(0, size * chunks, size):
        t0 = time.perf_counter()
        for event in events[start : start + size]:
            apply(event)
        per_event.append((time.perf_counter() - t0) / size)
    return statistics.median(per_event)


def time_session(history: int, measured: int, seed: int) -> float:
    """Seconds per event over ``measured`` events after ``history`` warm-up events."""
    session = GoalSession("bench")
    session.apply(goal_event("bench"))
    it = stream("bench", seed)
    for event in take(it, history):
        session.apply(event)
    return timed(session.apply, take(it, measured))


def time_breakdown(history: int, measured: int, seed: int) -> dict[str, float]:
    """Mean seconds per event by event type (timed one by one, after ``history`` warm-up events)."""
    session = GoalSession("bench")
    session.apply(goal_event("bench"))
    it = stream("bench", seed)
    for event in take(it, history):
        session.apply(event)
    times: dict[str, list[float]] = {}
    clock = time.perf_counter
    for event in take(it, measured):
        t = clock()
        session.apply(event)
        times.setdefault(event.type.value, []).append(clock() - t)
    return {k: sum(v) / len(v) for k, v in sorted(times.items())}


def time_tracker_alone(history: int, measured: int, seed: int) -> float:
    """Baseline: GoalTracker.verify/observe on the steps and messages of the same stream, per event
    of the whole stream (the other events cost the tracker nothing)."""
    tracker = GoalTracker(GOAL, plan=list(PLAN))
    it = stream("bench", seed)

    def feed(event: Event) -> None:
        if isinstance(event, StepEvent):
            tracker.verify(event.to_step())
        elif isinstance(event, MessageEvent):
            tracker.observe(Message(event.role, event.content, event.ts))

    for event in take(it, history):
        feed(event)
    return timed(feed, take(it, measured))


def time_counter(measured: int, seed: int) -> float:
    """Baseline: the floor of any per-event Python loop (a dict counter per goal and type)."""
    counts: dict[tuple[str, str], int] = {}

    def count(event: Event) -> None:
        key = (event.goal_id, event.type.value)
        counts[key] = counts.get(key, 0) + 1

    return timed(count, take(stream("bench", seed), measured))


def throughput(histories: tuple[int, int], measured: int) -> None:
    short, long = histories
    rows = []
    s_short = time_session(short, measured, seed=1)
    s_long = time_session(long, measured, seed=1)
    t_short = time_tracker_alone(short, measured, seed=1)
    t_long = time_tracker_alone(long, measured, seed=1)
    floor = time_counter(measured, seed=1)
    rows.append((f"GoalSession.apply, history {short:,}", s_short))
    rows.append((f"GoalSession.apply, history {long:,}", s_long))
    rows.append((f"baseline: GoalTracker alone, history {short:,}", t_short))
    rows.append((f"baseline: GoalTracker alone, history {long:,}", t_long))
    rows.append(("baseline: a dict counter per event", floor))
    print(f"\nThroughput over {measured:,} events of the mix (one core)\n")
    print(f"{'path':<46} {'events/s':>12} {'us/event':>10}")
    print("-" * 70)
    for name, sec in rows:
        print(f"{name:<46} {1 / sec:>12,.0f} {sec * 1e6:>10.1f}")
    print("-" * 70)
    print(f"session cost beyond the tracker: {(s_short - t_short) * 1e6:.1f} us/event at history {short:,}, "
          f"{(s_long - t_long) * 1e6:.1f} us/event at {long:,}")  # fmt: skip
    print(f"long / short history cost: {s_long / s_short:.2f}x (target: flat, <= 1.2x)")
    print("target: >= 30,000 events/s through GoalSession.apply")
    breakdown = time_breakdown(long, measured, seed=2)
    print(f"\nMean cost by event type at history {long:,}\n")
    print(f"{'event type':<22} {'us/event':>10}")
    for kind, sec in breakdown.items():
        print(f"{kind:<22} {sec * 1e6:>10.1f}")


def profile(measured: int) -> None:
    session = GoalSession("bench")
    session.apply(goal_event("bench"))
    it = stream("bench", 3)
    for event in take(it, 2_000):
        session.apply(event)
    events = take(it, measured)
    prof = cProfile.Profile()
    prof.enable()
    for event in events:
        session.apply(event)
    prof.disable()
    print(f"\ncProfile of {measured:,} events (top 20 by cumulative time)\n")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(20)


# -- memory ---------------------------------------------------------------------------------------------


def build_book(n_goals: int, events_per_goal: int) -> GoalBook:
    book = GoalBook(max_active=1_000)
    for g in range(n_goals):
        goal_id = f"goal-{g:06d}"
        book.apply(goal_event(goal_id))
        for event in take(stream(goal_id, g), events_per_goal - 1):
            book.apply(event)
    for info in book.list():
        book.evict(info.goal_id)
    return book


def counted_bytes(book: GoalBook) -> int:
    """Exact CPython object sizes of what the book keeps for idle goals (index, ids, entries, blobs)."""
    entries = book._entries  # a benchmark may look inside
    total = sys.getsizeof(entries)
    for goal_id, entry in entries.items():
        total += sys.getsizeof(goal_id) + sys.getsizeof(entry)
        if entry.blob is not None:
            total += sys.getsizeof(entry.blob)
    return total


def memory(sizes: tuple[int, ...], traced_up_to: int, events_per_goal: int) -> None:
    print(f"\nMemory per idle goal ({events_per_goal} events each, then evicted)\n")
    print(
        f"{'goals':>9} {'tracemalloc B/goal':>19} {'counted B/goal':>15} {'blob B/goal':>12} {'build s':>8}"
    )
    print("-" * 68)
    for n in sizes:
        gc.collect()
        traced = n <= traced_up_to
        if traced:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        book = build_book(n, events_per_goal)
        elapsed = time.perf_counter() - t0
        gc.collect()
        per_goal_traced = "-"
        if traced:
            per_goal_traced = f"{(tracemalloc.get_traced_memory()[0] - base) / n:,.0f}"
            tracemalloc.stop()
        stats = book.stats()
        print(f"{n:>9,} {per_goal_traced:>19} {counted_bytes(book) / n:>15,.0f} "
              f"{stats['evicted_bytes'] / n:>12,.0f} {elapsed:>8.1f}")  # fmt: skip
        del book
    print("-" * 68)
    print("target: <= 4,096 bytes per idle goal")


def snapshot_sizes(n_events: int) -> None:
    session = GoalSession("goal-000001")
    session.apply(goal_event("goal-000001"))
    for event in take(stream("goal-000001", 7), n_events - 1):
        session.apply(event)
    snap = session.snapshot()

    def size(value: Any) -> int:
        return len(json.dumps(value, separators=(",", ":")).encode())

    total = size(snap)
    packed = len(zlib.compress(json.dumps(snap, separators=(",", ":")).encode()))
    print(f"\nSnapshot of one goal after {n_events} events: {total:,} bytes of JSON, ", end="")
    print(f"{packed:,} with plain zlib\n")
    parts: list[tuple[str, int]] = []
    for key, value in snap.items():
        parts.append((key, size(value)))
        if key == "tracker":
            parts.extend((f"  tracker.{k}", size(v)) for k, v in value.items() if size(v) > 200)
    print(f"{'part':<28} {'bytes':>8}")
    for key, n in sorted(parts, key=lambda kv: -kv[1])[:14]:
        print(f"{key:<28} {n:>8,}")

    # What a worker pays per goal per commit (snapshot + encode) and per cache miss (decode + restore).
    text = json.dumps(snap, separators=(",", ":"))
    costs = [
        ("GoalSession.snapshot()", lambda: session.snapshot()),
        ("json.dumps(snapshot)", lambda: json.dumps(snap, separators=(",", ":"))),
        ("json.loads(text)", lambda: json.loads(text)),
        ("GoalSession.restore(snapshot)", lambda: GoalSession.restore(snap)),
    ]
    print(f"\n{'operation (same goal)':<32} {'us':>8}")
    for label, fn in costs:
        best = min(timeit.repeat(fn, number=200, repeat=5)) / 200
        print(f"{label:<32} {best * 1e6:>8,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    args = parser.parse_args()
    if args.quick:
        throughput((100, 2_000), 2_000)
        memory((1_000, 10_000), traced_up_to=1_000, events_per_goal=8)
    else:
        throughput((100, 20_000), 10_000)
        memory((10_000, 100_000), traced_up_to=10_000, events_per_goal=8)
    snapshot_sizes(30)
    if args.profile:
        profile(5_000)


if __name__ == "__main__":
    main()
