"""Steps per second through GoalTracker with every detector on, at short and long histories.

Usage::

    python benchmarks/core_throughput.py            # default sizes (history 100 and 100,000)
    python benchmarks/core_throughput.py --quick    # smaller, for a smoke run
    python benchmarks/core_throughput.py --output-chars 0   # skip the long-output variant

For each history length H the tracker is first fed H warm-up steps, then timed over M further
steps. The stream is a seeded, realistic mix: varied tools and arguments, outputs with volatile
details, occasional failures, repeats and A/B alternations, so every detector does real work.
The same run also times a plain "3 identical calls in a row" rule over the same stream as a
baseline, and prints how per-step cost at the long history compares with the short one (the target
is within 1.2x: no per-step work may grow with history). An extra row (not part of the targets)
times the same stream with a file of ``--output-chars`` characters read every fourth step.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Iterator

from goalkeeper import GoalTracker, Step

TOOLS = ["search_flights", "get_reservation", "update_booking", "run_tests", "read_file", "bash"]
GOAL = "Book the cheapest direct flight from New York to Seattle on May 20 and confirm the reservation"


#: A source file as a tool returns it when the agent reads one (the long-output variant).
_FILE_LINES = [
    "def book_flight(origin: str, destination: str, date: str) -> Reservation:",
    '    """Book the cheapest direct flight and return the reservation."""',
    "    flights = search_flights(origin=origin, destination=destination, date=date)",
    "    direct = [f for f in flights if f.stops == 0]",
    "    if not direct:",
    '        raise NoFlightError(f"no direct flight from {origin} to {destination} on {date}")',
    "    cheapest = min(direct, key=lambda f: f.price)",
    "    return reservations.create(flight_id=cheapest.id, passenger=current_user())",
    "",
]


def long_output(rng: random.Random, chars: int) -> str:
    """About ``chars`` characters of a file dump, with a changing line number and request id."""
    lines = [f"# app/booking.py (request {rng.getrandbits(64):016x})"]
    while sum(len(line) + 1 for line in lines) < chars:
        lines.extend(_FILE_LINES)
    lines.append(f"{len(lines)} lines, read at 2024-05-20T11:{rng.randrange(60):02d}:00Z")
    return "\n".join(lines)


def stream(seed: int, output_chars: int = 0) -> Iterator[Step]:
    """An endless, seeded stream of realistic steps; with ``output_chars``, one step in four reads a
    file of about that size (the long-output variant)."""
    rng = random.Random(seed)
    i = 0
    while True:
        i += 1
        r = rng.random()
        if r < 0.05 and i > 2:  # a short exact repeat burst
            tool, args = "search_flights", {"origin": "JFK", "destination": "SEA"}
            out = "no flights found"
        elif r < 0.10:  # an A/B pair
            tool = "read_file" if i % 2 else "bash"
            args = {"path": "app.py"} if i % 2 else {"cmd": "pytest -q"}
            out = "def main(): ..." if i % 2 else "1 failed"
        else:
            tool = rng.choice(TOOLS)
            args = {"id": f"R{rng.randrange(10_000):05d}", "request_id": f"{rng.getrandbits(64):016x}"}
            out = f"record {rng.randrange(1_000_000)} updated at 2024-05-20T11:{i % 60:02d}:00Z"
        if output_chars and i % 4 == 0:
            tool, args, out = "read_file", {"path": "app/booking.py"}, long_output(rng, output_chars)
        err = "timeout after 30s" if rng.random() < 0.03 else None
        yield Step(
            tool=tool,
            args=args,
            description=f"{tool} for the Seattle booking",
            output=out,
            error=err,
            tokens=rng.randrange(50, 400),
            ts=float(i),
        )


def take(it: Iterator[Step], n: int) -> list[Step]:
    return [next(it) for _ in range(n)]


def time_tracker(history: int, measured: int, seed: int, output_chars: int = 0) -> float:
    """Return seconds per step over ``measured`` steps after ``history`` warm-up steps."""
    it = stream(seed, output_chars)
    tracker = GoalTracker(GOAL)
    tracker.set_plan(["search flights", "choose the cheapest direct flight", "book it", "confirm"])
    for step in take(it, history):
        tracker.verify(step)
    steps = take(it, measured)
    gc.collect()
    t0 = time.perf_counter()
    for step in steps:
        tracker.verify(step)
    return (time.perf_counter() - t0) / measured


def time_baseline(measured: int, seed: int) -> float:
    """The peer floor: '3 identical calls in a row' over the same stream."""
    steps = take(stream(seed), measured)
    t0 = time.perf_counter()
    last, run, hits = "", 0, 0
    for step in steps:
        key = step.tool + repr(sorted(step.args.items()))
        run = run + 1 if key == last else 1
        last = key
        hits += run >= 3
    return (time.perf_counter() - t0) / measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (median is shown)")
    parser.add_argument(
        "--output-chars", type=int, default=8_000, help="file size in the long-output variant (0: skip it)"
    )
    args = parser.parse_args(argv)
    short, long_, measured = (100, 100_000, 20_000) if not args.quick else (100, 10_000, 2_000)

    rows = []
    for label, hist in (("short", short), ("long", long_)):
        per_step = statistics.median(time_tracker(hist, measured, seed=r) for r in range(args.repeats))
        rows.append((label, hist, per_step))
    base = statistics.median(time_baseline(measured, seed=r) for r in range(args.repeats))
    extra = []
    if args.output_chars:
        # Not part of the targets: shows what outputs of realistic size (a file read every fourth
        # step) cost; the work that grows with an output's length is in docs/performance.md.
        n = max(measured // 4, 500)
        per_step = statistics.median(
            time_tracker(short, n, seed=r, output_chars=args.output_chars) for r in range(args.repeats)
        )
        extra.append((f"  + {args.output_chars // 1000} KB file read every 4th step", short, per_step))

    print(f"GoalTracker throughput, one core, Python {sys.version.split()[0]}, {measured:,} timed steps")
    print()
    print(f"| {'configuration':<40} | {'history':>9} | {'steps/s':>10} | {'us/step':>8} |")
    print(f"|{'-' * 42}|{'-' * 11}:|{'-' * 11}:|{'-' * 9}:|")
    for label, hist, per_step in rows:
        name = f"GoalTracker, all detectors ({label})"
        print(f"| {name:<40} | {hist:>9,} | {1 / per_step:>10,.0f} | {per_step * 1e6:>8.1f} |")
    for name, hist, per_step in extra:
        print(f"| {name:<40} | {hist:>9,} | {1 / per_step:>10,.0f} | {per_step * 1e6:>8.1f} |")
    name = "baseline: 3 identical calls in a row"
    print(f"| {name:<40} | {'-':>9} | {1 / base:>10,.0f} | {base * 1e6:>8.2f} |")
    ratio = rows[1][2] / rows[0][2]
    print()
    print(f"cost per step at history {long_:,} / at {short:,}: {ratio:.2f}x (target <= 1.20x)")
    print(f"steps/s at history {long_:,}: {1 / rows[1][2]:,.0f} (target >= 50,000)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
