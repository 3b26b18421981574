"""Fingerprint every output of the core over a fixed corpus, to prove an optimisation changes nothing.

Usage::

    python benchmarks/golden_outputs.py                 # print one digest per corpus and a total
    python benchmarks/golden_outputs.py --save FILE     # also write the digests to FILE (JSON)
    python benchmarks/golden_outputs.py --check FILE    # compare with a saved run; exit 1 on a change
    python benchmarks/golden_outputs.py --dump DIR      # write every fingerprinted line (for diffing)

Each corpus is replayed through the public API and every observable output is hashed: each
``StepVerification.to_dict()`` (metrics, action, rule, reasoning, nudge, loop event, drift assessment),
each ``LoopEvent`` from ``observe``, each ``Outcome.to_dict()`` (metrics, suggestions and their ids),
the weight engine's audit trail, ``get_summary()``, and the final ``snapshot()`` of every tracker and
session. A snapshot taken mid-stream is restored and the rest replayed through both the original and
the restored object, so restore equivalence is fingerprinted too. Floats are hashed by ``repr`` (exact
bits), so a change in the last digit of any metric changes the digest.

Corpora:

* ``bench-*``: the seeded streams of ``core_throughput.py`` (with and without long outputs) and
  ``feedback_throughput.py`` (sessions), in both tracker profiles;
* ``random-*``: a randomised stream with messages, compressions, resets, plans, a plan-less goal, an
  embedder-free and an ``llm_verify_fn`` run, loops of every kind;
* ``tau-bench``: the assistant tool calls and tool results of the tau-bench airline trajectories in
  ``shared/data/tau-bench-airline/gpt-4o-airline.json`` (found next to the repository, or given with
  ``--tau``), one tracker and one session per trajectory, assistant messages as monologue.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_throughput
import feedback_throughput
from goalkeeper import GoalTracker, Step
from goalkeeper.core.model import (
    ContextCompressedEvent,
    Event,
    GoalEvent,
    MessageEvent,
    StepEvent,
)
from goalkeeper.core.session import GoalSession
from goalkeeper.core.steps import ContextCompressed, Message


def _canon(value: Any) -> str:
    """A canonical text for any JSON-able value, floats by repr (exact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


class Fingerprint:
    """Hashes lines; optionally keeps them for a diff."""

    def __init__(self, keep: bool) -> None:
        self._h = hashlib.sha256()
        self.lines: list[str] | None = [] if keep else None
        self.count = 0

    def add(self, value: Any) -> None:
        line = _canon(value)
        self._h.update(line.encode())
        self._h.update(b"\n")
        self.count += 1
        if self.lines is not None:
            self.lines.append(line)

    def digest(self) -> str:
        return self._h.hexdigest()[:32]


# -- corpora -------------------------------------------------------------------------------------------


def _take(it: Iterator[Any], n: int) -> list[Any]:
    return [next(it) for _ in range(n)]


def _random_items(seed: int, n: int) -> Iterator[Step | Message | ContextCompressed | str]:
    """A randomised stream exercising every rule: loops of every kind, messages, compressions."""
    rng = random.Random(seed)
    tools = ["search", "read_file", "bash", "edit", "get_user", "think", "poll_job", ""]
    words = ["flight", "Seattle", "booking", "cheapest", "direct", "error", "weather", "recipe", "JFK"]
    last: Step | None = None
    for i in range(n):
        r = rng.random()
        ts = float(i) + rng.random()
        if r < 0.08:
            yield Message(
                rng.choice(["user", "assistant"]), rng.choice(["", "ok", "Let me check", *words]), ts
            )
        elif r < 0.10:
            yield ContextCompressed(ts=ts)
        elif r < 0.11:
            yield "reset"
        elif r < 0.12:
            yield "plan"
        elif r < 0.25 and last is not None:
            yield Step(tool=last.tool, args=dict(last.args), description=last.description,
                       output=last.output if rng.random() < 0.7 else f"{last.output} {i}",
                       error=last.error, tokens=last.tokens, ts=ts)  # fmt: skip
        else:
            tool = rng.choice(tools)
            args: dict[str, Any] = {}
            for _ in range(rng.randrange(4)):
                args[rng.choice(["id", "path", "q", "n", "nested"])] = rng.choice(
                    [
                        f"R{rng.randrange(100):03d}",
                        rng.randrange(5),
                        {"a": [1, 2]},
                        " ".join(rng.sample(words, 2)),
                    ]
                )
            desc = " ".join(rng.sample(words, rng.randrange(0, 5)))
            out = rng.choice(
                [
                    "",
                    "done",
                    f"job {rng.randrange(3)} running",
                    f"id={rng.getrandbits(32):08x} at 12:0{i % 10}",
                    " ".join(rng.sample(words, 4)),
                    "Traceback: KeyError 'x'",
                ]
            )
            err = rng.choice([None, None, None, "timeout", f"error code {rng.randrange(3)}"])
            exit_code = rng.choice([None, None, 0, 1])
            last = Step(tool=tool, args=args, description=desc, output=out, error=err, exit_code=exit_code,
                        tokens=rng.randrange(0, 2_000), ts=ts)  # fmt: skip
            yield last


def _tau_trajectories(path: Path) -> list[list[Step | Message]]:
    """Assistant tool calls joined with their tool results as steps; assistant texts as messages."""
    data = json.loads(path.read_text())
    runs: list[list[Step | Message]] = []
    for task in data:
        items: list[Step | Message] = []
        pending: dict[str, tuple[str, dict[str, Any]]] = {}
        order: list[str] = []
        t = 0.0
        for msg in task["traj"]:
            role = msg.get("role")
            if role == "assistant":
                if msg.get("content"):
                    t += 1
                    items.append(Message("assistant", msg["content"], t))
                for call in msg.get("tool_calls") or []:
                    fn = call["function"]
                    try:
                        args = json.loads(fn["arguments"] or "{}")
                    except json.JSONDecodeError:
                        args = {"raw": fn["arguments"]}
                    pending[call["id"]] = (fn["name"], args if isinstance(args, dict) else {"value": args})
                    order.append(call["id"])
            elif role == "user" and msg.get("content"):
                t += 1
                items.append(Message("user", msg["content"], t))
            elif role == "tool":
                call_id = msg.get("tool_call_id")
                if call_id not in pending:
                    continue
                name, args = pending.pop(call_id)
                content = msg.get("content") or ""
                error = content if content.startswith("Error") else None
                t += 1
                items.append(Step(tool=name, args=args, description="", output=content, error=error,
                                  tokens=len(content) // 4, ts=t))  # fmt: skip
        runs.append(items)
    return runs


def _tau_goal(task: dict[str, Any]) -> str:
    instruction = task.get("info", {}).get("task", {}).get("instruction") or "Help the airline customer"
    return str(instruction)


# -- replays -------------------------------------------------------------------------------------------


def _feed_tracker(tracker: GoalTracker, items: Iterable[Any], fp: Fingerprint, plan: list[str]) -> None:
    for item in items:
        if isinstance(item, Step):
            fp.add(tracker.verify(item).to_dict())
        elif isinstance(item, (Message, ContextCompressed)):
            event = tracker.observe(item)
            fp.add(event.to_dict() if event is not None else None)
        elif item == "reset":
            tracker.reset_loop_detection()
            fp.add("reset")
        elif item == "plan":
            tracker.set_plan(plan)
            fp.add("plan")
    fp.add(tracker.get_summary())
    fp.add([c.to_dict() for c in tracker.weights.get_recent_changes(1_000)])


def _tracker_corpus(fp: Fingerprint, items: list[Any], goal: str, plan: list[str] | None, **kw: Any) -> None:
    """Replay through one tracker; at the middle, snapshot, restore, and replay the rest through both."""
    tracker = GoalTracker(goal, plan=plan, **kw)
    mid = len(items) // 2
    _feed_tracker(tracker, items[:mid], fp, plan or ["do it"])
    snap = tracker.snapshot()
    fp.add(snap)
    restored = GoalTracker.restore(json.loads(json.dumps(snap)), llm_verify_fn=kw.get("llm_verify_fn"))
    a, b = Fingerprint(False), Fingerprint(False)
    _feed_tracker(tracker, items[mid:], a, plan or ["do it"])
    _feed_tracker(restored, items[mid:], b, plan or ["do it"])
    fp.add([a.digest(), b.digest() == a.digest()])
    fp.add(tracker.snapshot())
    fp.add(restored.snapshot() == tracker.snapshot())


def _session_corpus(fp: Fingerprint, goal_id: str, events: list[Event]) -> None:
    session = GoalSession(goal_id)
    mid = len(events) // 2
    for event in events[:mid]:
        fp.add(session.apply(event).to_dict())
    snap = session.snapshot()
    fp.add(snap)
    restored = GoalSession.restore(json.loads(json.dumps(snap)))
    for event in events[mid:]:
        out = session.apply(event).to_dict()
        fp.add(out)
        fp.add(restored.apply(event).to_dict() == out)
    fp.add(session.snapshot())


def _tau_session_events(goal_id: str, goal: str, items: list[Step | Message]) -> list[Event]:
    events: list[Event] = [GoalEvent(goal_id=goal_id, event_id=f"{goal_id}:goal", description=goal, ts=0.0)]
    for i, item in enumerate(items):
        eid = f"{goal_id}:{i}"
        if isinstance(item, Step):
            events.append(StepEvent(goal_id=goal_id, event_id=eid, tool=item.tool, args=dict(item.args),
                                    output=item.output, error=item.error, tokens=item.tokens,
                                    ts=item.ts))  # fmt: skip
        else:
            events.append(MessageEvent(goal_id=goal_id, event_id=eid, role=item.role, content=item.content,
                                       ts=item.ts))  # fmt: skip
        if i % 17 == 16:
            events.append(ContextCompressedEvent(goal_id=goal_id, event_id=f"{eid}:c", ts=item.ts))
    return events


def _llm(prompt: str) -> str:
    # Deterministic "LLM": a score from the prompt's length.
    return f"{(len(prompt) % 97) / 96:.2f}"


def run(tau: Path | None, keep: bool, quick: bool) -> dict[str, Fingerprint]:
    """Replay every corpus; return its fingerprint by name."""
    out: dict[str, Fingerprint] = {}
    n = 600 if quick else 3_000
    plan = list(core_throughput.GOAL.split(" and "))

    def corpus(name: str) -> Fingerprint:
        out[name] = Fingerprint(keep)
        return out[name]

    for profile in ("goalkeeper", "reference"):
        steps = _take(core_throughput.stream(1), n)
        _tracker_corpus(
            corpus(f"bench-tracker-{profile}"), steps, core_throughput.GOAL, plan, profile=profile
        )
        steps = _take(core_throughput.stream(2, output_chars=3_000), n // 4)
        _tracker_corpus(corpus(f"bench-long-{profile}"), steps, core_throughput.GOAL, None, profile=profile)
        items = list(_random_items(3, n))
        _tracker_corpus(
            corpus(f"random-{profile}"), items, "Book a direct flight to Seattle", plan, profile=profile
        )
    items = list(_random_items(4, n // 2))
    _tracker_corpus(corpus("random-llm"), items, "Book a direct flight to Seattle", None, llm_verify_fn=_llm)
    events = [feedback_throughput.goal_event("g1"), *_take(feedback_throughput.stream("g1", 5), n)]
    _session_corpus(corpus("bench-session"), "g1", events)

    if tau is not None and tau.exists():
        data = json.loads(tau.read_text())
        runs = _tau_trajectories(tau)
        if quick:
            runs, data = runs[:40], data[:40]
        fp_t, fp_s = corpus("tau-bench-tracker"), corpus("tau-bench-session")
        for k, (task, items) in enumerate(zip(data, runs, strict=True)):
            goal = _tau_goal(task)
            tracker = GoalTracker(goal)
            _feed_tracker(tracker, items, fp_t, ["look up", "act"])
            fp_t.add(tracker.snapshot())
            _session_corpus(fp_s, f"tau{k}", _tau_session_events(f"tau{k}", goal, items))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_tau = Path(__file__).resolve().parents[2] / "shared/data/tau-bench-airline/gpt-4o-airline.json"
    if not default_tau.exists():
        default_tau = Path("/work/shared/data/tau-bench-airline/gpt-4o-airline.json")
    parser.add_argument("--tau", type=Path, default=default_tau, help="tau-bench airline trajectories (JSON)")
    parser.add_argument("--quick", action="store_true", help="smaller corpora")
    parser.add_argument("--save", type=Path, help="write the digests to this JSON file")
    parser.add_argument("--check", type=Path, help="compare with digests saved by --save; exit 1 on a change")
    parser.add_argument("--dump", type=Path, help="write every fingerprinted line to DIR/<corpus>.jsonl")
    args = parser.parse_args(argv)
    fps = run(args.tau if args.tau.exists() else None, keep=args.dump is not None, quick=args.quick)
    digests = {name: fp.digest() for name, fp in fps.items()}
    total = hashlib.sha256(_canon(digests).encode()).hexdigest()[:32]
    for name, fp in fps.items():
        print(f"{name:<32} {fp.count:>7,} outputs  {fp.digest()}")
    print(f"{'total':<32} {'':>15}  {total}")
    if args.dump is not None:
        args.dump.mkdir(parents=True, exist_ok=True)
        for name, fp in fps.items():
            (args.dump / f"{name}.jsonl").write_text("\n".join(fp.lines or []) + "\n")
    if args.save is not None:
        args.save.write_text(json.dumps({"digests": digests, "total": total}, indent=1) + "\n")
    if args.check is not None:
        saved = json.loads(args.check.read_text())["digests"]
        changed = sorted(k for k in saved.keys() | digests.keys() if saved.get(k) != digests.get(k))
        if changed:
            print(f"CHANGED: {', '.join(changed)}")
            return 1
        print("unchanged: every output is identical to the saved run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
