"""SWE-agent and mini-swe-agent trajectory files (``.traj`` / ``.traj.json``) -> trajectories.

Both write one JSON object per run. This importer tells them apart by their keys.

**SWE-agent** (``{"environment", "trajectory", "history", "info"}``; written by
``Agent.save_trajectory``): ``trajectory`` is a list of turns ``{"action", "observation",
"response", "thought", "state"}`` (1.x adds ``execution_time``, ``query``, ``extra_info`` and makes
``state`` an object; both are accepted). Mapping:

* ``goal``: the issue text of the first user message of ``history`` (between ``ISSUE:`` and
  ``INSTRUCTIONS:`` in the 0.x template, inside ``<issue>``/``<pr_description>`` tags in 1.x
  templates), else that whole message;
* ``step`` per turn with an action: ``tool`` = the action's first word (``open``, ``edit``,
  ``python``, ``submit``...), ``args`` = ``{"command": <the action>}``, ``output`` = ``observation``,
  ``thought`` = ``thought``. SWE-agent records no exit code, so ``error``/``exit_code`` stay empty;
* a turn without an action (a format error) becomes an assistant ``message`` with the response;
* metadata: ``exit_status``, ``submitted`` (whether there is a submission), ``model_stats``,
  ``environment``.

**mini-swe-agent** (``{"info", "messages", "trajectory_format"}``, ``trajectory_format`` =
``"mini-swe-agent-1"`` or ``"mini-swe-agent-1.1"``): ``messages`` is the chat (``system``, ``user``,
``assistant``, ``tool`` and a final ``exit``). Mapping:

* ``goal``: the task in the first user message (inside ``<pr_description>``/``<issue>`` tags, or after
  ``Please solve this issue:`` up to the first blank line), else that whole message;
* ``step`` per executed command: an assistant message's commands come from ``extra.actions``
  (``[{"command", "tool_call_id"?}]``), else from its ``tool_calls`` (bash ``command`` argument), else
  from the ```` ```mswea_bash_command ```` / ```` ```bash ```` block of its text (1.0 files); each is
  joined with its observation (a ``tool`` message with the same ``tool_call_id``, else the next
  observation message in order): ``tool`` = ``"bash"``, ``args`` = ``{"command": ...}``, ``output`` =
  ``extra.raw_output`` (else the ``<output>`` of the rendered text, else the text), ``exit_code`` =
  ``extra.returncode`` (else the rendered ``<returncode>``), ``error`` = ``extra.exception_info`` when
  set (a timeout, say), ``thought`` = the assistant text;
* a command still waiting for its observation when the ``exit`` message comes (the submit command,
  which ends the run) becomes a step whose output is the exit message's text (the submission), exit
  code 0 when ``exit_status`` is ``Submitted``;
* other user messages (format-error notices, later instructions) become ``message`` events;
* metadata: ``exit_status``, ``submitted``, ``model_stats``, ``instance_id`` when present.

Neither format records a reward (resolution is judged by a separate evaluation), so there is none.
Trajectory id: the file's ``instance_id`` when present, else its name without ``.traj``/``.traj.json``.
Event ids are ``"<id>:<n>"``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._base import Trajectory
from ._common import (
    EventBuilder,
    describe,
    error,
    join,
    load_json,
    opt_str,
    safe_id,
    text_of,
    want_list,
    want_map,
)

__all__ = ["FORMAT", "MINI_FORMAT", "read", "sniff"]

#: The name this importer is registered under.
FORMAT = "swe-agent"
#: ``Trajectory.source`` of mini-swe-agent runs (read by the same importer).
MINI_FORMAT = "mini-swe-agent"

_SNIFF_LIMIT = 256 << 20

_TAGGED = re.compile(r"<(issue|pr_description)>\s*(.*?)\s*</\1>", re.DOTALL)
_ISSUE_0X = re.compile(r"ISSUE:\n(.*?)\n\s*INSTRUCTIONS:", re.DOTALL)
_MINI_TASK = re.compile(r"Please solve this issue:\s*(.*?)(?:\n\s*\n|$)", re.DOTALL)
_BLOCKS = (
    re.compile(r"```mswea_bash_command\s*\n(.*?)\n```", re.DOTALL),
    re.compile(r"<mswea_bash_command>(.*?)</mswea_bash_command>", re.DOTALL),
    re.compile(r"```(?:bash|sh)\s*\n(.*?)\n```", re.DOTALL),
)
_RETURNCODE = re.compile(r"<returncode>\s*(-?\d+)\s*</returncode>")
_OUTPUT = re.compile(r"<output>\n?(.*?)</output>", re.DOTALL)


def sniff(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a JSON object with SWE-agent or mini-swe-agent trajectory keys. Never raises."""
    try:
        p = Path(path)
        if not p.is_file() or p.stat().st_size > _SNIFF_LIMIT:
            return False
        text = p.read_text(encoding="utf-8-sig")
        if not text.lstrip().startswith("{"):
            return False  # both formats are one object; skip parsing arrays (tau-bench files are large)
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and (_is_swe_agent(data) or _is_mini(data))


def _is_swe_agent(data: Mapping[str, Any]) -> bool:
    return isinstance(data.get("trajectory"), list) and ("history" in data or "info" in data)


def _is_mini(data: Mapping[str, Any]) -> bool:
    fmt = data.get("trajectory_format")
    return (
        isinstance(fmt, str) and fmt.startswith("mini-swe-agent") and isinstance(data.get("messages"), list)
    )


def read(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Read the SWE-agent or mini-swe-agent trajectory at ``path`` (one run per file).

    Raises:
        ValidationError: not JSON, or not the layout in the module docstring; the message names the
            file and the JSON path (``.field``) of the bad value.
        OSError: the file cannot be opened.
    """
    p = Path(path)
    data = want_map(p, load_json(p), "", "a trajectory object")
    if _is_mini(data):
        yield _read_mini(p, data)
    elif "trajectory" in data:
        yield _read_swe_agent(p, data)
    else:
        raise error(
            p,
            None,
            "not a SWE-agent trajectory (no 'trajectory' array) nor a mini-swe-agent one "
            "(no 'trajectory_format' and 'messages')",
        )


def _traj_id(p: Path, data: Mapping[str, Any]) -> str:
    instance = data.get("instance_id")
    if isinstance(instance, str) and instance.strip():
        return safe_id(instance)
    name = p.name
    for suffix in (".traj.json", ".traj", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return safe_id(name)


def _info(p: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    info = data.get("info")
    if info is None:
        return {}
    info = want_map(p, info, "info")
    meta: dict[str, Any] = {}
    status = opt_str(p, info, "exit_status", "info")
    if status is not None:
        meta["exit_status"] = status
    submission = info.get("submission")
    meta["submitted"] = isinstance(submission, str) and bool(submission.strip())
    stats = info.get("model_stats")
    if isinstance(stats, Mapping):
        meta["model_stats"] = {k: v for k, v in stats.items() if isinstance(v, (int, float, str))}
    return meta


def _task_text(text: str, plain: re.Pattern[str] | None) -> str:
    """The task inside a rendered instance template (falls back to the whole text)."""
    tagged = _TAGGED.search(text)
    if tagged:
        return tagged.group(2).strip()
    if plain is not None:
        found = plain.search(text)
        if found and found.group(1).strip():
            return found.group(1).strip()
    return text.strip()


# -- SWE-agent ----------------------------------------------------------------------------------


def _read_swe_agent(p: Path, data: Mapping[str, Any]) -> Trajectory:
    turns = want_list(p, data.get("trajectory"), "trajectory", "an array of turns")
    history = data.get("history", [])
    history = want_list(p, history, "history", "an array of messages")
    goal = None
    for i, msg in enumerate(history):
        msg = want_map(p, msg, join("history", i), "a message object")
        if msg.get("role") == "user" and not msg.get("is_demo"):
            goal = _task_text(text_of(p, msg.get("content"), join(join("history", i), "content")), _ISSUE_0X)
            break
    if not goal:
        raise error(p, "history", "no goal: no user message with the issue text")
    traj_id = _traj_id(p, data)
    out = EventBuilder(p, traj_id)
    out.add({"type": "goal", "description": goal}, "history")
    for i, raw in enumerate(turns):
        here = join("trajectory", i)
        turn = want_map(p, raw, here, "a turn object")
        action = (opt_str(p, turn, "action", here) or "").strip()
        thought = (opt_str(p, turn, "thought", here) or "").strip()
        if not action:
            text = opt_str(p, turn, "response", here) or thought
            if text.strip():
                out.add({"type": "message", "role": "assistant", "content": text}, here)
            continue
        observation = turn.get("observation")
        output = text_of(p, observation, join(here, "observation"))
        step = {
            "type": "step",
            "tool": action.split(None, 1)[0],
            "args": {"command": action},
            "output": output,
            "thought": thought,
        }
        seconds = turn.get("execution_time")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
            raise error(p, join(here, "execution_time"), f"expected a number, got {describe(seconds)}")
        out.add(step, here)
    meta = _info(p, data)
    environment = data.get("environment")
    if isinstance(environment, str):
        meta["environment"] = environment
    return Trajectory(id=traj_id, events=tuple(out.events), source=FORMAT, metadata=meta)


# -- mini-swe-agent -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Command:
    command: str
    call_id: str | None
    thought: str
    where: str


def _commands(p: Path, msg: Mapping[str, Any], here: str, text: str) -> list[_Command]:
    """The commands an assistant message issued (see the module docstring for the order tried)."""
    extra = msg.get("extra")
    if extra is not None:
        extra = want_map(p, extra, join(here, "extra"))
        actions = extra.get("actions")
        if actions is not None:
            out: list[_Command] = []
            for j, action in enumerate(want_list(p, actions, join(here, "extra.actions"))):
                where = join(join(here, "extra.actions"), j)
                action = want_map(p, action, where, "an action object")
                command = action.get("command")
                if not isinstance(command, str):
                    raise error(p, join(where, "command"), f"expected a string, got {describe(command)}")
                call_id = action.get("tool_call_id")
                out.append(_Command(command, call_id if isinstance(call_id, str) else None, text, where))
            return out
    calls = msg.get("tool_calls")
    if isinstance(calls, list) and calls:
        return [_tool_call(p, call, join(join(here, "tool_calls"), j), text) for j, call in enumerate(calls)]
    for pattern in _BLOCKS:
        found = pattern.findall(text)
        if found:
            return [_Command(c.strip(), None, text, join(here, "content")) for c in found]
    return []


def _tool_call(p: Path, call: Any, where: str, thought: str) -> _Command:
    call = want_map(p, call, where, "a tool call object")
    function = want_map(p, call.get("function"), join(where, "function"))
    arguments = function.get("arguments")
    command: Any = None
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except ValueError:
            decoded = None
        command = decoded.get("command") if isinstance(decoded, dict) else arguments
    elif isinstance(arguments, Mapping):
        command = arguments.get("command")
    if not isinstance(command, str):
        raise error(p, join(where, "function.arguments"), "expected a bash 'command' argument")
    call_id = call.get("id")
    return _Command(command, call_id if isinstance(call_id, str) else None, thought, where)


def _observation(p: Path, msg: Mapping[str, Any], here: str, text: str) -> tuple[str, int | None, str | None]:
    """Output, exit code and error of an observation message."""
    extra = msg.get("extra")
    if isinstance(extra, Mapping) and ("raw_output" in extra or "returncode" in extra):
        output = extra.get("raw_output", text)
        if not isinstance(output, str):
            raise error(p, join(here, "extra.raw_output"), f"expected a string, got {describe(output)}")
        code = extra.get("returncode")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise error(p, join(here, "extra.returncode"), f"expected an integer, got {describe(code)}")
        info = extra.get("exception_info")
        return output, code, info if isinstance(info, str) and info.strip() else None
    found = _RETURNCODE.search(text)
    body = _OUTPUT.search(text)
    return (body.group(1) if body else text), (int(found.group(1)) if found else None), None


def _mini_messages(p: Path, data: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], str, str]]:
    """The messages of a mini-swe-agent file as (message, role, text), validated."""
    parsed: list[tuple[Mapping[str, Any], str, str]] = []
    for i, raw in enumerate(want_list(p, data.get("messages"), "messages", "an array of messages")):
        here = join("messages", i)
        msg = want_map(p, raw, here, "a message object")
        role = msg.get("role")
        if not isinstance(role, str):
            raise error(p, join(here, "role"), f"expected a string, got {describe(role)}")
        parsed.append((msg, role, text_of(p, msg.get("content"), join(here, "content"))))
    return parsed


class _MiniRun:
    """Walks the messages after the task, pairing commands with their observations."""

    def __init__(self, p: Path, out: EventBuilder, submitted: bool) -> None:
        self.p, self.out, self.submitted = p, out, submitted
        self.pending: list[_Command] = []

    def step(self, cmd: _Command, output: str, code: int | None, err: str | None) -> None:
        wire: dict[str, Any] = {"type": "step", "tool": "bash", "args": {"command": cmd.command}}
        wire.update(output=output, exit_code=code, error=err, thought=cmd.thought.strip())
        self.out.add(wire, cmd.where)

    def flush(self, output: str = "", code: int | None = None) -> None:
        for cmd in self.pending:
            self.step(cmd, output, code, None)
        self.pending = []

    def feed(self, msg: Mapping[str, Any], role: str, text: str, here: str) -> None:
        if role == "assistant":
            self.flush()  # the model spoke again: commands still waiting never ran
            self.pending = _commands(self.p, msg, here, text)
            if not self.pending and text.strip():
                self.out.add({"type": "message", "role": "assistant", "content": text}, here)
        elif role == "exit":
            # The command that ended the run (the submit command) has the exit text as its output.
            self.flush(text, 0 if self.submitted else None)
        elif role == "tool" or (role == "user" and self.pending and _is_observation(msg, text)):
            if not self.pending:
                raise error(self.p, here, "a tool result that answers no command")
            call_id = msg.get("tool_call_id")
            k = next(
                (k for k, c in enumerate(self.pending) if call_id is not None and c.call_id == call_id), 0
            )
            self.step(self.pending.pop(k), *_observation(self.p, msg, here, text))
        elif text.strip():
            self.out.add(
                {"type": "message", "role": "user" if role == "user" else "system", "content": text}, here
            )


def _read_mini(p: Path, data: Mapping[str, Any]) -> Trajectory:
    parsed = _mini_messages(p, data)
    first_user = next(
        (i for i, (_, role, text) in enumerate(parsed) if role == "user" and text.strip()), None
    )
    if first_user is None:
        raise error(p, "messages", "no goal: no user message with the task")
    traj_id = _traj_id(p, data)
    meta = _info(p, data)
    out = EventBuilder(p, traj_id)
    out.add({"type": "goal", "description": _task_text(parsed[first_user][2], _MINI_TASK)}, "messages")
    run = _MiniRun(p, out, meta.get("exit_status") == "Submitted")
    for i, (msg, role, text) in enumerate(parsed):
        if i > first_user and role != "system":
            run.feed(msg, role, text, join("messages", i))
    run.flush()
    instance = data.get("instance_id")
    if isinstance(instance, str):
        meta["instance_id"] = instance
    meta["trajectory_format"] = data.get("trajectory_format")
    return Trajectory(id=traj_id, events=tuple(out.events), source=MINI_FORMAT, metadata=meta)


def _is_observation(msg: Mapping[str, Any], text: str) -> bool:
    extra = msg.get("extra")
    if isinstance(extra, Mapping):
        if extra.get("interrupt_type"):
            return False  # a format-error notice, not the output of a command
        if "returncode" in extra or "raw_output" in extra:
            return True
    return _RETURNCODE.search(text) is not None
