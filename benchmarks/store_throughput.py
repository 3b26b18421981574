"""Committed events per second through each StateStore backend, at batch sizes 1, 10 and 100.

Usage::

    python benchmarks/store_throughput.py                    # every backend whose server is up
    python benchmarks/store_throughput.py --quick            # fewer events, for a smoke run
    python benchmarks/store_throughput.py --backends sqlite,postgres

What one "event" costs here is what the worker pays per applied event: an inbox row (exactly-once),
its share of a snapshot write (compare-and-set) and of the suggestions. A batch of B events is one
``commit_many`` call (one transaction) spread over ``max(1, B // 10)`` goals, each goal's commit
carrying its events' ids, a ~2 KB snapshot and one suggestion, as a worker draining a partition
would. The number printed is events committed per second (best of 3 runs).

Each backend is measured twice in the same run: without metric points (the baseline row) and with
one metrics-history point per event (``+metrics`` row: what the worker writes since schema 2,
``Commit.metrics``), followed by the relative change, so the cost of the history is read against a
baseline measured on the same machine at the same time.

A second table gives the latency of the reads the API, dashboard and CLI make (median of 20 calls,
milliseconds), on a goal with 5,000 history points and 50 suggestions among the benchmark's goals,
one of which is closed: a 1,000-point history page, a goal's suggestions, one suggestion by id,
and the closed goals.

Targets on the project's 2-vCPU machine: SQLite >= 20,000 events/s and PostgreSQL >= 5,000
events/s at batch 100. Server URLs come from ``GOALKEEPER_TEST_POSTGRES_URL`` /
``GOALKEEPER_TEST_REDIS_URL`` (defaults: the local servers); data goes to a throwaway schema or key
prefix, which is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store
from goalkeeper.stores._base import BaseStore

BATCHES = (1, 10, 100)
POINT = {
    "event_type": "step",
    "ts": 1_700_000_000.25,
    "progress": 0.4375,
    "drift_score": 0.125,
    "loop_risk": 0.0625,
    "action": "continue",
    "flags": [],
}
"""A metric point as the worker writes one per applied event (``event_id`` is added per event)."""
SNAPSHOT = {
    "kind": "GoalSession",
    "schema": 1,
    "metrics": {f"m{i}": i / 7 for i in range(40)},
    "text": "x" * 1200,
}
PG_URL = os.environ.get("GOALKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GOALKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _up(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5
        ):
            return True
    except OSError:
        return False


async def _run(store: BaseStore, batch: int, events: int, run: int, points: bool) -> float:
    goals = max(1, batch // 10)
    per_goal = batch // goals
    tag = "m" if points else "p"
    versions = dict.fromkeys((f"{tag}{run}-b{batch}-g{i}" for i in range(goals)), 0)
    done = 0
    started = time.perf_counter()
    while done < events:
        commits = []
        for goal_id, version in versions.items():
            ids = [f"{goal_id}-e{done + k}" for k in range(per_goal)]
            suggestion = {"suggestion_id": f"{goal_id}-s{version + 1}", "goal_id": goal_id, "kind": "nudge"}
            metrics = [{"event_id": event_id, **POINT} for event_id in ids] if points else []
            commits.append(
                Commit(goal_id, version, SNAPSHOT, event_ids=ids, suggestions=[suggestion], metrics=metrics)
            )
        for result in await store.commit_many(commits):
            versions[result.goal_id] = result.version
        done += goals * per_goal
    return done / (time.perf_counter() - started)


READS = ("history 1000", "suggestions", "get_suggestion", "closed goals")


async def _median_ms(call: Callable[[], Awaitable[Any]], times: int = 20) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def reads(store: BaseStore) -> list[float]:
    """Median ms of the API's reads (see the module docstring); run after the commit runs."""
    goal = "reads-goal"
    for version in range(50):  # 50 commits of 100 points and one suggestion each
        ids = [f"{goal}-e{version * 100 + k}" for k in range(100)]
        suggestion = {"suggestion_id": f"{goal}-s{version}", "goal_id": goal, "kind": "nudge"}
        metrics = [{"event_id": event_id, **POINT} for event_id in ids]
        await store.commit(
            Commit(goal, version, SNAPSHOT, event_ids=ids, suggestions=[suggestion], metrics=metrics)
        )
    await store.set_goal_status(goal, "closed")
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: store.metrics_history(goal, after_seq=4000, limit=1000),
        lambda: store.suggestions(goal, limit=100),
        lambda: store.get_suggestion(f"{goal}-s25"),
        lambda: store.list_goals(status="closed", limit=100),
    ]
    assert len(await store.metrics_history(goal, after_seq=4000, limit=1000)) == 1000
    assert [g.goal_id for g in await store.list_goals(status="closed")] == [goal]
    return [await _median_ms(call) for call in calls]


async def bench(name: str, url: str, events: int) -> tuple[list[float], list[float], list[float]]:
    """Best-of-3 events/s at each batch size without and with one metric point per event, and reads."""
    plain: list[float] = []
    with_points: list[float] = []
    async with open_store(url) as store:
        for batch in BATCHES:
            n = max(batch, events // (10 if batch == 1 else 1))  # batch 1 is slow: fewer events
            # Interleave the two variants so drift in machine load hits both alike.
            runs: dict[bool, list[float]] = {False: [], True: []}
            for run in range(3):
                for points in (False, True):
                    runs[points].append(await _run(store, batch, n, run, points))
            plain.append(max(runs[False]))
            with_points.append(max(runs[True]))
        latencies = await reads(store)
    return plain, with_points, latencies


async def _cleanup(name: str, base: str, namespace: str) -> None:
    if name == "postgres":
        import psycopg

        async with await psycopg.AsyncConnection.connect(base, autocommit=True) as con:
            await con.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
    elif name == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(base)
        keys = [k async for k in client.scan_iter(match=f"{namespace}*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    parser.add_argument("--backends", default="memory,sqlite,postgres,redis")
    args = parser.parse_args()
    events = 2_000 if args.quick else 20_000
    tmp = tempfile.mkdtemp(prefix="gk-bench-")
    ns = f"gk_bench_{uuid.uuid4().hex[:8]}"
    candidates = {
        "memory": ("memory://", None, True),
        "sqlite": (f"sqlite:///{tmp}/bench.db", None, True),
        "postgres": (f"{PG_URL}?schema={ns}", PG_URL, _up(PG_URL, 5432)),
        "redis": (f"{REDIS_URL}?prefix={ns}:", REDIS_URL, _up(REDIS_URL, 6379)),
    }
    print(f"events per second committed (best of 3; {events:,} events per run at batch 10/100)")
    print(f"{'backend':<10}" + "".join(f"{'batch ' + str(b):>14}" for b in BATCHES))
    read_rows: dict[str, list[float]] = {}
    try:
        for name in args.backends.split(","):
            url, base, up = candidates[name]
            if not up:
                print(f"{name:<10}{'(server not reachable: skipped)':>42}")
                continue
            try:
                plain, with_points, read_rows[name] = await bench(name, url, events)
            finally:
                if base is not None:
                    await _cleanup(name, base, ns)
            print(f"{name:<10}" + "".join(f"{rate:>14,.0f}" for rate in plain), flush=True)
            print(f"{'+metrics':<10}" + "".join(f"{rate:>14,.0f}" for rate in with_points), flush=True)
            change = [f"{(b / a - 1) * 100:+.0f}%" for a, b in zip(plain, with_points, strict=True)]
            print(f"{'  change':<10}" + "".join(f"{c:>14}" for c in change), flush=True)
        print("\nread latency, ms (median of 20 calls)")
        print(f"{'backend':<10}" + "".join(f"{r:>16}" for r in READS))
        for name, row in read_rows.items():
            print(f"{name:<10}" + "".join(f"{ms:>16.2f}" for ms in row))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
