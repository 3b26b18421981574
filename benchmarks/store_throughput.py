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
import sys
import tempfile
import time
import uuid
from urllib.parse import urlsplit

from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store
from goalkeeper.stores._base import BaseStore

BATCHES = (1, 10, 100)
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


async def _run(store: BaseStore, batch: int, events: int, run: int) -> float:
    goals = max(1, batch // 10)
    per_goal = batch // goals
    versions = dict.fromkeys((f"r{run}-b{batch}-g{i}" for i in range(goals)), 0)
    done = 0
    started = time.perf_counter()
    while done < events:
        commits = []
        for goal_id, version in versions.items():
            ids = [f"{goal_id}-e{done + k}" for k in range(per_goal)]
            suggestion = {"suggestion_id": f"{goal_id}-s{version + 1}", "goal_id": goal_id, "kind": "nudge"}
            commits.append(Commit(goal_id, version, SNAPSHOT, event_ids=ids, suggestions=[suggestion]))
        for result in await store.commit_many(commits):
            versions[result.goal_id] = result.version
        done += goals * per_goal
    return done / (time.perf_counter() - started)


async def bench(name: str, url: str, events: int) -> list[float]:
    """Best-of-3 events/s at each batch size."""
    rates = []
    async with open_store(url) as store:
        for batch in BATCHES:
            n = max(batch, events // (10 if batch == 1 else 1))  # batch 1 is slow: fewer events
            rates.append(max([await _run(store, batch, n, run) for run in range(3)]))
    return rates


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
    try:
        for name in args.backends.split(","):
            url, base, up = candidates[name]
            if not up:
                print(f"{name:<10}{'(server not reachable: skipped)':>42}")
                continue
            try:
                rates = await bench(name, url, events)
            finally:
                if base is not None:
                    await _cleanup(name, base, ns)
            print(f"{name:<10}" + "".join(f"{rate:>14,.0f}" for rate in rates), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
