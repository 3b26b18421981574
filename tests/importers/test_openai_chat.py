"""The OpenAI-chat / tau-bench importer on a real tau-bench sample and on hand-built edge cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from goalkeeper.core.model import GoalEvent, MessageEvent, StepEvent
from goalkeeper.core.session import GoalSession
from goalkeeper.errors import ValidationError
from goalkeeper.events import dumps_event, loads_event
from goalkeeper.importers import openai_chat
from goalkeeper.importers._base import Trajectory

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "openai_chat" / "tau_bench_airline_sample.json"


def _write(tmp_path: Path, data: Any, name: str = "conv.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _steps(traj: Trajectory) -> list[StepEvent]:
    return [e for e in traj.events if isinstance(e, StepEvent)]


# --- the real tau-bench sample ---------------------------------------------------------------


def test_tau_bench_sample_is_sniffed_and_read_completely() -> None:
    assert openai_chat.sniff(SAMPLE)
    trajs = list(openai_chat.read(SAMPLE))
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))
    assert [t.id for t in trajs] == ["task12-trial0", "task15-trial0", "task16-trial0"]
    for traj, run in zip(trajs, raw, strict=True):
        assert traj.source == "openai-chat"
        assert traj.metadata["reward"] == run["reward"]
        assert traj.metadata["task_id"] == run["task_id"]
        assert traj.metadata["expected_actions"] == run["info"]["task"]["actions"]
        assert traj.metadata["user_id"] == run["info"]["task"]["user_id"]
        # Goal = the task instruction; every tool call is one step; every other message with text is
        # one message event (the goal is the instruction, so no user turn is swallowed).
        goal = traj.events[0]
        assert isinstance(goal, GoalEvent)
        assert goal.description == run["info"]["task"]["instruction"].strip()
        n_calls = sum(len(m.get("tool_calls") or []) for m in run["traj"])
        n_text = sum(
            1 for m in run["traj"] if m["role"] != "tool" and not m.get("tool_calls") and m["content"]
        )
        assert len(_steps(traj)) == n_calls
        assert sum(isinstance(e, MessageEvent) for e in traj.events) == n_text
        assert all(e.goal_id == traj.id for e in traj.events)
        assert [e.event_id for e in traj.events] == [f"{traj.id}:{i}" for i in range(len(traj.events))]


def test_tau_bench_steps_carry_tool_args_output_and_errors() -> None:
    success, failure, no_tools = openai_chat.read(SAMPLE)
    first = _steps(success)[0]
    assert first.tool == "get_user_details"
    assert first.args == {"user_id": "amelia_sanchez_4739"}
    assert first.output.startswith('{"name": {"first_name": "Amelia"')
    assert first.error is None
    errors = [s for s in _steps(failure) if s.error is not None]
    assert [(s.tool, s.error) for s in errors] == [
        ("update_reservation_flights", "Error: not enough seats on flight HAT290")
    ]
    assert errors[0].output == errors[0].error
    assert _steps(no_tools) == []
    # The order of the conversation is kept: the failed call comes after the lookup of its reservation.
    tools = [s.tool for s in _steps(failure)]
    assert tools == ["get_reservation_details", "update_reservation_flights", "cancel_reservation"]


def test_tau_bench_events_round_trip_the_wire_and_feed_a_session() -> None:
    for traj in openai_chat.read(SAMPLE):
        session = GoalSession(traj.id)
        for event in traj.events:
            assert loads_event(dumps_event(event)) == event
            session.apply(event)
        assert session.version == len(traj.events)


def test_reading_twice_gives_identical_events() -> None:
    assert [t.events for t in openai_chat.read(SAMPLE)] == [t.events for t in openai_chat.read(SAMPLE)]


# --- layouts ----------------------------------------------------------------------------------

CONVERSATION = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": [{"type": "text", "text": "Fix the failing test in utils.py"}]},
    {
        "role": "assistant",
        "content": "Let me look at the file and the tests.",
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "read_file", "arguments": '{"path": "utils.py"}'},
            },
            {"id": "b", "type": "function", "function": {"name": "run_tests", "arguments": "{}"}},
        ],
    },
    # Parallel results may come back in any order; they are joined by tool_call_id.
    {"role": "tool", "tool_call_id": "b", "content": "error: 1 failed, 3 passed"},
    {"role": "tool", "tool_call_id": "a", "content": "def add(a, b): return a - b"},
    {"role": "assistant", "content": "The add function subtracts; fixing it."},
]


def test_single_conversation_as_list_of_messages(tmp_path: Path) -> None:
    path = _write(tmp_path, CONVERSATION, "fix-utils.json")
    assert openai_chat.sniff(path)
    (traj,) = openai_chat.read(path)
    assert traj.id == "fix-utils"
    assert traj.metadata == {"index": 0}
    kinds = [(e.type.value, getattr(e, "role", getattr(e, "tool", None))) for e in traj.events]
    assert kinds == [
        ("goal", None),
        ("message", "system"),
        ("step", "run_tests"),
        ("step", "read_file"),
        ("message", "assistant"),
    ]
    goal = traj.events[0]
    assert isinstance(goal, GoalEvent)
    assert goal.description == "Fix the failing test in utils.py"
    run_tests, read_file = _steps(traj)
    assert run_tests.error == "error: 1 failed, 3 passed"
    assert read_file.error is None
    assert read_file.args == {"path": "utils.py"}
    assert read_file.thought == "Let me look at the file and the tests."


@pytest.mark.parametrize("key", ["messages", "traj"])
def test_single_conversation_object(tmp_path: Path, key: str) -> None:
    (traj,) = openai_chat.read(_write(tmp_path, {key: CONVERSATION, "id": "run 7/a"}))
    assert traj.id == "run_7_a"  # characters unsafe in ids are replaced
    assert len(_steps(traj)) == 2


def test_jsonl_of_conversations(tmp_path: Path) -> None:
    path = tmp_path / "finetune.jsonl"
    path.write_text(
        "\n".join(json.dumps({"messages": CONVERSATION}) for _ in range(3)) + "\n\n", encoding="utf-8"
    )
    assert openai_chat.sniff(path)
    trajs = list(openai_chat.read(path))
    assert [t.id for t in trajs] == ["finetune-0", "finetune-1", "finetune-2"]


def test_legacy_function_call_and_unanswered_call(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "weather", "arguments": '{"city": "Paris"}'},
        },
        {"role": "function", "name": "weather", "content": "18C, cloudy"},
        {
            "role": "assistant",
            "content": None,
            "function_call": {"name": "weather", "arguments": "{city: Lyon"},
        },
        {"role": "user", "content": "never mind"},
    ]
    (traj,) = openai_chat.read(_write(tmp_path, messages))
    first, second = _steps(traj)
    assert (first.tool, first.args, first.output) == ("weather", {"city": "Paris"}, "18C, cloudy")
    # Invalid JSON arguments are the agent's mistake: kept verbatim, not rejected.
    assert second.args == {"_raw_arguments": "{city: Lyon"}
    assert second.output == ""
    assert isinstance(traj.events[-1], MessageEvent)
    assert traj.events[-1].content == "never mind"


def test_non_object_arguments_and_developer_role(tmp_path: Path) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "sum"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "x", "function": {"name": "add", "arguments": "[1, 2]"}}],
        },
        {"role": "tool", "tool_call_id": "x", "content": "3"},
    ]
    (traj,) = openai_chat.read(_write(tmp_path, messages))
    assert isinstance(traj.events[1], MessageEvent)
    assert traj.events[1].role == "system"
    assert _steps(traj)[0].args == {"_value": [1, 2]}


# --- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json at all",
        json.dumps({"type": "step", "goal_id": "g", "tool": "x"}),  # goalkeeper JSONL
        json.dumps({"trajectory_format": "mini-swe-agent-1", "messages": [{"role": "user", "content": "x"}]}),
        json.dumps({"trajectory": [], "history": [{"role": "user", "content": "x"}]}),  # SWE-agent
        json.dumps([{"action": "run", "args": {}}]),  # OpenHands event log
        json.dumps({"messages": []}),
    ],
)
def test_sniff_declines_other_formats(tmp_path: Path, content: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content, encoding="utf-8")
    assert not openai_chat.sniff(path)


def test_sniff_never_raises(tmp_path: Path) -> None:
    assert not openai_chat.sniff(tmp_path / "missing.json")
    assert not openai_chat.sniff(tmp_path)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert not openai_chat.sniff(binary)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (42, None, "expected a JSON array or object"),
        ({"conversation": []}, "messages", "required field is missing"),
        ({"messages": "hi"}, "messages", "expected an array of chat messages"),
        ([{"traj": [], "reward": "yes"}], "[0].reward", "expected a number"),
        ([{"traj": [], "info": {"task": {"instruction": 5}}}], "[0].info.task.instruction", "a string"),
        ([{"traj": [], "info": {"task": {"user_id": 7}}}], "[0].info.task.user_id", "a string"),
        (
            [{"traj": [], "info": {"task": {"actions": [{"kwargs": {}}]}}}],
            "[0].info.task.actions[0].name",
            "",
        ),
        ([{"role": "robot", "content": "x"}], "[0].role", "expected one of"),
        ([{"role": "user", "content": 3}], "[0].content", "a string, null or an array"),
        ([{"role": "assistant", "content": "hi"}], None, "no goal"),
        (
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"function": {"name": ""}}]},
            ],
            "[1].tool_calls[0].function.name",
            "a non-empty string",
        ),
        (
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"type": "code", "x": 1}]},
            ],
            "[1].tool_calls[0].type",
            "'function'",
        ),
        (
            [{"role": "user", "content": "go"}, {"role": "tool", "tool_call_id": "zz", "content": "x"}],
            "[1].tool_call_id",
            "answers no pending tool call",
        ),
    ],
)
def test_malformed_input_names_file_and_field(
    tmp_path: Path, data: Any, field: str | None, fragment: str
) -> None:
    path = _write(tmp_path, data, "bad.json")
    with pytest.raises(ValidationError) as info:
        list(openai_chat.read(path))
    assert info.value.field == field
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_malformed_json_and_jsonl_lines(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"role": "user", "content": "x"', encoding="utf-8")
    with pytest.raises(ValidationError, match="malformed JSON"):
        list(openai_chat.read(broken))
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_text(json.dumps({"messages": CONVERSATION}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="malformed JSON on line 2") as info:
        list(openai_chat.read(jsonl))
    assert info.value.field == "line 2"
    jsonl.write_text(json.dumps({"messages": CONVERSATION}) + "\n" + json.dumps({"messages": 1}) + "\n")
    with pytest.raises(ValidationError) as info:
        list(openai_chat.read(jsonl))
    assert info.value.field == "line 2.messages"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.json"
    path.write_bytes(b'[{"role": "user", "content": "caf\xe9"}]')
    with pytest.raises(ValidationError, match="not UTF-8"):
        list(openai_chat.read(path))


def test_empty_array_yields_nothing(tmp_path: Path) -> None:
    assert list(openai_chat.read(_write(tmp_path, []))) == []
