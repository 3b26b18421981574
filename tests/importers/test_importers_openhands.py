"""OpenHands event logs: a real session written by OpenHands 0.9.8 (tests/data/README.md), its
evaluation-output form, and broken input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from goalkeeper.core.model import ContextCompressedEvent, GoalEvent, MessageEvent, StepEvent
from goalkeeper.errors import ValidationError
from goalkeeper.events import dumps_event, loads_event
from goalkeeper.importers import openhands
from goalkeeper.importers._base import Trajectory

DATA = Path(__file__).resolve().parent.parent / "data" / "openhands"
SESSIONS = DATA / "sessions"
SESSION = SESSIONS / "5f0c2b8e-calc-divide"
OUTPUT = DATA / "output.jsonl"


def _steps(traj: Trajectory) -> list[StepEvent]:
    return [e for e in traj.events if isinstance(e, StepEvent)]


def _raw_events() -> list[dict[str, Any]]:
    files = sorted((SESSION / "events").glob("*.json"), key=lambda f: int(f.stem))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def _write(tmp_path: Path, data: Any, name: str = "events.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_session_directory_is_read_in_id_order() -> None:
    for path in (SESSIONS, SESSION, SESSION / "events"):
        assert openhands.sniff(path)
        (traj,) = list(openhands.read(path))
        assert traj.id == "5f0c2b8e-calc-divide"
    raw = _raw_events()
    goal = traj.events[0]
    assert isinstance(goal, GoalEvent)
    first_user = next(e for e in raw if e.get("action") == "message" and e["source"] == "user")
    assert goal.description == first_user["args"]["content"]
    assert goal.ts is not None
    steps = _steps(traj)
    runnable = [e for e in raw if e.get("action") in ("run", "read", "run_ipython")]
    assert [s.tool for s in steps] == [e["action"] for e in runnable]
    # Observations are joined to their action by `cause`; bookkeeping args are dropped.
    by_cause = {e["cause"]: e for e in raw if "observation" in e and "cause" in e}
    for step, action in zip(steps, runnable, strict=True):
        observation = by_cause[action["id"]]
        assert step.output == observation["content"]
        assert step.thought == action["args"]["thought"]
        assert "blocking" not in step.args
        assert "is_confirmed" not in step.args
        assert step.exit_code == observation["extras"].get("exit_code")
        assert step.ts is not None
    assert steps[0].args == {"command": "ls -la /workspace"}
    assert steps[1].args == {"path": "/workspace/calc.py", "start": 0, "end": -1}
    assert [s.exit_code for s in steps if s.tool == "run"] == [0, 1, 0]
    # The finish action's thought closes the run as an assistant message.
    last = traj.events[-1]
    assert isinstance(last, MessageEvent)
    assert last.role == "assistant"
    assert last.content.startswith("I added divide()")
    assert traj.metadata == {"finished": True, "final_state": "finished"}


def test_evaluation_output_pairs_give_the_same_events() -> None:
    assert openhands.sniff(OUTPUT)
    (run,) = list(openhands.read(OUTPUT))
    (session,) = list(openhands.read(SESSION))
    assert run.id == "calc__calc-2"
    strip = [
        (type(e), getattr(e, "description", ""), getattr(e, "tool", ""), getattr(e, "output", ""))
        for e in run.events
    ]
    same = [
        (type(e), getattr(e, "description", ""), getattr(e, "tool", ""), getattr(e, "output", ""))
        for e in session.events
    ]
    assert strip == same
    assert run.metadata["instance_id"] == "calc__calc-2"
    assert run.metadata["agent_class"] == "CodeActAgent"
    assert run.metadata["accumulated_cost"] == pytest.approx(0.0931)
    assert "reward" not in run.metadata  # this output was not evaluated (no resolved flag)


def test_resolved_flag_becomes_reward(tmp_path: Path) -> None:
    line = json.loads(OUTPUT.read_text(encoding="utf-8"))
    line["test_result"] = {"report": {"resolved": True}}
    other = dict(line, instance_id="calc__calc-3", test_result={"resolved": False})
    path = tmp_path / "output.jsonl"
    path.write_text(json.dumps(line) + "\n\n" + json.dumps(other) + "\n", encoding="utf-8")
    first, second = openhands.read(path)
    assert (first.metadata["reward"], second.metadata["reward"]) == (1.0, 0.0)


def test_event_array_export_with_errors_browsing_and_condensation(tmp_path: Path) -> None:
    events = [
        {"id": 0, "source": "user", "action": "message", "args": {"content": "find the docs page"}},
        {
            "id": 1,
            "source": "agent",
            "action": "browse",
            "args": {"url": "http://localhost:3000", "thought": "open"},
        },
        {
            "id": 2,
            "source": "agent",
            "cause": 1,
            "observation": "browse",
            "content": "timeout",
            "extras": {"url": "http://localhost:3000", "error": True, "last_browser_action_error": "timeout"},
        },
        {"id": 3, "source": "agent", "action": "run", "args": {"command": "cat x"}},
        {
            "id": 4,
            "source": "agent",
            "cause": 3,
            "observation": "error",
            "content": "sandbox died",
            "extras": {},
        },
        {"id": 5, "source": "agent", "action": "summarize", "args": {"summary": "tried browsing"}},
        {"id": 6, "source": "user", "action": "message", "args": {"content": "try again"}},
        {"id": 7, "source": "agent", "action": "run", "args": {"command": "ls"}},
        {
            "id": 8,
            "source": "agent",
            "observation": "agent_state_changed",
            "content": "",
            "extras": {"agent_state": "error"},
        },
    ]
    path = _write(tmp_path, {"events": events}, "export.json")
    assert openhands.sniff(path)
    (traj,) = list(openhands.read(path))
    assert traj.id == "export"
    kinds = [type(e).__name__ for e in traj.events]
    assert kinds == [
        "GoalEvent",
        "StepEvent",
        "StepEvent",
        "ContextCompressedEvent",
        "MessageEvent",
        "StepEvent",
    ]
    browse, run, late = _steps(traj)
    assert browse.error == "timeout"
    assert run.error == "sandbox died"
    assert late.output == ""
    assert late.error is None
    assert isinstance(traj.events[3], ContextCompressedEvent)
    assert traj.metadata == {"finished": False, "final_state": "error"}
    # A plain array is accepted too.
    (again,) = list(openhands.read(_write(tmp_path, events, "plain.json")))
    assert [type(e) for e in again.events] == [type(e) for e in traj.events]


def test_round_trip_and_deterministic_ids() -> None:
    (traj,) = list(openhands.read(SESSION))
    assert [loads_event(dumps_event(e)) for e in traj.events] == list(traj.events)
    assert traj.events[0].event_id == "5f0c2b8e-calc-divide:0"


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ([{"id": 0, "source": "agent", "action": "run", "args": {"command": "ls"}}], None, "no goal"),
        (
            [{"id": 0, "source": "user", "action": "message", "args": {"content": "go"}}, 3],
            "[1]",
            "an OpenHands event",
        ),
        (
            [
                {"id": 0, "source": "user", "action": "message", "args": {"content": "go"}},
                {"id": 1, "action": 5},
            ],
            "[1].action",
            "expected a string",
        ),
        (
            [
                {"id": 0, "source": "user", "action": "message", "args": {"content": "go"}},
                {"id": 1, "action": "run", "args": {"command": "ls"}},
                {"id": 2, "cause": 1, "observation": "run", "content": "", "extras": {"exit_code": "0"}},
            ],
            "[2].extras.exit_code",
            "expected an integer",
        ),
        (
            [
                {"id": 0, "source": "user", "action": "message", "args": {"content": "go"}},
                {"id": 1, "action": "run", "args": "ls"},
            ],
            "[1].args",
            "expected an object",
        ),
        (
            [
                {
                    "id": 0,
                    "source": "user",
                    "action": "message",
                    "args": {"content": "go"},
                    "timestamp": "yesterday",
                }
            ],
            "[0]",
            "cannot be converted (ts:",
        ),
    ],
)
def test_bad_events_name_file_and_place(tmp_path: Path, data: Any, field: str | None, text: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ValidationError) as caught:
        list(openhands.read(path))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{path}: ")
    assert text in str(caught.value)


def test_bad_event_file_in_a_session_directory_is_named(tmp_path: Path) -> None:
    session = tmp_path / "sessions" / "s1"
    shutil.copytree(SESSION, session)
    (session / "events" / "3.json").write_text('{"id": 3, "action": "run",', encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        list(openhands.read(tmp_path / "sessions"))
    assert "3.json: line 1: malformed JSON" in str(caught.value)


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "output.jsonl"
    good = OUTPUT.read_text(encoding="utf-8").strip()
    path.write_text(good + "\n{not json\n", encoding="utf-8")
    runs = openhands.read(path)
    next(runs)
    with pytest.raises(ValidationError) as caught:
        next(runs)
    assert caught.value.field == "line 2"
    assert "malformed JSON" in str(caught.value)


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    assert not openhands.sniff(tmp_path)
    with pytest.raises(ValidationError, match="no OpenHands events here"):
        list(openhands.read(tmp_path))
