"""Transport throughput: events/s published and consumed, and publish-to-receive latency.

Usage::

    python benchmarks/transport_throughput.py [--events 20000] [--batch 500]
        [--url memory:// --url redis://127.0.0.1:6379/0 ...]

By default it measures ``memory://`` (volatile), ``memory:///tmp/...db`` (durable SQLite) and the
local Redis and NATS servers when they are reachable (``GOALKEEPER_TEST_{REDIS,NATS}_URL``). One
producer publishes in batches of ``--batch`` while one consumer fetches and acks concurrently;
latency is from just before ``publish_many`` to the consumer's ``fetch`` returning the event.
Each run uses a fresh prefix and cleans up nothing on the servers beyond acked-and-trimmed data.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import tempfile
import time
import uuid
from urllib.parse import urlsplit

from goalkeeper.bus import open_bus


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=0.5):
            return True
    except OSError:
        return False


async def measure(url: str, events: int, batch: int) -> tuple[float, float, float, float]:
    """Return (published/s, consumed/s, p50 ms, p99 ms) for one backend."""
    sep = "&" if "?" in url else "?"
    full = f"{url}{sep}prefix=bench_{uuid.uuid4().hex[:8]}&max_backlog=1000000"
    latencies: list[float] = []
    async with open_bus(full) as bus:
        consumer = await bus.consumer("bench", "c1")
        done = asyncio.Event()

        async def consume() -> None:
            while len(latencies) < events:
                got = await consumer.fetch(1000, timeout=1.0)
                now = time.perf_counter()
                latencies.extend(now - d.payload["t"] for d in got)
                if got:
                    await consumer.ack(got)
            done.set()

        task = asyncio.create_task(consume())
        start = time.perf_counter()
        for first in range(0, events, batch):
            t = time.perf_counter()
            await bus.publish_many(
                {
                    "goal_id": f"goal-{i % 100}",
                    "event_id": f"e{i}",
                    "type": "metrics",
                    "values": {"n": i},
                    "t": t,
                }
                for i in range(first, min(events, first + batch))
            )
        published = time.perf_counter() - start
        await asyncio.wait_for(done.wait(), 300)
        consumed = time.perf_counter() - start
        await task
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return events / published, events / consumed, statistics.median(ordered) * 1e3, p99 * 1e3


def main() -> None:
    """Print one table row per backend."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--url", action="append", help="bus URL (repeatable); default: all available")
    args = parser.parse_args()
    urls = args.url
    if not urls:
        tmp = tempfile.mkdtemp(prefix="gk-bench-")
        urls = ["memory://", f"memory://{tmp}/bus.db"]
        for name, default in (("REDIS", "redis://127.0.0.1:6379/0"), ("NATS", "nats://127.0.0.1:4222")):
            url = os.environ.get(f"GOALKEEPER_TEST_{name}_URL", default)
            if _reachable(url):
                urls.append(url)
    print(f"{args.events} events, publish batches of {args.batch}, 100 goals, 16 partitions\n")
    print(f"| {'backend':<34} | {'published/s':>11} | {'consumed/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} |")
    print(f"|{'-' * 36}|{'-' * 13}|{'-' * 12}|{'-' * 9}|{'-' * 9}|")
    for url in urls:
        pub, con, p50, p99 = asyncio.run(measure(url, args.events, args.batch))
        print(f"| {url:<34} | {pub:>11,.0f} | {con:>10,.0f} | {p50:>7.1f} | {p99:>7.1f} |")


if __name__ == "__main__":
    main()
