"""Tests for core/steps.py: validation and the loop-detection keys."""

from __future__ import annotations

import pytest

from goalkeeper.core.steps import ContextCompressed, Message, Step, check_message_fields, check_step_fields
from goalkeeper.errors import InvalidInputError


def test_action_key_ignores_thought_key_order_and_volatile_ids() -> None:
    a = Step.of(tool="search", args={"q": "SEA", "request_id": "1"}, thought="let me try")
    b = Step.of(tool="search", args={"request_id": "2", "q": " SEA "}, thought="again")
    assert a.action_key == b.action_key
    assert Step.of(tool="search", args={"q": "LAX"}).action_key != a.action_key
    assert Step.of(tool="fetch", args={"q": "SEA"}).action_key != a.action_key


def test_action_key_falls_back_to_description() -> None:
    assert (
        Step.of(description="Read the  README").action_key
        == Step.of(description="read the README").action_key
    )


def test_observation_key_masks_volatile_output() -> None:
    a = Step.of(tool="t", output="done at 2024-05-20T10:00:00Z in 0.5s")
    b = Step.of(tool="t", output="done at 2024-05-21T11:00:00Z in 0.7s")
    c = Step.of(tool="t", output="failed at 2024-05-21T11:00:00Z")
    assert a.observation_key == b.observation_key != c.observation_key
    assert Step.of(tool="t", error="boom").observation_key != Step.of(tool="t").observation_key
    assert Step.of(tool="t", exit_code=1).observation_key != Step.of(tool="t", exit_code=0).observation_key


def test_long_outputs_compare_head_and_tail() -> None:
    mid1 = "x" * 5000
    mid2 = "y" * 5000
    a = Step.of(output="HEAD" + "a" * 2000 + mid1 + "z" * 600)
    b = Step.of(output="HEAD" + "a" * 2000 + mid2 + "z" * 600)
    c = Step.of(output="HEAD" + "a" * 2000 + mid2 + "w" * 600)
    assert a.observation_key == b.observation_key != c.observation_key


def test_failed() -> None:
    assert Step.of(error="x").failed
    assert Step.of(exit_code=2).failed
    assert not Step.of(exit_code=0).failed
    assert not Step.of(error="").failed  # empty error text counts as no error


def test_output_non_string_is_json_encoded() -> None:
    assert Step.of(output={"b": 1, "a": 2}).output == '{"a": 2, "b": 1}'
    assert Step.of(output=None).output == ""


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tool": 3}, "tool"),
        ({"args": [1]}, "args"),
        ({"description": None}, "description"),
        ({"error": 5}, "error"),
        ({"exit_code": "1"}, "exit_code"),
        ({"exit_code": True}, "exit_code"),
        ({"tokens": -1}, "tokens"),
        ({"tokens": 1.5}, "tokens"),
        ({"ts": float("nan")}, "ts"),
        ({"ts": "yesterday"}, "ts"),
        ({"thought": 1}, "thought"),
    ],
)
def test_step_validation_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Step.of(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)


def test_message_validation() -> None:
    assert Message.of("assistant", None).content == ""
    with pytest.raises(InvalidInputError) as info:
        Message.of("robot", "hi")
    assert info.value.field == "role"
    with pytest.raises(InvalidInputError):
        Message.of("user", 3)
    assert ContextCompressed().ts is None


def test_step_text_includes_tool_description_and_scalar_args() -> None:
    s = Step.of(tool="book", description="book a flight", args={"to": "SEA", "n": 2, "x": [1]})
    assert s.text == "book book a flight SEA 2"


def test_thought_only_tools_are_keyed_on_their_masked_thought() -> None:
    # tau-bench's think(thought=...): dropping the reasoning key made every call the same action.
    a = Step.of("think", {"thought": "check the payment"})
    b = Step.of("think", {"thought": "check the baggage"})
    c = Step.of("think", {"thought": "check  the payment at 2024-05-20T11:03:22Z"})
    d = Step.of("think", {"thought": "check the payment at 2024-05-21T09:00:00Z"})
    assert a.action_key == 'think:{"thought": "check the payment"}'
    assert a.action_key != b.action_key
    assert c.action_key == d.action_key == 'think:{"thought": "check the payment at <ts>"}'
    assert Step.of("think", {"Reasoning": "x", "rationale": "y"}).action_key == (
        'think:{"Reasoning": "x", "rationale": "y"}'
    )
    # With any other argument, reasoning keys stay out of the key as before.
    assert Step.of("run", {"cmd": "make", "thought": "a"}).action_key == 'run:{"cmd":"make"}'
    assert Step.of("run", {"cmd": "make", "thought": "b"}).action_key == 'run:{"cmd":"make"}'


def test_computed_keys_are_computed_once_and_not_state() -> None:
    step = Step.of("search", {"q": "SEA"}, "find flights", "3 found")
    assert "action_key" not in step.__dict__
    key = step.action_key
    assert step.__dict__["action_key"] is key is step.action_key
    assert step.text == "search find flights SEA"
    assert step.words == ("search", "find", "flights", "SEA")
    assert set(step.__getstate__()) == set(Step.__dataclass_fields__)
    assert "tool" in (Step.action_key.__doc__ or "")  # the class attribute documents the key


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (Step(tool=3), "tool"),  # type: ignore[arg-type]
        (Step(description=None), "description"),  # type: ignore[arg-type]
        (Step(output=b"x"), "output"),  # type: ignore[arg-type]
        (Step(error=1), "error"),  # type: ignore[arg-type]
        (Step(args=[1]), "args"),  # type: ignore[arg-type]
        (Step(exit_code=True), "exit_code"),
        (Step(exit_code="1"), "exit_code"),  # type: ignore[arg-type]
    ],
)
def test_check_step_fields_names_the_field(step: Step, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_step_fields(step)
    assert info.value.field == field


def test_check_step_fields_accepts_a_clean_step() -> None:
    check_step_fields(Step.of("t", {"a": 1}, "d", "o", "e", 2, 5, "th", 1.0))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (([], "hi"), "role"),  # unhashable: must not escape as a TypeError
        (("robot", "hi"), "role"),
        (("user", 3), "content"),
        (("user", "hi", float("nan")), "ts"),
        (("user", "hi", 10**400), "ts"),  # too large for a float
        (("user", "hi", True), "ts"),
    ],
)
def test_message_checks_name_the_field(args: tuple[object, ...], field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        Message.of(*args)
    assert info.value.field == field
    with pytest.raises(InvalidInputError) as info:
        check_message_fields(Message(*args))  # type: ignore[arg-type]
    assert info.value.field == field


def test_message_of_normalises() -> None:
    assert Message.of("user", "hi", 3) == Message("user", "hi", 3.0)
    check_message_fields(Message("assistant", "", None))
