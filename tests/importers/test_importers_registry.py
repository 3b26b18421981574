"""The format registry (sniffing, read_trajectories) and the goalkeeper JSONL importer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from goalkeeper.core.model import GoalEvent
from goalkeeper.errors import InvalidInputError, ValidationError
from goalkeeper.events import dumps_event
from goalkeeper.importers import FORMATS, get_importer, jsonl, read_trajectories, sniff

DATA = Path(__file__).resolve().parent.parent / "data"
TAU = Path(__file__).resolve().parents[3] / "shared" / "data" / "tau-bench-airline" / "gpt-4o-airline.json"

SAMPLES = {
    DATA / "goalkeeper" / "two-goals.jsonl": "jsonl",
    DATA / "swe_agent" / "calc__calc-1.traj": "swe-agent",
    DATA / "mini_swe_agent" / "calc-add.traj.json": "swe-agent",
    DATA / "mini_swe_agent" / "calc-divide-loop.traj.json": "swe-agent",
    DATA / "openhands" / "sessions": "openhands",
    DATA / "openhands" / "output.jsonl": "openhands",
    DATA / "openai_chat" / "tau_bench_airline_sample.json": "openai-chat",
}


def test_formats_table_and_every_importer_has_read_and_sniff() -> None:
    assert list(FORMATS) == ["jsonl", "swe-agent", "openhands", "openai-chat"]
    for name in FORMATS:
        module = get_importer(name)
        assert callable(module.read)
        assert callable(module.sniff)
        assert name == module.FORMAT


@pytest.mark.parametrize(("path", "expected"), SAMPLES.items(), ids=lambda v: str(v).split("/")[-1])
def test_every_sample_is_sniffed_as_its_format_and_by_no_other(path: Path, expected: str) -> None:
    assert sniff(path) == expected
    claimed = [name for name in FORMATS if get_importer(name).sniff(path)]
    assert claimed == [expected]
    trajectories = list(read_trajectories(path))
    assert trajectories
    for t in trajectories:
        assert t.events
        assert all(e.goal_id == t.id for e in t.events)
        assert len({e.event_id for e in t.events}) == len(t.events)


def test_tau_bench_file_reads_all_runs() -> None:
    if not TAU.exists():  # the shared data sits beside the repository, as in CI
        pytest.fail(f"{TAU} is missing")
    runs = list(read_trajectories(TAU))
    assert len(runs) == 200
    assert {r.source for r in runs} == {"openai-chat"}


def test_explicit_format_skips_sniffing_and_wrong_format_gives_a_precise_error() -> None:
    path = DATA / "swe_agent" / "calc__calc-1.traj"
    assert [t.id for t in read_trajectories(path, "swe-agent")] == ["calc__calc-1"]
    with pytest.raises(ValidationError) as caught:
        list(read_trajectories(path, "jsonl"))
    assert str(caught.value).startswith(f"{path}: line 1: ")


def test_unknown_format_missing_path_and_unrecognised_file(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInputError, match="unknown format 'csv'; known formats: jsonl, swe-agent"
    ) as caught:
        read_trajectories(DATA / "swe_agent" / "calc__calc-1.traj", "csv")
    assert caught.value.field == "format"
    with pytest.raises(InvalidInputError, match="no such file or directory") as caught:
        read_trajectories(tmp_path / "nope.json")
    assert caught.value.field == "path"
    odd = tmp_path / "notes.txt"
    odd.write_text("hello\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"cannot tell the format of this file.*--format"):
        sniff(odd)


# --- goalkeeper JSONL ------------------------------------------------------------------------


def test_jsonl_sample_groups_events_by_goal_in_order() -> None:
    path = DATA / "goalkeeper" / "two-goals.jsonl"
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    trajectories = list(jsonl.read(path))
    assert [t.id for t in trajectories] == list(dict.fromkeys(obj["goal_id"] for obj in lines))
    for t in trajectories:
        assert t.source == "jsonl"
        mine = [obj for obj in lines if obj["goal_id"] == t.id]
        assert [e.type.value for e in t.events] == [obj["type"] for obj in mine]
        assert isinstance(t.events[0], GoalEvent)
    # Ids given in the file are kept; missing ones are derived from the line (stable re-imports).
    given = {obj["event_id"] for obj in lines if "event_id" in obj}
    ids = [e.event_id for t in trajectories for e in t.events]
    assert given <= set(ids)
    assert ids == [e.event_id for t in jsonl.read(path) for e in t.events]


def test_jsonl_round_trip_of_imported_events(tmp_path: Path) -> None:
    (source,) = read_trajectories(DATA / "swe_agent" / "calc__calc-1.traj")
    out = tmp_path / "out.jsonl"
    out.write_text("".join(dumps_event(e) + "\n" for e in source.events), encoding="utf-8")
    assert sniff(out) == "jsonl"
    (back,) = jsonl.read(out)
    assert back.events == source.events


@pytest.mark.parametrize(
    ("content", "where", "field", "text"),
    [
        (
            '{"type": "goal", "goal_id": "g", "description": "d"}\n{oops\n',
            "line 2",
            "line 2",
            "malformed JSON",
        ),
        (
            '{"type": "goal", "goal_id": "g"}\n\n'
            '{"type": "metrics", "goal_id": "g", "values": {"p": "x"}, "ts": -5}\n',
            "line 3: ts",
            "ts",
            "ts",
        ),
        ('{"type": "step", "goal_id": "g", "tool": "t", "args": [1]}\n', "line 1: args", "args", "object"),
        ('{"type": "nope", "goal_id": "g"}\n', "line 1: type", "type", "one of"),
        ("[1, 2]\n", "line 1", None, "event object"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(
    tmp_path: Path, content: str, where: str, field: str | None, text: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        list(jsonl.read(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {where}")
    assert text in message
    assert caught.value.field == field


def test_errors_read_file_then_place_for_every_format(tmp_path: Path) -> None:
    chat = tmp_path / "chat.json"
    chat.write_text(
        json.dumps([{"traj": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": 5}]}]),
        encoding="utf-8",
    )
    with pytest.raises(ValidationError) as caught:
        list(read_trajectories(chat, "openai-chat"))
    assert caught.value.field == "[0].traj[1].tool_calls"
    assert str(caught.value).startswith(f"{chat}: [0].traj[1].tool_calls: ")
