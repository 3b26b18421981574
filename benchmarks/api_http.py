"""HTTP API throughput and latency of ``goalkeeper serve`` (zero config: SQLite + embedded worker).

Starts the real ``goalkeeper serve`` in a subprocess on a free port, in a temporary directory, and
measures with httpx:

* ingest: ``POST /v1/events`` batches of 100 events over 20 goals -> events accepted per second,
  and events applied per second (until the worker has committed all of them);
* single-event ``POST /v1/events`` latency (p50 / p99, sequential requests);
* end to end: ``POST`` of one step -> its ``metrics`` message on the goal's SSE stream (p50 / p99);
* ``GET /v1/goals/{id}`` latency (p50 / p99);
* baseline in the same run: the same events through ``GoalSession.apply`` in this process (no
  HTTP, no store, no bus) -> events per second, so the table shows what the service layers cost.

Run: ``python benchmarks/api_http.py [--events 4000]``. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from goalkeeper.core.session import GoalSession
from goalkeeper.events import parse_event

GOALKEEPER = str(Path(sys.executable).with_name("goalkeeper"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_events(n: int, goals: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for g in range(goals):
        events.append({"type": "goal", "goal_id": f"g{g}", "description": f"finish task {g}",
                       "plan": ["read the spec", "write the code", "run the tests"]})  # fmt: skip
    i = 0
    while len(events) < n:
        g = i % goals
        events.append({"type": "step", "goal_id": f"g{g}", "tool": ["read", "edit", "test"][i % 3],
                       "args": {"file": f"f{i % 7}.py"}, "output": f"ok {i}"})  # fmt: skip
        i += 1
    return events


def baseline(events: list[dict[str, Any]]) -> float:
    sessions: dict[str, GoalSession] = {}
    parsed = [parse_event(e, received_at=1.0) for e in events]
    start = time.perf_counter()
    for event in parsed:
        session = sessions.get(event.goal_id)
        if session is None:
            session = sessions[event.goal_id] = GoalSession(event.goal_id)
        session.apply(event)
    return len(parsed) / (time.perf_counter() - start)


async def run(n: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOALKEEPER_")}
        proc = subprocess.Popen(
            [GOALKEEPER, "serve", "--port", str(port), "--log-level", "warning"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                for _ in range(300):
                    try:
                        if (await c.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                events = make_events(n, 20)
                start = time.perf_counter()
                for i in range(0, len(events), 100):
                    r = await c.post("/v1/events", json={"events": events[i : i + 100]})
                    r.raise_for_status()
                accepted = time.perf_counter() - start
                while True:
                    goals = (await c.get("/v1/goals", params={"limit": 500})).json()["goals"]
                    if sum(g["metrics"]["steps"] for g in goals) >= n - 20:
                        break
                    await asyncio.sleep(0.05)
                applied = time.perf_counter() - start
                rows.append(("ingest: events accepted/s (batches of 100)", f"{n / accepted:,.0f}"))
                rows.append(("ingest: events applied/s (accept -> committed)", f"{n / applied:,.0f}"))

                single: list[float] = []
                for i in range(200):
                    t = time.perf_counter()
                    r = await c.post("/v1/events", json={"type": "step", "goal_id": "solo", "tool": "t",
                                                         "args": {"i": i}})  # fmt: skip
                    single.append(time.perf_counter() - t)
                rows.append(("POST one event: p50 / p99 ms",
                             f"{pct(single, .5) * 1e3:.1f} / {pct(single, .99) * 1e3:.1f}"))  # fmt: skip

                reads: list[float] = []
                for _ in range(200):
                    t = time.perf_counter()
                    (await c.get("/v1/goals/g1")).raise_for_status()
                    reads.append(time.perf_counter() - t)
                rows.append(("GET goal state: p50 / p99 ms",
                             f"{pct(reads, .5) * 1e3:.1f} / {pct(reads, .99) * 1e3:.1f}"))  # fmt: skip

                e2e: list[float] = []
                await c.post("/v1/goals", json={"goal_id": "live", "description": "watch me"})
                async with (
                    httpx.AsyncClient(base_url=url, timeout=30) as sse,
                    sse.stream("GET", "/v1/goals/live/stream", params={"after_seq": 1}) as stream,
                ):
                    lines = stream.aiter_lines()
                    for i in range(100):
                        t = time.perf_counter()
                        await c.post("/v1/goals/live/events", json={"type": "step", "tool": "t",
                                                                    "args": {"i": i}})  # fmt: skip
                        async for line in lines:
                            if line.startswith("event: metrics"):
                                e2e.append(time.perf_counter() - t)
                                break
                rows.append(("POST -> SSE metrics message: p50 / p99 ms",
                             f"{pct(e2e, .5) * 1e3:.1f} / {pct(e2e, .99) * 1e3:.1f}"))  # fmt: skip
                rows.append(("baseline: GoalSession.apply in-process, events/s", f"{baseline(events):,.0f}"))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args()
    rows = asyncio.run(run(args.events))
    width = max(len(k) for k, _ in rows)
    print(
        f"goalkeeper serve (SQLite, embedded worker), {args.events} events, Python {sys.version.split()[0]}"
    )
    print(f"{'measure'.ljust(width)}  value")
    print(f"{'-' * width}  {'-' * 14}")
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    print(json.dumps(dict(rows)), file=sys.stderr)


if __name__ == "__main__":
    main()
