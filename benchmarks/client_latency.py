"""Client latency: what one ``record(step)`` costs an agent, in-process and against a server.

Prints a table (no assertions): per mode, the p50 / p99 / mean latency of ``client.step(...)``
(send one step event and get goalkeeper's decision back) and the throughput of ``client.send``
in batches. The server rows start the real ``goalkeeper serve`` app (API + embedded worker on
SQLite) in a background thread on a free port.

    python benchmarks/client_latency.py [--steps 300] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from goalkeeper.client import AsyncGoalkeeperClient, GoalkeeperClient, LocalClient, SyncClientBase
from goalkeeper.client.testing import running_server

GOAL = "Find the population of Paris and report it"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def steps_latency(gk: SyncClientBase, goal_id: str, n: int) -> list[float]:
    gk.create_goal(GOAL, goal_id=goal_id)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        gk.step(goal_id, "search", {"q": f"query {i % 7}"}, output=f"result {i}")
        out.append(time.perf_counter() - t0)
    return out


def send_rate(gk: SyncClientBase, goal_id: str, n: int) -> float:
    gk.create_goal(GOAL, goal_id=goal_id)
    events = [{"type": "step", "goal_id": goal_id, "tool": "t", "args": {"i": i}} for i in range(n)]
    t0 = time.perf_counter()
    gk.send(events)
    return n / (time.perf_counter() - t0)


def request_latency(gk: SyncClientBase, n: int) -> tuple[list[float], list[float]]:
    """Latency of a one-event send (POST, answered 202) and of a goal read (GET)."""
    gk.create_goal(GOAL, goal_id="requests")
    posts, gets = [], []
    for i in range(n):
        t0 = time.perf_counter()
        gk.send([{"type": "step", "goal_id": "requests", "tool": "t", "args": {"i": i}}])
        posts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gk.get_goal("requests")
        gets.append(time.perf_counter() - t0)
    return posts, gets


async def async_latency(url: str, n: int) -> list[float]:
    async with AsyncGoalkeeperClient(url) as gk:
        await gk.create_goal(GOAL, goal_id="async-latency")
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            await gk.step("async-latency", "search", {"q": f"query {i % 7}"}, output=f"result {i}")
            out.append(time.perf_counter() - t0)
        return out


def row(name: str, lat: list[float], rate: float | None) -> str:
    ms = [x * 1000 for x in lat]
    r = f"{rate:,.0f}" if rate is not None else "-"
    p50, p99, mean = pct(ms, 0.5), pct(ms, 0.99), statistics.mean(ms)
    return f"| {name:<34} | {p50:8.3f} | {p99:8.3f} | {mean:8.3f} | {r:>12} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    print("| mode                               | p50 ms   | p99 ms   | mean ms  | send ev/s    |")
    print("|------------------------------------|----------|----------|----------|--------------|")
    local = LocalClient()
    print(
        row(
            "LocalClient (in-process)",
            steps_latency(local, "lat", args.steps),
            send_rate(local, "rate", args.batch),
        )
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(store_url=f"sqlite:///{Path(tmp) / 'gk.db'}") as url,
    ):
        with GoalkeeperClient(url) as remote:
            lat = steps_latency(remote, "lat", args.steps)
            print(row("GoalkeeperClient -> serve (SQLite)", lat, send_rate(remote, "rate", args.batch)))
            posts, gets = request_latency(remote, args.steps)
            print(row("  of which: POST one event (202)", posts, None))
            print(row("  GET /v1/goals/{id}", gets, None))
        print(row("AsyncGoalkeeperClient -> serve", asyncio.run(async_latency(url, args.steps)), None))


if __name__ == "__main__":
    main()
