"""GoalFeedbackWorker end to end: sustained events/s and publish-to-suggestion-delivered latency.

Usage::

    python benchmarks/worker_e2e.py [--events 20000] [--goals 500] [--offered 1000] [--seconds 10]
        [--pairing embedded --pairing redis+postgres --pairing nats+postgres] [--workers 1 --workers 2]

For every pairing (embedded = SQLite store + durable ``memory://`` queue in the same file;
``redis+postgres``; ``nats+postgres``, the servers of ``GOALKEEPER_TEST_*_URL`` when reachable) and
every worker count, it starts that many **worker processes** (this script in ``--worker`` mode: a
real ``GoalFeedbackWorker`` whose sink records each suggestion's delivery time), waits until they
hold their partitions, then:

* **saturation rows**: publishes ``--events`` events (``--goals`` goals, bursts of 10 per goal, the
  stream of ``tests/e2e``: tool steps that repeat, metric readings, messages, sub-goals) as fast as
  the bus takes them; events/s = events / (last commit - first publish). Latency is measured too
  but includes the queueing of the backlog, so it mostly shows how long the backlog took to drain;
* **offered-load rows** (``--offered`` events/s for ``--seconds``, 1 worker): events are published
  at that steady rate and the latency is the one a user sees at that load. For the embedded
  pairing this is measured twice: with the worker in its own process (the durable queue file is
  then polled every 50 ms), and in-process as ``goalkeeper serve`` runs it (a publish wakes the
  worker at once).

Latency = time the sink received a suggestion minus the time the event that produced it was
published (the suggestion's ``version`` is the goal's event count, which names the event).
Every run uses a fresh SQLite file, PostgreSQL schema and bus prefix, and drops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PARTITIONS = 8
TOOLS = ["search", "read_file", "edit_file", "run_tests", "grep"]


# -- the worker process ---------------------------------------------------------------------------


def worker_main(argv: list[str]) -> None:
    """``--worker`` mode: run one GoalFeedbackWorker until SIGTERM, recording commits and deliveries."""
    from goalkeeper._gc import freeze_startup_heap
    from goalkeeper.worker import GoalFeedbackWorker, GoalUpdate, WorkerConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--store")
    parser.add_argument("--bus")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    progress = os.open(out.with_suffix(".progress"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sink = os.open(out.with_suffix(".sink"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def on_commit(update: GoalUpdate) -> None:
        os.write(progress, f"{time.time()} {len(update.events)}\n".encode())

    def deliver(s: dict[str, Any]) -> None:
        os.write(sink, f"{time.time()} {s['goal_id']} {s['version']}\n".encode())

    config = WorkerConfig(lease_ttl=3.0, fetch_timeout=0.2, batch_size=500)
    worker = GoalFeedbackWorker(args.store, args.bus, config=config, sinks=[deliver], listeners=[on_commit])
    freeze_startup_heap()  # as `goalkeeper worker` does
    asyncio.run(worker.run())


# -- the workload ---------------------------------------------------------------------------------


def workload(goals: int, per_goal: int, seed: int = 6) -> list[dict[str, Any]]:
    """The e2e stream: per goal a goal event then steps, metrics, messages, sub-goals; bursts of 10."""
    rng = random.Random(seed)
    streams: list[list[dict[str, Any]]] = []
    for g in range(goals):
        goal_id = f"goal-{g:05d}"
        evs: list[dict[str, Any]] = [
            {"type": "goal", "goal_id": goal_id, "event_id": f"{goal_id}-e0", "description":
             f"make the parser handle case {g}", "goal_state": {"progress": 10}, "plan": ["reproduce", "fix"]}
        ]  # fmt: skip
        for i in range(1, per_goal):
            base = {"goal_id": goal_id, "event_id": f"{goal_id}-e{i}"}
            roll = rng.random()
            if roll < 0.55:
                tool = "search" if rng.random() < 0.3 else rng.choice(TOOLS)
                args = {"q": "parser error"} if tool == "search" else {"path": f"src/m{rng.randrange(4)}.py"}
                evs.append({**base, "type": "step", "tool": tool, "args": args, "output": "ok", "tokens": 50})
            elif roll < 0.75:
                evs.append(
                    {**base, "type": "metrics", "values": {"progress": min(10, i // 4 + rng.randrange(2))}}
                )
            elif roll < 0.9:
                evs.append({**base, "type": "message", "role": "assistant", "content": f"step {i}"})
            else:
                evs.append({**base, "type": "subgoal", "description": "fix", "status": "in_progress"})
        streams.append(evs)
    ordered: list[dict[str, Any]] = []
    for i in range(0, per_goal, 10):
        for evs in streams:
            ordered.extend(evs[i : i + 10])
    return ordered


# -- one measurement ------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table."""

    pairing: str
    workers: int
    mode: str
    events: int
    rate: float
    p50: float
    p99: float
    suggestions: int


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=0.5):
            return True
    except OSError:
        return False


def _urls(pairing: str, tmp: Path, tag: str) -> tuple[str, str, str | None]:
    opts = f"partitions={PARTITIONS}&prefix={tag}&max_backlog=1000000"
    if pairing == "embedded":
        db = tmp / f"{tag}.db"
        return f"sqlite:///{db}", f"memory://{db}?{opts}", None
    postgres = os.environ.get("GOALKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    broker = (
        os.environ.get("GOALKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        if pairing.startswith("redis")
        else os.environ.get("GOALKEEPER_TEST_NATS_URL", "nats://127.0.0.1:4222")
    )
    return f"{postgres}?schema={tag}", f"{broker}?{opts}", postgres


async def _cleanup(pairing: str, bus_url: str, tag: str, postgres: str | None) -> None:
    if postgres is not None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(postgres, autocommit=True) as conn:
            await conn.execute(f"DROP SCHEMA IF EXISTS {tag} CASCADE")
    if pairing.startswith("redis"):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(bus_url.split("?")[0])
        keys = [k async for k in client.scan_iter(match=f"{tag}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif pairing.startswith("nats"):
        import nats

        nc = await nats.connect(bus_url.split("?")[0])
        js = nc.jetstream()
        for part in range(PARTITIONS):
            with contextlib.suppress(Exception):
                await js.delete_stream(f"{tag}_bus_{part}")
        await nc.close()


def _read(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


async def _start(tmp: Path, workers: int, store_url: str, bus_url: str) -> list[subprocess.Popen[bytes]]:
    """Start the worker processes and wait until they hold their partitions."""
    procs = []
    for i in range(workers):
        argv = [
            sys.executable,
            __file__,
            "--worker",
            "--store",
            store_url,
            "--bus",
            bus_url,
            "--out",
            str(tmp / f"w{i}"),
        ]
        with (tmp / f"w{i}.log").open("wb") as log:
            procs.append(subprocess.Popen(argv, stderr=log, stdout=log))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all("partitions acquired" in (tmp / f"w{i}.log").read_text() for i in range(workers)):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0 if workers == 1 else 3.0)  # let two workers settle their split
    return procs


async def _publish(
    bus_url: str, events: list[dict[str, Any]], offered: float | None
) -> tuple[float, dict[Any, float]]:
    """Publish (as fast as possible, or paced); return the start time and each event's publish time."""
    from goalkeeper.bus import open_bus

    published: dict[tuple[str, int], float] = {}
    counts: dict[str, int] = {}
    async with open_bus(bus_url) as bus:
        start = time.time()
        chunk = 500 if offered is None else max(1, int(offered / 100))
        for i in range(0, len(events), chunk):
            part = events[i : i + chunk]
            now = time.time()
            for e in part:
                counts[e["goal_id"]] = counts.get(e["goal_id"], 0) + 1
                published[(e["goal_id"], counts[e["goal_id"]])] = now
            await bus.publish_many(part)
            if offered is not None:  # pace to the offered rate
                await asyncio.sleep(max(0.0, start + (i + chunk) / offered - time.time()))
    return start, published


async def _last_commit(tmp: Path, procs: list[subprocess.Popen[bytes]], total: int) -> float:
    """Wait until the workers committed ``total`` events; return the time of the last commit."""
    while True:
        rows = [r for i in range(len(procs)) for r in _read(tmp / f"w{i}.progress")]
        if sum(int(n) for _, n in rows) >= total:
            return max(float(t) for t, _ in rows)
        if any(p.poll() is not None for p in procs):
            raise RuntimeError(f"a worker died; see {tmp}")
        await asyncio.sleep(0.2)


async def measure(pairing: str, workers: int, events: list[dict[str, Any]], offered: float | None) -> Row:
    """Run the workers, publish, wait for every event to be committed, compute the row."""
    from goalkeeper.bus import open_bus

    tmp = Path(tempfile.mkdtemp(prefix="gk-wbench-"))
    tag = f"wb_{uuid.uuid4().hex[:10]}"
    store_url, bus_url, postgres = _urls(pairing, tmp, tag)
    async with open_bus(bus_url):  # create the streams/tables before the workers race to
        pass
    procs = await _start(tmp, workers, store_url, bus_url)
    try:
        start, published = await _publish(bus_url, events, offered)
        last_commit = await _last_commit(tmp, procs, len(events))
        await asyncio.sleep(0.5)  # let the last deliveries land
        latencies = sorted(
            (float(t) - published[(goal_id, int(version))]) * 1e3
            for i in range(workers)
            for t, goal_id, version in _read(tmp / f"w{i}.sink")
            if (goal_id, int(version)) in published
        )
        p50 = statistics.median(latencies) if latencies else float("nan")
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan")
        mode = "saturation" if offered is None else f"{offered:,.0f}/s offered"
        return Row(
            pairing, workers, mode, len(events), len(events) / (last_commit - start), p50, p99, len(latencies)
        )
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        await _cleanup(pairing, bus_url, tag, postgres)


async def measure_in_process(events: list[dict[str, Any]], offered: float) -> Row:
    """The embedded deployment as ``goalkeeper serve`` runs it: worker and publisher in one process.

    Same-process publishes wake the worker at once (no cross-process polling of the queue file).
    """
    from goalkeeper._gc import freeze_startup_heap
    from goalkeeper.bus import open_bus
    from goalkeeper.stores import open_store
    from goalkeeper.worker import GoalFeedbackWorker, WorkerConfig

    tmp = Path(tempfile.mkdtemp(prefix="gk-wbench-"))
    db = tmp / "embedded.db"
    delivered: list[tuple[float, str, int]] = []

    def deliver(s: dict[str, Any]) -> None:
        delivered.append((time.time(), s["goal_id"], s["version"]))

    config = WorkerConfig(lease_ttl=3.0, fetch_timeout=0.2, batch_size=500)
    freeze_startup_heap()  # as `goalkeeper serve` does
    async with (
        open_store(f"sqlite:///{db}") as store,
        open_bus(f"memory://{db}?partitions={PARTITIONS}&max_backlog=1000000") as bus,
        GoalFeedbackWorker(store, bus, config=config, sinks=[deliver]) as worker,
    ):
        while not worker.partitions:
            await asyncio.sleep(0.05)
        published: dict[tuple[str, int], float] = {}
        counts: dict[str, int] = {}
        start = time.time()
        chunk = max(1, int(offered / 100))
        for i in range(0, len(events), chunk):
            part = events[i : i + chunk]
            now = time.time()
            for e in part:
                counts[e["goal_id"]] = counts.get(e["goal_id"], 0) + 1
                published[(e["goal_id"], counts[e["goal_id"]])] = now
            await bus.publish_many(part)
            await asyncio.sleep(max(0.0, start + (i + chunk) / offered - time.time()))
        await worker.run_until_idle(120)
        end = time.time()
    latencies = sorted((t - published[(g, v)]) * 1e3 for t, g, v in delivered if (g, v) in published)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    mode = f"{offered:,.0f}/s in-process"
    return Row(
        "embedded", 1, mode, len(events), len(events) / (end - start), statistics.median(latencies), p99, 0
    )


def core_ceiling(events: list[dict[str, Any]]) -> tuple[float, float]:
    """What one process can do without any I/O: events/s of ``GoalSession.apply`` alone, and with one
    snapshot + JSON encoding per 10-event burst (what the worker commits). The worker's bound."""
    from goalkeeper.core.session import GoalSession
    from goalkeeper.events import parse_event

    parsed = [parse_event(e, received_at=1.7e9) for e in events]
    sessions: dict[str, GoalSession] = {}
    t = time.perf_counter()
    for e in parsed:
        session = sessions.get(e.goal_id)
        if session is None:
            session = sessions[e.goal_id] = GoalSession(e.goal_id)
        session.apply(e)
    applied = time.perf_counter() - t
    bursts = max(1, len(parsed) // (10 * len(sessions)))
    t = time.perf_counter()
    for session in sessions.values():
        for _ in range(bursts):
            json.dumps(session.snapshot())
    snapped = time.perf_counter() - t
    return len(parsed) / applied, len(parsed) / (applied + snapped)


def main() -> None:
    """Print the table."""
    if sys.argv[1:2] == ["--worker"]:
        worker_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--goals", type=int, default=500)
    parser.add_argument("--offered", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pairing", action="append", choices=["embedded", "redis+postgres", "nats+postgres"])
    parser.add_argument("--workers", action="append", type=int)
    args = parser.parse_args()
    pairings = args.pairing or ["embedded", "redis+postgres", "nats+postgres"]
    available = []
    for pairing in pairings:
        needs = (
            []
            if pairing == "embedded"
            else [_urls(pairing, Path("/"), "x")[1], _urls(pairing, Path("/"), "x")[2]]
        )
        if all(_reachable(str(u)) for u in needs):
            available.append(pairing)
        else:
            print(f"skipping {pairing}: server not reachable")
    per_goal = max(10, args.events // args.goals)
    saturation = workload(args.goals, per_goal)
    offered_events = workload(max(1, int(args.offered * args.seconds) // 20), 20, seed=7)
    print(
        f"{len(saturation)} events over {args.goals} goals (saturation); {len(offered_events)} events at "
        f"{args.offered:,.0f}/s (offered load); {PARTITIONS} partitions; {os.cpu_count()} CPUs\n"
    )
    apply_rate, commit_rate = core_ceiling(saturation)
    print(
        f"core ceiling, one process, no I/O: GoalSession.apply {apply_rate:,.0f} ev/s; "
        f"with a snapshot + JSON per 10-event burst {commit_rate:,.0f} ev/s\n"
    )
    cols = f"| {'pairing':<15} | {'workers':>7} | {'load':<20} | {'events/s':>8} | "
    header = cols + f"{'p50 ms':>8} | {'p99 ms':>8} |"
    print(header)
    print("|" + "|".join("-" * (len(c) + 0) for c in header.split("|")[1:-1]) + "|")
    if "embedded" in available:
        row = asyncio.run(measure_in_process(offered_events, args.offered))
        print(
            f"| {row.pairing:<15} | {row.workers:>7} | {row.mode:<20} | {row.rate:>8,.0f} | "
            f"{row.p50:>8.1f} | {row.p99:>8.1f} |",
            flush=True,
        )
    for pairing in available:
        runs: list[tuple[int, float | None, list[dict[str, Any]]]] = [
            (w, None, saturation) for w in (args.workers or [1, 2])
        ]
        runs.append((1, args.offered, offered_events))
        for workers, offered, evs in runs:
            row = asyncio.run(measure(pairing, workers, evs, offered))
            print(
                f"| {row.pairing:<15} | {row.workers:>7} | {row.mode:<20} | {row.rate:>8,.0f} | "
                f"{row.p50:>8.1f} | {row.p99:>8.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
