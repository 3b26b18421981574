"""OpenAI chat conversations with tool calls (and tau-bench runs) -> goalkeeper trajectories.

Accepted files (UTF-8 JSON or JSONL):

* **tau-bench results**: a JSON array of runs, each an object with ``traj`` (the messages) and,
  optionally, ``task_id``, ``trial``, ``reward`` and ``info`` (``info.task.instruction`` and
  ``info.task.actions``, the task's ground-truth tool calls);
* **one conversation**: a JSON array of chat messages, or an object with ``messages`` (or ``traj``);
* **several conversations**: a JSON array of such objects, or JSONL with one object a line (the
  OpenAI fine-tuning layout, ``{"messages": [...]}``).

A message is an object with ``role`` (``system``, ``developer``, ``user``, ``assistant``, ``tool``
or the legacy ``function``) and ``content`` (a string, ``null`` or a list of content parts whose
``text`` is joined). An assistant message may carry ``tool_calls`` (``[{"id", "type": "function",
"function": {"name", "arguments"}}]``) or the legacy ``function_call`` (``{"name", "arguments"}``).

Mapping to events (wire schema v1, ``goal_id`` = the trajectory id):

* ``goal``: the task instruction when the source has one (tau-bench ``info.task.instruction``), else
  the first user message (which is then not repeated as a ``message`` event);
* ``step``: one per tool call, joined with its result message (``tool_call_id``; legacy
  ``function`` results pair with the oldest open call of that name): ``tool`` = function name,
  ``args`` = the decoded ``arguments`` object, ``output`` = the result text, ``error`` = the result
  text when it reports an error (it starts with ``Error`` / ``error``, the convention of tau-bench and
  most tool runtimes, since the OpenAI format itself has no error flag), ``thought`` = the text of
  the assistant message that made the call. A call whose result never arrives becomes a step with an
  empty output when the conversation moves on (or ends);
* ``message``: every other message with text (assistant replies, user turns, system prompts).

Arguments that are not valid JSON are the *agent's* mistake, not a malformed file, so they are kept
rather than rejected: ``args`` becomes ``{"_raw_arguments": "<the text>"}`` (a JSON value that is
not an object becomes ``{"_value": value}``). Anything else that does not fit the layout above raises
:class:`~goalkeeper.errors.ValidationError` whose ``.field`` is the JSON path of the bad value
(``"[3].traj[6].tool_calls[0].function.name"``) and whose message names the file.

Metadata of each :class:`~goalkeeper.importers._base.Trajectory`: ``reward`` (float), ``task_id``,
``trial``, ``user_id`` (tau-bench ``info.task.user_id``) and ``expected_actions`` (list of
``{"name", "kwargs"}``) when the source has them, plus
``index`` (position in the file). Event ids are deterministic (``"<id>:<n>"``), so importing the
same file twice yields the same events.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..core.model import Event
from ..errors import ValidationError
from ..events import parse_event
from ._base import Trajectory

__all__ = ["FORMAT", "read", "read_data", "sniff"]

#: The name this importer is registered under.
FORMAT = "openai-chat"

#: Bytes read by :func:`sniff` to recognise a JSONL file by its first line.
_SNIFF_LINE_LIMIT = 1 << 20
#: Files larger than this are sniffed by their head only instead of being parsed whole.
_SNIFF_PARSE_LIMIT = 64 << 20

_CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Keys of formats that also hold role/content messages but are not OpenAI chat logs
#: (mini-swe-agent ``.traj`` files carry ``trajectory_format``; SWE-agent ones ``trajectory``).
_FOREIGN_KEYS = frozenset({"trajectory_format", "trajectory"})
_ERROR_RESULT = re.compile(r"^\s*error\b", re.IGNORECASE)
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def sniff(path: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` looks like an OpenAI-chat / tau-bench file this importer reads.

    Cheap and never raises for unreadable or foreign content (it returns ``False``): a JSON file is
    parsed (up to 64 MiB) and its shape checked; a JSONL file is judged by its first non-blank line.
    """
    try:
        p = Path(path)
        if not p.is_file():
            return False
        if p.stat().st_size <= _SNIFF_PARSE_LIMIT:
            text = p.read_text(encoding="utf-8-sig")
            try:
                return _looks_like_chat(json.loads(text))
            except (ValueError, RecursionError):
                first = next((line for line in text.splitlines() if line.strip()), "")
                return _looks_like_chat_line(first)
        with p.open(encoding="utf-8-sig") as fp:
            first = ""
            for line in fp:
                if line.strip():
                    first = line[:_SNIFF_LINE_LIMIT]
                    break
        return _looks_like_chat_line(first)
    except (OSError, UnicodeDecodeError):
        return False


def _looks_like_chat_line(line: str) -> bool:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, Mapping) and _looks_like_conversation(obj)


def _looks_like_chat(data: Any) -> bool:
    if isinstance(data, Mapping):
        return _looks_like_conversation(data)
    if isinstance(data, list) and data:
        first = data[0]
        if _is_message(first):
            return True
        return isinstance(first, Mapping) and _looks_like_conversation(first)
    return False


def _looks_like_conversation(obj: Mapping[str, Any]) -> bool:
    if _FOREIGN_KEYS & obj.keys() or ("type" in obj and "goal_id" in obj):
        return False
    messages = obj.get("messages", obj.get("traj"))
    return isinstance(messages, list) and bool(messages) and all(_is_message(m) for m in messages[:5])


def _is_message(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("role") in _CHAT_ROLES


def read(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Read every conversation of the file at ``path`` as a :class:`Trajectory`.

    Trajectory ids are ``task<task_id>-trial<trial>`` for tau-bench runs, the conversation's own
    ``id`` when it has one, else ``<file stem>`` for a single conversation and
    ``<file stem>-<index>`` for several.

    Raises:
        ValidationError: the file is not UTF-8 JSON/JSONL or does not have the layout described in
            the module docstring; ``.field`` is the JSON path of the bad value (prefixed with
            ``line <n>`` for JSONL) and the message names the file.
        OSError: the file cannot be opened.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as whole:
        yield from _read_jsonl(p, text, whole)
        return
    yield from _with_file(p, read_data(data, name=_stem(p)))


def _read_jsonl(p: Path, text: str, whole: BaseException) -> Iterator[Trajectory]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines) < 2:
        raise ValidationError(f"{p}: malformed JSON: {whole}") from None
    stem = _stem(p)
    for index, (number, line) in enumerate(lines):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(
                f"{p}: malformed JSON on line {number}: {exc}", field=f"line {number}"
            ) from None
        if not isinstance(obj, Mapping):
            raise ValidationError(
                f"{p}: line {number}: expected a conversation object, got {type(obj).__name__}",
                field=f"line {number}",
            )
        try:
            yield _conversation(obj, f"line {number}", stem, index, several=True)
        except ValidationError as exc:
            raise ValidationError(f"{p}: {_bare(exc)}", field=exc.field) from None


def _with_file(p: Path, trajectories: Iterator[Trajectory]) -> Iterator[Trajectory]:
    """Prefix the file name to errors raised while converting already-parsed data."""
    try:
        yield from trajectories
    except ValidationError as exc:
        raise ValidationError(f"{p}: {_bare(exc)}", field=exc.field) from None


def read_data(data: Any, *, name: str = "conversation") -> Iterator[Trajectory]:
    """Convert already-decoded JSON (any of the layouts :func:`read` accepts) into trajectories.

    Args:
        data: a list of runs/conversations, a list of messages, or one conversation object.
        name: the base of generated trajectory ids.

    Raises:
        ValidationError: ``data`` does not have a supported layout (``.field`` is the JSON path).
    """
    if isinstance(data, Mapping):
        yield _conversation(data, "", name, 0, several=False)
        return
    if not isinstance(data, list):
        raise _wrong("", "a JSON array or object", data)
    if not data:
        return
    if all(isinstance(m, Mapping) and "role" in m for m in data):
        yield _convert(data, "", _ident(name), instruction=None, metadata={"index": 0})
        return
    for index, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise _wrong(f"[{index}]", "a conversation object (with messages or traj)", item)
        yield _conversation(item, f"[{index}]", name, index, several=True)


def _conversation(obj: Mapping[str, Any], path: str, stem: str, index: int, *, several: bool) -> Trajectory:
    """One run object: tau-bench (``traj`` + ``info``) or generic (``messages``)."""
    key = "traj" if "traj" in obj else "messages"
    messages = obj.get(key)
    if not isinstance(messages, list):
        if key not in obj:
            raise ValidationError(
                "required field is missing; expected an array of chat messages", field=_join(path, "messages")
            )
        raise _wrong(_join(path, key), "an array of chat messages", messages)
    metadata, instruction = _run_metadata(obj, path, index)
    traj_id = _trajectory_id(obj, metadata, stem, index, several=several)
    return _convert(messages, _join(path, key), traj_id, instruction=instruction, metadata=metadata)


def _run_metadata(obj: Mapping[str, Any], path: str, index: int) -> tuple[dict[str, Any], str | None]:
    """The metadata of a run (reward, task id, trial, expected actions) and its task instruction."""
    metadata: dict[str, Any] = {"index": index}
    instruction: str | None = None
    reward = obj.get("reward")
    if reward is not None:
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise _wrong(_join(path, "reward"), "a number", reward)
        metadata["reward"] = float(reward)
    for field_name in ("task_id", "trial"):
        value = obj.get(field_name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise _wrong(_join(path, field_name), "an integer or string", value)
            metadata[field_name] = value
    info = obj.get("info")
    if info is not None:
        if not isinstance(info, Mapping):
            raise _wrong(_join(path, "info"), "an object", info)
        task = info.get("task")
        if task is not None:
            instruction = _task_metadata(task, _join(path, "info.task"), metadata)
    return metadata, instruction


def _task_metadata(task: Any, path: str, metadata: dict[str, Any]) -> str | None:
    """Read a tau-bench ``info.task``: its user id and ground-truth actions go to ``metadata``;
    returns its instruction (``None`` when absent or blank)."""
    if not isinstance(task, Mapping):
        raise _wrong(path, "an object", task)
    instruction: str | None = None
    raw_instruction = task.get("instruction")
    if raw_instruction is not None:
        if not isinstance(raw_instruction, str):
            raise _wrong(f"{path}.instruction", "a string", raw_instruction)
        instruction = raw_instruction.strip() or None
    user_id = task.get("user_id")
    if user_id is not None:
        if not isinstance(user_id, str):
            raise _wrong(f"{path}.user_id", "a string", user_id)
        metadata["user_id"] = user_id
    actions = task.get("actions")
    if actions is not None:
        metadata["expected_actions"] = _expected_actions(actions, f"{path}.actions")
    return instruction


def _expected_actions(actions: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(actions, list):
        raise _wrong(path, "an array of actions", actions)
    out: list[dict[str, Any]] = []
    for i, action in enumerate(actions):
        here = f"{path}[{i}]"
        if not isinstance(action, Mapping):
            raise _wrong(here, "an object with name and kwargs", action)
        name = action.get("name")
        if not isinstance(name, str) or not name:
            raise _wrong(f"{here}.name", "a non-empty string", name)
        kwargs = action.get("kwargs", {})
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, Mapping):
            raise _wrong(f"{here}.kwargs", "an object", kwargs)
        out.append({"name": name, "kwargs": dict(kwargs)})
    return out


def _trajectory_id(
    obj: Mapping[str, Any], metadata: Mapping[str, Any], stem: str, index: int, *, several: bool
) -> str:
    if "task_id" in metadata:
        base = f"task{metadata['task_id']}"
        return _ident(f"{base}-trial{metadata['trial']}" if "trial" in metadata else f"{base}-{index}")
    own = obj.get("id")
    if isinstance(own, (str, int)) and not isinstance(own, bool) and str(own).strip():
        return _ident(str(own))
    return _ident(f"{stem}-{index}" if several else stem)


class _Builder:
    """Accumulates the wire events of one conversation, numbering their ids."""

    def __init__(self, traj_id: str) -> None:
        self.traj_id = traj_id
        self.events: list[Event] = []

    def add(self, wire: dict[str, Any], path: str) -> None:
        wire["goal_id"] = self.traj_id
        wire["event_id"] = f"{self.traj_id}:{len(self.events)}"
        try:
            self.events.append(parse_event(wire))
        except ValidationError as exc:  # e.g. arguments JSON cannot carry; name the source path
            raise ValidationError(_bare(exc), field=_join(path, exc.field or "")) from None


class _OpenCall:
    __slots__ = ("args", "id", "name", "path", "thought")

    def __init__(self, call_id: str | None, name: str, args: dict[str, Any], thought: str, path: str) -> None:
        self.id, self.name, self.args, self.thought, self.path = call_id, name, args, thought, path


def _convert(
    messages: Sequence[Any],
    path: str,
    traj_id: str,
    *,
    instruction: str | None,
    metadata: dict[str, Any],
) -> Trajectory:
    parsed = [_message(m, f"{path}[{i}]") for i, m in enumerate(messages)]
    goal_index: int | None = None
    if instruction is None:
        goal_index = next((i for i, (role, text, _) in enumerate(parsed) if role == "user" and text), None)
        if goal_index is None:
            raise ValidationError(
                "no goal: the conversation has no task instruction and no user message with text",
                field=path or None,
            )
        instruction = parsed[goal_index][1]
    out = _Builder(traj_id)
    out.add({"type": "goal", "description": instruction}, path)
    open_calls: list[_OpenCall] = []

    def flush() -> None:
        # A call whose result never came: the conversation moved on without it.
        for call in open_calls:
            out.add(_step(call, "", None), call.path)
        open_calls.clear()

    for i, (role, text, calls) in enumerate(parsed):
        here = f"{path}[{i}]"
        if role in ("tool", "function"):
            call = _match(open_calls, messages[i], role, here)
            error = text if _ERROR_RESULT.match(text) else None
            out.add(_step(call, text, error), here)
            continue
        flush()
        if i == goal_index:
            continue
        if role == "assistant" and calls:
            open_calls.extend(calls)
            continue
        if text:
            out.add(
                {"type": "message", "role": "system" if role == "developer" else role, "content": text}, here
            )
    flush()
    return Trajectory(id=traj_id, events=tuple(out.events), source=FORMAT, metadata=metadata)


def _step(call: _OpenCall, output: str, error: str | None) -> dict[str, Any]:
    return {
        "type": "step",
        "tool": call.name,
        "args": call.args,
        "output": output,
        "error": error,
        "thought": call.thought,
    }


def _match(open_calls: list[_OpenCall], msg: Mapping[str, Any], role: str, here: str) -> _OpenCall:
    """The open call a tool/function result answers (removed from ``open_calls``)."""
    if role == "tool":
        call_id = msg.get("tool_call_id")
        if call_id is not None and not isinstance(call_id, str):
            raise _wrong(f"{here}.tool_call_id", "a string", call_id)
        for k, call in enumerate(open_calls):
            if call_id is None or call.id == call_id:
                return open_calls.pop(k)
        raise ValidationError(
            f"tool result {call_id!r} answers no pending tool call of the preceding assistant message",
            field=f"{here}.tool_call_id",
        )
    name = msg.get("name")
    for k, call in enumerate(open_calls):
        if name is None or call.name == name:
            return open_calls.pop(k)
    raise ValidationError(f"function result {name!r} answers no pending function_call", field=f"{here}.name")


def _message(msg: Any, here: str) -> tuple[str, str, list[_OpenCall]]:
    """Validate one chat message: its role, its text and (assistant) its tool calls."""
    if not isinstance(msg, Mapping):
        raise _wrong(here, "a chat message object", msg)
    role = msg.get("role")
    if role not in _CHAT_ROLES:
        if "role" not in msg:
            raise ValidationError("required field is missing; expected a chat role", field=f"{here}.role")
        raise _wrong(f"{here}.role", "one of " + ", ".join(sorted(_CHAT_ROLES)), role)
    text = _text(msg.get("content"), f"{here}.content")
    calls: list[_OpenCall] = []
    if role == "assistant":
        raw_calls = msg.get("tool_calls")
        if raw_calls is not None:
            if not isinstance(raw_calls, list):
                raise _wrong(f"{here}.tool_calls", "an array of tool calls", raw_calls)
            for j, raw in enumerate(raw_calls):
                calls.append(_tool_call(raw, f"{here}.tool_calls[{j}]", text))
        legacy = msg.get("function_call")
        if legacy is not None:
            calls.append(_function(legacy, f"{here}.function_call", None, text))
    return str(role), text, calls


def _tool_call(raw: Any, here: str, thought: str) -> _OpenCall:
    if not isinstance(raw, Mapping):
        raise _wrong(here, "a tool call object", raw)
    call_id = raw.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise _wrong(f"{here}.id", "a string", call_id)
    kind = raw.get("type", "function")
    if kind != "function":
        raise _wrong(f"{here}.type", "'function'", kind)
    if "function" not in raw:
        raise ValidationError("required field is missing; expected an object", field=f"{here}.function")
    return _function(raw["function"], f"{here}.function", call_id, thought)


def _function(fn: Any, here: str, call_id: str | None, thought: str) -> _OpenCall:
    if not isinstance(fn, Mapping):
        raise _wrong(here, "an object with name and arguments", fn)
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _wrong(f"{here}.name", "a non-empty string", name)
    return _OpenCall(call_id, name, _arguments(fn.get("arguments"), f"{here}.arguments"), thought, here)


def _arguments(raw: Any, here: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):  # some exporters store the decoded object
        return dict(raw)
    if not isinstance(raw, str):
        raise _wrong(here, "a JSON string (or object)", raw)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {"_raw_arguments": raw}
    return dict(value) if isinstance(value, dict) else {"_value": value}


def _text(content: Any, here: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for k, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                value = part.get("text")
                if value is not None and not isinstance(value, str):
                    raise _wrong(f"{here}[{k}].text", "a string", value)
                if value:
                    parts.append(value)  # non-text parts (images, audio) carry nothing to compare
            else:
                raise _wrong(f"{here}[{k}]", "a content part object", part)
        return "\n".join(parts)
    raise _wrong(here, "a string, null or an array of content parts", content)


def _stem(p: Path) -> str:
    return p.stem or "conversation"


def _ident(raw: str) -> str:
    """A valid goal id from ``raw``: unsafe characters become ``_``, length is capped."""
    cleaned = _ID_SAFE.sub("_", raw.strip()).strip("_") or "conversation"
    return cleaned[:120]


def _join(path: str, field: str) -> str:
    if not field:
        return path
    if not path:
        return field
    return f"{path}{field}" if field.startswith("[") else f"{path}.{field}"


def _wrong(field: str, expected: str, value: object) -> ValidationError:
    what = "null" if value is None else type(value).__name__
    if isinstance(value, str):
        what = f"the string {value[:40]!r}"
    elif isinstance(value, (bool, int, float)):
        what = f"the value {value!r}"
    return ValidationError(f"expected {expected}, got {what}", field=field or None)


def _bare(exc: ValidationError) -> str:
    text, prefix = str(exc), f"{exc.field}: "
    return text[len(prefix) :] if exc.field and text.startswith(prefix) else text
