# ruff: noqa: E501
"""Regenerate tests/data/openhands/: a session written by OpenHands 0.9.8's own EventStream.

The events are OpenHands' dataclasses, added to a real ``EventStream`` over a ``LocalFileStore``,
so ``sessions/<sid>/events/<id>.json`` is byte-for-byte its serialization (``event_to_dict``); the
clock is fixed for reproducible timestamps. ``output.jsonl`` is the evaluation harness's layout
with ``history`` from ``ShortTermHistory.compatibility_for_eval_history_pairs``.

Usage (outside the project venv; needs pydantic and termcolor)::

    pip download openhands-ai==0.9.8 --no-deps && unzip openhands_ai-0.9.8-py3-none-any.whl -d oh
    OPENHANDS_DIR=oh python gen_openhands.py ../openhands
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openhands_stub  # noqa: F401  (must come first: it makes the imports below possible)

# isort: split
import openhands.events.stream as stream_module
from openhands.events.action import (
    AgentFinishAction,
    CmdRunAction,
    FileReadAction,
    IPythonRunCellAction,
    MessageAction,
)
from openhands.events.event import EventSource
from openhands.events.observation import CmdOutputObservation, FileReadObservation, IPythonRunCellObservation
from openhands.events.observation.agent import AgentStateChangedObservation
from openhands.events.stream import EventStream
from openhands.memory.history import ShortTermHistory
from openhands.storage.local import LocalFileStore

PROMPT = "\r\n\r\n[Python Interpreter: /openhands/poetry/openhands-5O4_aCHf-py3.11/bin/python]\nopenhands@runtime:/workspace $ "
TASK = (
    "Add a divide(a, b) function to /workspace/calc.py that raises ZeroDivisionError with the message "
    "'cannot divide by zero' when b is 0, and a test for it in /workspace/test_calc.py."
)
LS = (
    "total 12\ndrwxr-xr-x 2 openhands root 4096 Sep 12 14:02 .\ndrwxr-xr-x 1 root      root 4096 Sep 12 14:02 ..\n"
    "-rw-r--r-- 1 openhands root   60 Sep 12 14:02 calc.py"
)
EDIT = (
    "edit_file_by_replace(\n    '/workspace/calc.py',\n    to_replace='def mul(a, b):\\n    return a * b\\n',\n"
    "    new_content='def mul(a, b):\\n    return a * b\\n\\n\\ndef divide(a, b):\\n    if b == 0:\\n"
    '        raise ZeroDivisionError("cannot divide by zero")\\n    return a / b\\n\',\n)'
)
EDITED = (
    "[File: /workspace/calc.py (12 lines total after edit)]\n(this is the beginning of the file)\n"
    "1|def add(a, b):\n2|    return a + b\n3|\n4|\n5|def mul(a, b):\n6|    return a * b\n7|\n8|\n"
    '9|def divide(a, b):\n10|    if b == 0:\n11|        raise ZeroDivisionError("cannot divide by zero")\n'
    "12|    return a / b\n(this is the end of the file)\n[File updated (edited at line 5). Please review the "
    "changes and make sure they are correct (correct indentation, no duplicate lines, etc). Edit the file "
    "again if necessary.]"
)
TEST = (
    "create_file('/workspace/test_calc.py')\ninsert_content_at_line('/workspace/test_calc.py', 1, 'import pytest"
    "\\nfrom calc import divide\\n\\n\\ndef test_divide():\\n    assert divide(6, 3) == 2\\n\\n\\n"
    'def test_divide_by_zero():\\n    with pytest.raises(ZeroDivisionError, match="cannot divide by zero"):\\n'
    "        divide(1, 0)\\n')"
)
TESTED = (
    "[File: /workspace/test_calc.py (11 lines total after edit)]\n(this is the beginning of the file)\n"
    "1|import pytest\n2|from calc import divide\n3|\n4|\n5|def test_divide():\n6|    assert divide(6, 3) == 2\n"
    '7|\n8|\n9|def test_divide_by_zero():\n10|    with pytest.raises(ZeroDivisionError, match="cannot divide '
    'by zero"):\n11|        divide(1, 0)\n(this is the end of the file)\n[File updated (edited at line 1).]'
)


class FixedClock:
    """Stands in for datetime in the stream module: 2.417 s between events, from a fixed start."""

    now_value = datetime(2024, 9, 12, 14, 3, 7, 120000)

    @classmethod
    def now(cls) -> datetime:
        cls.now_value += timedelta(seconds=2, milliseconds=417)
        return cls.now_value


def main(out: Path) -> None:
    stream_module.datetime = FixedClock  # type: ignore[misc,assignment]
    es = EventStream("5f0c2b8e-calc-divide", LocalFileStore(str(out / "fs")))
    agent, user = EventSource.AGENT, EventSource.USER

    def act(action: Any, observe: Callable[[Any], Any] | None = None) -> None:
        es.add_event(action, agent)  # assigns action.id
        if observe is not None:
            observation = observe(action)
            observation._cause = action.id
            es.add_event(observation, agent)

    es.add_event(AgentStateChangedObservation("", "init"), agent)
    es.add_event(MessageAction(content=TASK), user)
    es.add_event(AgentStateChangedObservation("", "running"), agent)
    act(
        CmdRunAction(command="ls -la /workspace", thought="Let me look at the workspace first."),
        lambda a: CmdOutputObservation(LS + PROMPT, command_id=a.id, command=a.command, exit_code=0),
    )
    act(
        FileReadAction(path="/workspace/calc.py", thought="I'll read calc.py."),
        lambda a: FileReadObservation(CALC_FIXED, path="/workspace/calc.py"),
    )
    act(
        IPythonRunCellAction(code=EDIT, thought="Now add divide with an explicit zero check."),
        lambda a: IPythonRunCellObservation(EDITED, code=EDIT),
    )
    act(
        IPythonRunCellAction(code=TEST, thought="Add tests for divide."),
        lambda a: IPythonRunCellObservation(TESTED, code=TEST),
    )
    for command, output, code, thought in RUNS:
        act(
            CmdRunAction(command=command, thought=thought),
            lambda a, output=output, code=code: CmdOutputObservation(
                output + PROMPT, command_id=a.id, command=a.command, exit_code=code
            ),
        )
    thought = "I added divide() with a zero check to calc.py and two passing tests in test_calc.py."
    act(AgentFinishAction(outputs={}, thought=thought))
    es.add_event(AgentStateChangedObservation("", "finished"), agent)

    history = ShortTermHistory()
    history.set_event_stream(es)
    line = {
        "instance_id": "calc__calc-2",
        "instruction": TASK,
        "test_result": {"git_patch": "diff --git a/calc.py b/calc.py\n"},
        "metadata": {"agent_class": "CodeActAgent", "model_name": "gpt-4o-2024-05-13", "max_iterations": 30},
        "history": history.compatibility_for_eval_history_pairs(),
        "metrics": {"accumulated_cost": 0.0931},
        "error": None,
    }
    (out / "output.jsonl").write_text(json.dumps(line) + "\n")


RUNS = (
    (
        "cd /workspace && python -m pytest -q test_calc.py",
        "/openhands/poetry/openhands-5O4_aCHf-py3.11/bin/python: No module named pytest",
        1,
        "Run the tests.",
    ),
    (
        "pip install -q pytest && cd /workspace && python -m pytest -q test_calc.py",
        "..                                                                       [100%]\r\n2 passed in 0.02s",
        0,
        "pytest is missing; install it and rerun.",
    ),
)
CALC_FIXED = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"

if __name__ == "__main__":
    main(Path(sys.argv[1]))
