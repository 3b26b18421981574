"""OpenHands event logs -> trajectories.

OpenHands records a session as a stream of events, each serialized by
``openhands.events.serialization.event_to_dict``: an **action** ``{"id", "timestamp", "source",
"message", "action", "args", "timeout"?}`` or an **observation** ``{"id", "timestamp", "source",
"message", "cause", "observation", "content", "extras"}`` whose ``cause`` is the id of the action it
answers. Accepted inputs:

* a session directory as the file store writes it (``sessions/<sid>/events/<id>.json``): the
  ``<sid>`` directory, its ``events`` directory, or a ``sessions`` directory holding several;
* a JSON file with an array of events, or an object with such an array under ``events``,
  ``trajectory`` or ``history`` (exported trajectories);
* the evaluation harness's ``output.jsonl``: one run a line, ``{"instance_id", "instruction",
  "history", "test_result", "metadata", ...}`` where ``history`` is either an array of events or,
  as in 0.9.x, an array of ``[action, observation]`` pairs.

Mapping to events (``goal_id`` = the session id or ``instance_id``):

* ``goal``: the first user ``message`` action (else the run's ``instruction``);
* ``step``: an action joined with the observation that names it as ``cause``: ``tool`` = the action
  type (``run``, ``run_ipython``, ``read``, ``write``, ``browse``, ``browse_interactive``,
  ``delegate``, ...), ``args`` = its ``args`` without bookkeeping fields (``thought``, ``blocking``,
  ``keep_prompt``, ``is_confirmed``, ``security_risk``, ...), ``thought`` = ``args.thought``,
  ``output`` = the observation's ``content``, ``exit_code`` = ``extras.exit_code`` (command runs),
  ``error`` = the content of an ``error`` observation, or of a browser observation with
  ``extras.error``. An action that never got an observation becomes a step with an empty output;
* ``message``: later user messages, agent messages, and ``finish``/``reject`` (their thought or
  outputs), as assistant messages;
* ``context_compressed``: ``summarize`` / ``condensation`` actions (the agent condensed its history);
* skipped: agent-state changes, null actions/observations, task-list bookkeeping.

Metadata: ``final_state`` (the last agent state), ``finished`` (a ``finish`` action was taken), and
for evaluation runs ``instance_id``, ``agent_class``, ``model_name``, ``accumulated_cost`` and
``reward`` (1.0/0.0) when ``test_result`` says whether the instance was ``resolved``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._base import Trajectory
from ._common import (
    EventBuilder,
    describe,
    error,
    join,
    json_lines,
    load_json,
    read_text,
    safe_id,
    want_list,
    want_map,
)

__all__ = ["FORMAT", "read", "sniff"]

#: The name this importer is registered under.
FORMAT = "openhands"

_SNIFF_LIMIT = 256 << 20
_EVENT_FILE = re.compile(r"^(\d+)\.json$")
#: Action args that describe how to run the action, not what it does.
_BOOKKEEPING = frozenset(
    {"thought", "blocking", "keep_prompt", "is_confirmed", "security_risk", "kernel_init_code",
     "confirmation_state", "hidden", "wait_for_response", "images_urls", "image_urls"}
)  # fmt: skip
_SKIPPED_ACTIONS = frozenset(
    {"null", "change_agent_state", "add_task", "modify_task", "initialize", "start", "pause", "resume",
     "stop", "recall", "system"}
)  # fmt: skip
_COMPRESSED = frozenset({"summarize", "condensation"})
_ENDS = frozenset({"finish", "reject"})
_RUN_KEYS = frozenset({"instance_id", "instruction", "history", "test_result"})


def sniff(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is an OpenHands session directory, event array or evaluation output. Never raises."""
    try:
        p = Path(path)
        if p.is_dir():
            return bool(_session_dirs(p))
        if not p.is_file() or p.stat().st_size > _SNIFF_LIMIT:
            return False
        text = p.read_text(encoding="utf-8-sig")
        try:
            data = json.loads(text)
        except ValueError:
            first = next((line for line in text.splitlines() if line.strip()), "")
            data = json.loads(first)
            return isinstance(data, dict) and _is_run(data)
        if isinstance(data, dict):
            if _is_run(data):
                return True
            data = next((data[k] for k in ("events", "trajectory", "history") if k in data), None)
        return isinstance(data, list) and bool(data) and _is_event(data[0])
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False


def _is_event(obj: Any) -> bool:
    # An OpenHands event is an action or an observation, never both (a SWE-agent turn has both keys).
    if not isinstance(obj, dict) or "role" in obj or ("action" in obj) == ("observation" in obj):
        return False
    return isinstance(obj.get("action", obj.get("observation")), str)


def _is_run(obj: Mapping[str, Any]) -> bool:
    history = obj.get("history")
    return "history" in obj and len(_RUN_KEYS & obj.keys()) >= 2 and isinstance(history, list)


def _session_dirs(p: Path) -> list[Path]:
    """Directories holding ``<n>.json`` event files: ``p/events``, ``p`` itself, or ``p/*/events``."""

    def has_events(d: Path) -> bool:
        return d.is_dir() and any(_EVENT_FILE.match(f.name) for f in d.iterdir())

    if has_events(p / "events"):
        return [p / "events"]
    if has_events(p):
        return [p]
    return sorted(d / "events" for d in p.iterdir() if has_events(d / "events"))


def read(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Read every OpenHands session/run at ``path`` (a directory or a file; see the module docstring).

    Raises:
        ValidationError: malformed JSON or an unexpected layout; the message names the file (and the
            line for JSONL) and the JSON path of the bad value (``.field``).
        OSError: a file cannot be opened.
    """
    p = Path(path)
    if p.is_dir():
        dirs = _session_dirs(p)
        if not dirs:
            raise error(p, None, "no OpenHands events here (expected <n>.json files or an events/ directory)")
        for events_dir in dirs:
            yield _read_session_dir(events_dir)
        return
    text = read_text(p)
    try:
        data = json.loads(text)
    except ValueError:
        yield from _read_jsonl(p, text)
        return
    name = safe_id(p.name.removesuffix(".json"))
    if isinstance(data, Mapping):
        if _is_run(data):
            yield _read_run(p, data, "", name)
            return
        key = next((k for k in ("events", "trajectory", "history") if k in data), None)
        if key is None:
            raise error(p, None, "expected an array of OpenHands events or an object with 'events'")
        yield _convert(p, want_list(p, data[key], key, "an array of events"), key, name, {})
        return
    yield _convert(p, want_list(p, data, "", "an array of events"), "", name, {})


def _read_session_dir(events_dir: Path) -> Trajectory:
    session = events_dir.parent if events_dir.name == "events" else events_dir
    files = sorted(
        ((int(m.group(1)), f) for f in events_dir.iterdir() if (m := _EVENT_FILE.match(f.name))),
        key=lambda item: item[0],
    )
    events: list[Any] = []
    for _, f in files:
        event = load_json(f)
        want_map(f, event, "", "an OpenHands event object")
        events.append(event)
    # Errors in the converted stream name the directory and the event's file as the place.
    return _convert(events_dir, events, "", safe_id(session.name), {}, files=[f.name for _, f in files])


def _read_jsonl(p: Path, text: str) -> Iterator[Trajectory]:
    for number, obj in json_lines(p, text):
        run = want_map(p, obj, f"line {number}", "an evaluation run object")
        if not _is_run(run):
            raise error(p, f"line {number}", "expected an evaluation run with 'history' and 'instance_id'")
        yield _read_run(p, run, f"line {number}", f"{safe_id(p.stem)}-{number}")


def _read_run(p: Path, run: Mapping[str, Any], where: str, fallback: str) -> Trajectory:
    instance = run.get("instance_id")
    traj_id = safe_id(str(instance)) if isinstance(instance, (str, int)) and str(instance) else fallback
    meta: dict[str, Any] = {}
    if instance is not None:
        meta["instance_id"] = instance
    metadata = run.get("metadata")
    if isinstance(metadata, Mapping):
        for key in ("agent_class", "model_name"):
            if isinstance(metadata.get(key), str):
                meta[key] = metadata[key]
    metrics = run.get("metrics")
    if isinstance(metrics, Mapping) and isinstance(metrics.get("accumulated_cost"), (int, float)):
        meta["accumulated_cost"] = float(metrics["accumulated_cost"])
    resolved = _resolved(run.get("test_result"))
    if resolved is not None:
        meta["reward"] = 1.0 if resolved else 0.0
    here = join(where, "history") if where else "history"
    history = want_list(p, run.get("history"), here, "an array of events or [action, observation] pairs")
    events: list[Any] = []
    for i, item in enumerate(history):
        if isinstance(item, list):
            events.extend(_unpair(p, item, join(here, i), i))
        else:
            events.append(item)
    instruction = run.get("instruction")
    return _convert(
        p, events, here, traj_id, meta, instruction=instruction if isinstance(instruction, str) else None
    )


def _resolved(result: Any) -> bool | None:
    if not isinstance(result, Mapping):
        return None
    for holder in (result, result.get("report")):
        if isinstance(holder, Mapping) and isinstance(holder.get("resolved"), bool):
            return bool(holder["resolved"])
    return None


def _unpair(p: Path, pair: list[Any], where: str, index: int) -> list[Mapping[str, Any]]:
    """An ``[action, observation]`` pair as two events, the observation caused by the action."""
    if len(pair) != 2:
        raise error(p, where, f"expected an [action, observation] pair, got {len(pair)} items")
    action = dict(want_map(p, pair[0], join(where, 0), "an action object"))
    observation = dict(want_map(p, pair[1], join(where, 1), "an observation object"))
    # Pairs from the evaluation harness may lack ids (NullAction, NullObservation): give the pair
    # its own so the observation can name its action.
    if not isinstance(action.get("id"), int):
        action["id"] = -1 - index
    observation["cause"] = action["id"]
    return [action, observation]


class _Pending:
    __slots__ = ("args", "thought", "tool", "ts", "where")

    def __init__(self, tool: str, args: dict[str, Any], thought: str, ts: Any, where: str) -> None:
        self.tool, self.args, self.thought, self.ts, self.where = tool, args, thought, ts, where


def _convert(  # noqa: C901 - one dispatch over the event kinds reads best in one place
    p: Path,
    events: list[Any],
    base: str,
    traj_id: str,
    meta: dict[str, Any],
    *,
    instruction: str | None = None,
    files: list[str] | None = None,
) -> Trajectory:
    def place(i: int) -> str:
        return files[i] if files is not None else join(base, i)

    parsed: list[Mapping[str, Any]] = [
        want_map(p, e, place(i), "an OpenHands event object") for i, e in enumerate(events)
    ]
    goal_index = next(
        (i for i, e in enumerate(parsed) if e.get("action") == "message" and e.get("source") == "user"), None
    )
    goal = _message_text(p, parsed[goal_index], place(goal_index)) if goal_index is not None else instruction
    if not goal or not goal.strip():
        raise error(p, base or None, "no goal: no user message and no instruction")
    out = EventBuilder(p, traj_id)
    first_ts = parsed[goal_index].get("timestamp") if goal_index is not None else None
    out.add(_with_ts({"type": "goal", "description": goal.strip()}, first_ts), place(goal_index or 0))
    pending: dict[Any, _Pending] = {}
    final_state: str | None = None
    finished = False
    for i, event in enumerate(parsed):
        here = place(i)
        if i == goal_index:
            continue
        if "action" in event:
            kind = event.get("action")
            if not isinstance(kind, str):
                raise error(p, join(here, "action"), f"expected a string, got {describe(kind)}")
            args = event.get("args") or {}
            args = want_map(p, args, join(here, "args"))
            if kind in _SKIPPED_ACTIONS:
                continue
            if kind == "message":
                role = "user" if event.get("source") == "user" else "assistant"
                text = _message_text(p, event, here)
                if text.strip():
                    out.add(
                        _with_ts({"type": "message", "role": role, "content": text}, event.get("timestamp")),
                        here,
                    )
            elif kind in _COMPRESSED:
                out.add(_with_ts({"type": "context_compressed"}, event.get("timestamp")), here)
            elif kind in _ENDS:
                finished = finished or kind == "finish"
                text = _end_text(args)
                if text:
                    out.add(
                        _with_ts(
                            {"type": "message", "role": "assistant", "content": text}, event.get("timestamp")
                        ),
                        here,
                    )
            else:
                thought = args.get("thought")
                clean = {k: v for k, v in args.items() if k not in _BOOKKEEPING}
                pending[event.get("id")] = _Pending(
                    kind, clean, thought if isinstance(thought, str) else "", event.get("timestamp"), here
                )
        elif "observation" in event:
            kind = event.get("observation")
            if kind == "agent_state_changed":
                extras = event.get("extras")
                if isinstance(extras, Mapping) and isinstance(extras.get("agent_state"), str):
                    final_state = extras["agent_state"]
                continue
            cause = event.get("cause")
            action = pending.pop(cause, None) if cause is not None else None
            if action is None:
                continue  # null observations, and outputs of actions that carry nothing to judge
            content = event.get("content", "")
            if not isinstance(content, str):
                raise error(p, join(here, "content"), f"expected a string, got {describe(content)}")
            out.add(_step(p, action, event, content, here), here)
        else:
            raise error(p, here, "expected an OpenHands event with 'action' or 'observation'")
    for action in pending.values():
        out.add(_with_ts(_wire_step(action, "", None, None), action.ts), action.where)
    meta = {**meta, "finished": finished}
    if final_state is not None:
        meta["final_state"] = final_state
    return Trajectory(id=traj_id, events=tuple(out.events), source=FORMAT, metadata=meta)


def _message_text(p: Path, event: Mapping[str, Any], here: str) -> str:
    args = event.get("args") or {}
    args = want_map(p, args, join(here, "args"))
    content = args.get("content", event.get("message", ""))
    if not isinstance(content, str):
        raise error(p, join(here, "args.content"), f"expected a string, got {describe(content)}")
    return content


def _end_text(args: Mapping[str, Any]) -> str:
    thought = args.get("thought")
    if isinstance(thought, str) and thought.strip():
        return thought
    outputs = args.get("outputs")
    if isinstance(outputs, Mapping) and outputs:
        return json.dumps(outputs, sort_keys=True, default=str)
    return ""


def _step(p: Path, action: _Pending, event: Mapping[str, Any], content: str, here: str) -> dict[str, Any]:
    extras = event.get("extras") or {}
    extras = want_map(p, extras, join(here, "extras"))
    code = extras.get("exit_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise error(p, join(here, "extras.exit_code"), f"expected an integer, got {describe(code)}")
    err: str | None = None
    if event.get("observation") == "error" or extras.get("error") is True:
        err = content or str(extras.get("last_browser_action_error") or "error")
    return _with_ts(_wire_step(action, content, code, err), event.get("timestamp", action.ts))


def _wire_step(action: _Pending, output: str, code: int | None, err: str | None) -> dict[str, Any]:
    return {
        "type": "step",
        "tool": action.tool,
        "args": action.args,
        "output": output,
        "exit_code": code,
        "error": err,
        "thought": action.thought,
    }


def _with_ts(wire: dict[str, Any], ts: Any) -> dict[str, Any]:
    # OpenHands writes naive ISO local times; the wire schema reads naive as UTC, which keeps the
    # spacing between events right (all goalkeeper needs) even if the absolute time is off by the
    # writer's UTC offset.
    if isinstance(ts, str) and ts:
        wire["ts"] = ts
    return wire
