"""The crash test of issue 6: publish a workload while worker processes are SIGKILLed, then check.

:func:`make_workload` builds a deterministic stream (goals with plans and targets, tool steps that
sometimes repeat so loop suggestions fire, metric readings, messages, sub-goal changes) plus a few
poison events. :func:`reference` replays the valid events through plain ``GoalSession`` objects:
the single clean run. :class:`Scenario` publishes, kills and restarts worker processes, waits until
every event is applied and :func:`verify` checks the issue's promises:

* every valid event applied exactly once, in per-goal publish order (the goal's metrics history
  lists exactly its event ids, in order);
* the final state of every goal equals the clean run's snapshot;
* the sink never saw one ``suggestion_id`` as two different suggestions, saw every suggestion the
  clean run produced, and nothing is left undelivered in the outbox;
* every poison event is a dead letter, recorded once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from goalkeeper.bus import open_bus
from goalkeeper.core.session import GoalSession
from goalkeeper.events import parse_event, suggestion_to_dict
from goalkeeper.stores import open_store

WORKER_MAIN = Path(__file__).with_name("e2e_worker_main.py")
TOOLS = ["search", "read_file", "edit_file", "run_tests", "grep"]


@dataclass
class Workload:
    """The events to publish (in publish order) and what the clean run says about them."""

    events: list[dict[str, Any]]
    valid: dict[str, list[str]]  # goal -> valid event ids in publish order
    poison: set[str]


def make_workload(goals: int, per_goal: int, seed: int, poison: int = 10, burst: int = 10) -> Workload:
    """``goals * per_goal`` events, in bursts of ``burst`` per goal interleaved across goals, plus
    ``poison`` bad ones."""
    rng = random.Random(seed)
    streams: dict[str, list[dict[str, Any]]] = {}
    for g in range(goals):
        goal_id = f"goal-{g:04d}"
        ts = 1_700_000_000.0 + g
        evs: list[dict[str, Any]] = [
            {
                "type": "goal", "goal_id": goal_id, "event_id": f"{goal_id}-e0", "ts": ts,
                "description": f"make the parser handle case {g} and keep the tests green",
                "goal_state": {"progress": 10}, "plan": ["reproduce", "fix parser", "run tests"],
            }
        ]  # fmt: skip
        for i in range(1, per_goal):
            ts += 1.0 + rng.random()
            base = {"goal_id": goal_id, "event_id": f"{goal_id}-e{i}", "ts": ts}
            roll = rng.random()
            if roll < 0.55:
                # Repeat the same call now and then so the loop detectors have something to say.
                tool = "search" if rng.random() < 0.3 else rng.choice(TOOLS)
                args = {"q": "parser error"} if tool == "search" else {"path": f"src/m{rng.randrange(4)}.py"}
                out = "no results" if tool == "search" else f"ok {rng.randrange(100)}"
                evs.append({**base, "type": "step", "tool": tool, "args": args, "output": out, "tokens": 50})
            elif roll < 0.75:
                evs.append(
                    {**base, "type": "metrics", "values": {"progress": min(10, i // 4 + rng.randrange(2))}}
                )
            elif roll < 0.9:
                evs.append(
                    {**base, "type": "message", "role": "assistant", "content": f"step {i}: still working"}
                )
            else:
                status = rng.choice(["in_progress", "done"])
                evs.append({**base, "type": "subgoal", "description": "fix parser", "status": status})
        streams[goal_id] = evs
    valid = {g: [e["event_id"] for e in evs] for g, evs in streams.items()}
    bad: set[str] = set()
    goal_ids = sorted(streams)
    for k in range(poison):
        goal_id = goal_ids[(k * 37) % len(goal_ids)]
        at = 1 + rng.randrange(per_goal - 1)
        event_id = f"{goal_id}-poison{k}"
        # Two kinds of poison: unknown type (fails the wire schema) and a malformed field.
        bad_event = (
            {"type": "teleport", "goal_id": goal_id, "event_id": event_id}
            if k % 2
            else {
                "type": "step",
                "goal_id": goal_id,
                "event_id": event_id,
                "tool": "x",
                "args": "not-an-object",
            }
        )
        streams[goal_id].insert(at, bad_event)
        bad.add(event_id)
    # Agents emit events in bursts: each goal publishes `burst` events at a time, goals interleaved.
    ordered: list[dict[str, Any]] = []
    longest = max(len(s) for s in streams.values())
    for i in range(0, longest, burst):
        for goal_id in goal_ids:
            ordered.extend(streams[goal_id][i : i + burst])
    return Workload(ordered, valid, bad)


@dataclass
class Reference:
    """The clean run: final snapshots and suggestions per goal."""

    snapshots: dict[str, dict[str, Any]]
    suggestions: dict[str, dict[str, Any]]  # suggestion_id -> wire dict


def reference(work: Workload) -> Reference:
    """Apply the valid events, per goal, in order, to fresh sessions (no worker, no store)."""
    sessions: dict[str, GoalSession] = {}
    suggestions: dict[str, dict[str, Any]] = {}
    for raw in work.events:
        if raw["event_id"] in work.poison:
            continue
        event = parse_event(raw)
        session = sessions.setdefault(event.goal_id, GoalSession(event.goal_id))
        for s in session.apply(event).suggestions:
            suggestions[s.suggestion_id] = suggestion_to_dict(s)
    snaps = {g: json.loads(json.dumps(s.snapshot())) for g, s in sessions.items()}
    return Reference(snaps, suggestions)


@dataclass
class WorkerProc:
    """One worker subprocess slot (restartable)."""

    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    retired: bool = False  # killed and deliberately not restarted
    _mark: int = 0

    def _acquired(self) -> int:
        return self.log.read_text().count("partitions acquired") if self.log.exists() else 0

    def start(self) -> None:
        """Start the worker process."""
        self._mark = self._acquired()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)

    async def wait_active(self, timeout: float = 60.0) -> None:
        """Wait until this incarnation holds partitions (so a kill hits a working worker)."""
        deadline = time.monotonic() + timeout
        while self._acquired() <= self._mark:
            assert time.monotonic() < deadline, f"worker never acquired partitions; see {self.log}"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL it (what a crash looks like) and reap it."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM it and return its exit code (0 = graceful)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Scenario:
    """Publish a workload while killing workers, then wait for the result (see the module docstring)."""

    store_url: str
    bus_url: str
    workdir: Path
    workers: int = 1
    kills: int = 4
    victims: tuple[int, ...] = (0,)
    restart_last: bool = True  # False: the last victim stays dead and the others must take over
    seed: int = field(default_factory=lambda: int.from_bytes(os.urandom(4), "big"))
    procs: list[WorkerProc] = field(default_factory=list)

    @property
    def sink(self) -> Path:
        """The file the workers' sink appends to."""
        return self.workdir / "delivered.jsonl"

    def spawn(self, slot: int) -> WorkerProc:
        """A worker process for ``slot`` (not started)."""
        argv = [sys.executable, str(WORKER_MAIN), "--store", self.store_url, "--bus", self.bus_url,
                "--sink", str(self.sink), "--name", f"w{slot}"]  # fmt: skip
        return WorkerProc(argv, self.workdir / f"worker{slot}.log")

    async def run(self, work: Workload, timeout: float = 240.0) -> None:
        """Publish everything while killing and restarting workers; wait until all is applied."""
        rng = random.Random(self.seed)
        print(
            f"kill schedule seed: {self.seed} (GOALKEEPER_E2E_SEED={self.seed} replays it)"
        )  # shown on failure
        self.procs = [self.spawn(i) for i in range(self.workers)]
        for p in self.procs:
            p.start()
        publisher = asyncio.create_task(self._publish(work.events))
        try:
            for k in range(self.kills):
                victim = self.procs[rng.choice(self.victims)]
                await victim.wait_active()
                await asyncio.sleep(rng.uniform(0.2, 2.0))  # somewhere in the middle of its work
                victim.kill()
                if k == self.kills - 1 and not self.restart_last:
                    victim.retired = True
                    break
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                victim.start()
            await publisher
            await self._wait_applied(work, timeout)
        finally:
            if not publisher.done():
                publisher.cancel()
            for p in self.procs:
                if p.alive():
                    code = p.terminate()
                    assert code == 0, f"worker exited {code} on SIGTERM; see {p.log}"

    async def _publish(self, events: list[dict[str, Any]]) -> None:
        async with open_bus(self.bus_url) as bus:
            for i in range(0, len(events), 400):
                await bus.publish_many(events[i : i + 400])
                await asyncio.sleep(0.02)

    async def _wait_applied(self, work: Workload, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, int] = dict.fromkeys(work.valid, 0)
        async with open_store(self.store_url) as store:
            while True:
                for goal_id in [g for g, n in seen.items() if n < len(work.valid[g])]:
                    seen[goal_id] += len(await store.metrics_history(goal_id, after_seq=seen[goal_id]))
                missing = sum(len(work.valid[g]) - n for g, n in seen.items())
                if missing <= 0:
                    return
                if time.monotonic() > deadline:
                    logs = " ".join(str(p.log) for p in self.procs)
                    raise AssertionError(
                        f"{missing} events not applied after {timeout} s (seed {self.seed}); {logs}"
                    )
                for p in self.procs:  # a worker that died on its own is a bug: show its log
                    assert p.retired or p.alive(), f"worker died; see {p.log}"
                await asyncio.sleep(1.0)


def takeovers(log: Path) -> list[tuple[int, float]]:
    """The (partition, fence wait) pairs of every takeover from a dead holder a worker logged (the
    wait is 0 on a bus that rewinds the partition instead: NATS)."""
    out: list[tuple[int, float]] = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"partitions acquired"' in line:
            record = json.loads(line)
            dirty = set(record["taken_over"])
            out.extend((p, w) for p, w in record["partitions"] if p in dirty)
    return out


def read_sink(path: Path) -> dict[str, set[str]]:
    """suggestion_id -> the distinct JSON texts delivered under it."""
    seen: dict[str, set[str]] = defaultdict(set)
    if not path.exists():
        return seen
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        data = json.loads(line)
        seen[data["suggestion_id"]].add(json.dumps(data, sort_keys=True))
    return seen


async def verify(store_url: str, work: Workload, ref: Reference, sink: Path) -> dict[str, int]:
    """Check every promise of the issue (see the module docstring); return a few counts."""
    async with open_store(store_url) as store:
        for goal_id, ids in work.valid.items():
            points = await store.metrics_history(goal_id, limit=len(ids) + 10)
            got = [p.point["event_id"] for p in points]
            if got != ids:
                at = next(
                    (i for i, (a, b) in enumerate(zip(got, ids, strict=False)) if a != b),
                    min(len(got), len(ids)),
                )
                lo, hi = max(0, at - 2), at + 4
                raise AssertionError(
                    f"{goal_id}: applied {len(got)} events, expected {len(ids)} in order; first difference "
                    f"at {at}: applied {got[lo:hi]}, published {ids[lo:hi]}"
                )
            record = await store.load(goal_id)
            assert record is not None
            assert record.snapshot == ref.snapshots[goal_id], (
                f"{goal_id}: final state differs from a clean run"
            )
        pending = await store.pending_suggestions(limit=10)
        assert pending == [], f"{len(pending)}+ suggestions never delivered"
        records = await store.dead_letters(limit=10_000)
        dead = {d.event_id for d in records}
        assert dead == work.poison, f"dead letters {sorted(dead)} != poison {sorted(work.poison)}"
        # Exactly one record per poison event, even when a worker died between recording and ack.
        assert len(records) == len(work.poison), f"{len(records)} dead letters for {len(work.poison)} events"
    delivered = read_sink(sink)
    twice = {sid: texts for sid, texts in delivered.items() if len(texts) > 1}
    assert not twice, f"suggestion ids delivered as different suggestions: {list(twice)[:3]}"
    assert set(delivered) == set(ref.suggestions), (
        f"delivered {len(delivered)} suggestion ids, the clean run made {len(ref.suggestions)}"
    )
    for sid, texts in delivered.items():
        assert json.loads(next(iter(texts))) == ref.suggestions[sid], f"{sid} differs from the clean run"
    return {"suggestions": len(delivered), "events": sum(len(v) for v in work.valid.values())}
