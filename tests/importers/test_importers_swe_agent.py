"""SWE-agent and mini-swe-agent trajectories: real samples (tests/data/README.md) and broken input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from goalkeeper.core.model import GoalEvent, MessageEvent, StepEvent
from goalkeeper.core.session import GoalSession
from goalkeeper.errors import ValidationError
from goalkeeper.events import dumps_event, loads_event
from goalkeeper.importers import swe_agent
from goalkeeper.importers._base import Trajectory

DATA = Path(__file__).resolve().parent.parent / "data"
SWE = DATA / "swe_agent" / "calc__calc-1.traj"
MINI_TOOLCALL = DATA / "mini_swe_agent" / "calc-add.traj.json"
MINI_TEXT = DATA / "mini_swe_agent" / "calc-divide-loop.traj.json"


def _steps(traj: Trajectory) -> list[StepEvent]:
    return [e for e in traj.events if isinstance(e, StepEvent)]


def _one(path: Path) -> Trajectory:
    (traj,) = list(swe_agent.read(path))
    return traj


def _write(tmp_path: Path, data: Any, name: str = "run.traj") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- SWE-agent ---------------------------------------------------------------------------------


def test_swe_agent_sample_maps_every_turn_to_a_step() -> None:
    raw = json.loads(SWE.read_text(encoding="utf-8"))
    assert swe_agent.sniff(SWE)
    traj = _one(SWE)
    assert traj.id == "calc__calc-1"
    assert traj.source == "swe-agent"
    goal = traj.events[0]
    assert isinstance(goal, GoalEvent)
    # The issue text between ISSUE: and INSTRUCTIONS: of the 0.x instance template, nothing else.
    assert goal.description.startswith("calc.add returns the difference of its arguments")
    assert "INSTRUCTIONS" not in goal.description
    steps = _steps(traj)
    assert len(steps) == len(raw["trajectory"]) == 9
    for step, turn in zip(steps, raw["trajectory"], strict=True):
        assert step.args == {"command": turn["action"].strip()}
        assert step.tool == turn["action"].split()[0]
        assert step.output == turn["observation"]
        assert step.thought == turn["thought"].strip()
        assert step.error is None
        assert step.exit_code is None
    assert [s.tool for s in steps][:3] == ["create", "edit", "python"]
    assert steps[-1].tool == "submit"
    assert traj.metadata["exit_status"] == "submitted"
    assert traj.metadata["submitted"] is True
    assert traj.metadata["model_stats"]["api_calls"] == 9
    assert "reward" not in traj.metadata


def test_swe_agent_1x_layout_with_state_objects_and_tagged_issue(tmp_path: Path) -> None:
    data = {
        "trajectory": [
            {
                "action": "ls",
                "observation": "calc.py",
                "response": "r",
                "thought": "look",
                "state": {"open_file": None},
                "execution_time": 0.05,
                "query": [],
                "extra_info": {},
            },
            {"action": "", "observation": "", "response": "I am thinking", "thought": "I am thinking"},
        ],
        "history": [
            {
                "role": "system",
                "content": "You are a helpful assistant",
                "agent": "main",
                "message_type": "system_prompt",
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "<pr_description>\nFix add\n</pr_description>\nGo."}],
                "agent": "main",
                "message_type": "observation",
            },
        ],
        "info": {"exit_status": "exit_cost", "submission": None},
        "replay_config": "{}",
        "environment": "main",
    }
    traj = _one(_write(tmp_path, data, "inst-7.traj"))
    assert traj.id == "inst-7"
    assert isinstance(traj.events[0], GoalEvent)
    assert traj.events[0].description == "Fix add"
    assert isinstance(traj.events[1], StepEvent)
    assert traj.events[1].tool == "ls"
    # A turn without an action is the model talking, not acting.
    assert isinstance(traj.events[2], MessageEvent)
    assert traj.events[2].content == "I am thinking"
    assert traj.metadata["submitted"] is False
    assert traj.metadata["exit_status"] == "exit_cost"


def test_demonstrations_are_not_taken_as_the_goal(tmp_path: Path) -> None:
    data = {
        "trajectory": [{"action": "ls", "observation": "", "thought": ""}],
        "history": [
            {
                "role": "user",
                "content": "ISSUE:\ndemo issue\n\nINSTRUCTIONS:\n",
                "is_demo": True,
                "agent": "primary",
            },
            {"role": "user", "content": "ISSUE:\nreal issue\n\nINSTRUCTIONS:\nsolve", "agent": "primary"},
        ],
    }
    assert _one(_write(tmp_path, data)).events[0].description == "real issue"  # type: ignore[union-attr]


# --- mini-swe-agent ----------------------------------------------------------------------------


def test_mini_swe_agent_toolcall_sample() -> None:
    raw = json.loads(MINI_TOOLCALL.read_text(encoding="utf-8"))
    assert swe_agent.sniff(MINI_TOOLCALL)
    traj = _one(MINI_TOOLCALL)
    assert traj.id == raw["instance_id"] == "calc__calc-1"
    assert traj.source == "mini-swe-agent"
    assert traj.events[0].description.startswith("calc.add(2, 3) returns -1 instead of 5.")  # type: ignore[union-attr]
    assert "Recommended Workflow" not in traj.events[0].description  # type: ignore[union-attr]
    steps = _steps(traj)
    commands = [a["command"] for m in raw["messages"] for a in m.get("extra", {}).get("actions", [])]
    assert [s.args["command"] for s in steps] == commands
    assert all(s.tool == "bash" for s in steps)
    # Outputs and exit codes come from the observation's extra (raw_output, returncode).
    observations = [m for m in raw["messages"] if m["role"] == "tool"]
    for step, obs in zip(steps, observations, strict=False):
        assert step.output == obs["extra"]["raw_output"]
        assert step.exit_code == obs["extra"]["returncode"]
    failing = [s for s in steps if s.exit_code]
    assert [s.args["command"] for s in failing] == ["cat tests/test_calc.py"]
    # The submit command has no observation: the exit message (the submitted diff) is its output.
    assert steps[-1].args["command"].startswith("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    assert steps[-1].output.startswith("diff --git a/calc.py b/calc.py")
    assert steps[-1].exit_code == 0
    assert steps[0].thought == "Let me look at the repository first."
    assert traj.metadata["exit_status"] == "Submitted"
    assert traj.metadata["submitted"] is True


def test_mini_swe_agent_textbased_loop_sample() -> None:
    traj = _one(MINI_TEXT)
    assert traj.id == "calc-divide-loop"  # no instance_id: the file name without .traj.json
    steps = _steps(traj)
    assert [s.args["command"] for s in steps] == ["grep -rn 'def divide' ."] + ["cat calc.py"] + [
        "grep -rn 'def divide' ."
    ] * 4
    assert [s.exit_code for s in steps] == [1, 0, 1, 1, 1, 1]
    assert traj.metadata["exit_status"] == "LimitsExceeded"
    # The loop is what goalkeeper is for: the session escalates on the repeated failing search.
    session = GoalSession(traj.id)
    actions = [session.apply(e).recommended_action for e in traj.events]
    assert "replan" in actions


def test_mini_swe_agent_1_0_layout_parses_commands_from_text(tmp_path: Path) -> None:
    data = {
        "trajectory_format": "mini-swe-agent-1",
        "info": {"exit_status": "Submitted", "submission": "diff"},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "<pr_description>\nMake tests pass\n</pr_description>"},
            {"role": "assistant", "content": "THOUGHT: run them\n\n```bash\npytest -q\n```"},
            {"role": "user", "content": "<returncode>1</returncode>\n<output>\n1 failed\n</output>"},
            {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks."},
            {"role": "assistant", "content": "```bash\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```"},
        ],
    }
    traj = _one(_write(tmp_path, data, "x.traj.json"))
    assert traj.events[0].description == "Make tests pass"  # type: ignore[union-attr]
    first, second = _steps(traj)
    assert first.args == {"command": "pytest -q"}
    assert first.exit_code == 1
    assert first.output == "1 failed\n"
    assert second.args == {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}
    assert second.output == ""  # the file ends without an observation or exit message
    notices = [e for e in traj.events if isinstance(e, MessageEvent)]
    assert [n.role for n in notices] == ["user"]


def test_round_trip_through_jsonl_and_deterministic_ids() -> None:
    first, second = _one(MINI_TOOLCALL), _one(MINI_TOOLCALL)
    assert [e.event_id for e in first.events] == [e.event_id for e in second.events]
    assert [e.event_id for e in first.events][:2] == ["calc__calc-1:0", "calc__calc-1:1"]
    assert [loads_event(dumps_event(e)) for e in first.events] == list(first.events)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "text"),
    [
        ({"trajectory": "x", "history": []}, "trajectory", "expected an array of turns"),
        (
            {"trajectory": [5], "history": [{"role": "user", "content": "do"}]},
            "trajectory[0]",
            "a turn object",
        ),
        (
            {"trajectory": [{"action": 3}], "history": [{"role": "user", "content": "do"}]},
            "trajectory[0].action",
            "expected a string, got the number 3",
        ),
        ({"trajectory": [], "history": []}, "history", "no goal"),
        (
            {"trajectory": [], "history": [{"role": "user", "content": 7}]},
            "history[0].content",
            "expected a string",
        ),
        (
            {"trajectory_format": "mini-swe-agent-1.1", "messages": [{"role": "user", "content": "t"}, 5]},
            "messages[1]",
            "a message object",
        ),
        (
            {
                "trajectory_format": "mini-swe-agent-1.1",
                "messages": [
                    {"role": "user", "content": "t"},
                    {"role": "assistant", "content": "", "extra": {"actions": [{"command": 1}]}},
                ],
            },
            "messages[1].extra.actions[0].command",
            "expected a string",
        ),
        (
            {
                "trajectory_format": "mini-swe-agent-1.1",
                "messages": [
                    {"role": "user", "content": "t"},
                    {"role": "assistant", "content": "", "extra": {"actions": [{"command": "ls"}]}},
                    {"role": "tool", "content": "", "extra": {"returncode": "zero", "raw_output": ""}},
                ],
            },
            "messages[2].extra.returncode",
            "expected an integer",
        ),
        (
            {"trajectory_format": "mini-swe-agent-1.1", "messages": [{"role": "system", "content": "s"}]},
            "messages",
            "no goal",
        ),
        ({"info": {}}, None, "not a SWE-agent trajectory"),
    ],
)
def test_bad_input_names_file_and_field(tmp_path: Path, data: Any, field: str | None, text: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ValidationError) as caught:
        list(swe_agent.read(path))
    assert caught.value.field == field
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert text in message
    if field:
        assert f": {field}: " in message


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.traj"
    path.write_text('{\n  "trajectory": [\n    {"action": "ls",,}\n  ]\n}\n', encoding="utf-8")
    assert not swe_agent.sniff(path)
    with pytest.raises(ValidationError, match=r"bad\.traj: line 3: malformed JSON at column \d+") as caught:
        list(swe_agent.read(path))
    assert caught.value.field == "line 3"


def test_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bin.traj"
    path.write_bytes(b'{"trajectory": ["\xff\xfe"]}')
    with pytest.raises(ValidationError, match="not UTF-8"):
        list(swe_agent.read(path))


def test_sniff_refuses_other_formats(tmp_path: Path) -> None:
    assert not swe_agent.sniff(DATA / "openhands" / "output.jsonl")
    assert not swe_agent.sniff(_write(tmp_path, [{"role": "user", "content": "hi"}], "chat.json"))
    assert not swe_agent.sniff(tmp_path / "missing.traj")
    assert not swe_agent.sniff(tmp_path)
