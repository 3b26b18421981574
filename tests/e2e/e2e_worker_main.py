"""Entry point of a worker process for the end-to-end tests (run as a script, killed with SIGKILL).

It runs a real :class:`~goalkeeper.worker.GoalFeedbackWorker` whose only sink appends each delivered
suggestion as one JSON line to ``--sink`` with ``os.write`` on an ``O_APPEND`` descriptor: the line
reaches the kernel before the worker marks the suggestion delivered, so a SIGKILL can never make
the file miss a suggestion the store calls delivered, and two processes never interleave lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from typing import Any

from goalkeeper._gc import freeze_startup_heap
from goalkeeper.worker import GoalFeedbackWorker, WorkerConfig
from goalkeeper.worker.logs import configure_logging


def main() -> None:
    """Parse the arguments and run the worker until SIGTERM."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--bus", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--name", default=None)
    parser.add_argument("--lease-ttl", type=float, default=1.5)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    configure_logging(logging.INFO, json_lines=True)
    fd = os.open(args.sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(suggestion: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(suggestion, sort_keys=True) + "\n").encode())

    config = WorkerConfig(
        name=args.name,
        lease_ttl=args.lease_ttl,
        batch_size=args.batch_size,
        fetch_timeout=0.2,
        outbox_interval=1.0,
        outbox_grace=0.5,
        drain_timeout=5.0,
    )
    worker = GoalFeedbackWorker(args.store, args.bus, config=config, sinks=[record])
    freeze_startup_heap()  # as `goalkeeper worker` does: the crash tests run that setup
    asyncio.run(worker.run())
    os.close(fd)


if __name__ == "__main__":
    main()
