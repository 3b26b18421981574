"""The two peer detectors the quality benchmark compares goalkeeper with, run over the same events.

* :class:`ThreeInFiveRule`: the plain "3 identical calls in the last 5" rule (CrewAI's
  ``LoopDetector(window_size=5, repetition_threshold=3)``): a call is its tool name plus its
  arguments as sorted-key JSON; it fires when any call occurs 3 or more times among the last 5.
* :class:`OpenHandsStuck`: OpenHands' own ``openhands/controller/stuck.py`` (``StuckDetector`` of
  ``openhands-ai==0.9.8``), unmodified, run over OpenHands' own event dataclasses. Install it with
  ``pip install openhands-ai==0.9.8 --no-deps`` plus ``termcolor``. Its package ``__init__`` files
  import the whole agent runtime (litellm, docker, ...), so the modules ``stuck.py`` needs are loaded
  with their packages registered as bare namespaces (no ``__init__`` executed), and
  ``openhands.controller.state.state`` is replaced by a small stand-in ``State`` holding only what
  the detector reads: ``history.get_events()`` and ``almost_stuck``.

Event conversion (goalkeeper wire event -> OpenHands 0.9.8 event):

* a ``step`` is a function call, which OpenHands' CodeAct agent runs as an IPython cell:
  ``IPythonRunCellAction(code="tool(k=v, ...)", thought=<step thought>)`` (arguments as sorted-key
  JSON values) followed by ``IPythonRunCellObservation(content=<output>, code=<same>)``, or by
  ``ErrorObservation(content=<error>)`` when the step failed. IPython cells are compared by full
  dataclass equality, so the observation's content counts (unlike ``CmdOutputObservation``, whose
  content ``stuck.py`` ignores, which would make every repeated call with the same exit code look
  stuck);
* an assistant ``message`` is ``MessageAction(content, source=agent)``; a user message is
  ``MessageAction(source=user)`` (which ``stuck.py`` filters out); system messages are dropped (they
  are not part of an OpenHands event stream).

The OpenHands controller calls ``is_stuck()`` after every event and ends the run on the first hit
(``AgentStuckInLoopError``), so a hit counts as a stop.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import types
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from goalkeeper.core.model import Event, MessageEvent, StepEvent

__all__ = ["OpenHandsStuck", "ThreeInFiveRule", "call_key", "openhands_available"]


def call_key(step: StepEvent) -> str:
    """A call's identity for the plain rule: tool name and sorted-key JSON arguments."""
    return step.tool + "|" + json.dumps(step.args, sort_keys=True, default=str)


class ThreeInFiveRule:
    """CrewAI's loop rule: any identical call 3+ times within the last 5 calls."""

    name = "3 identical in last 5"

    def __init__(self, window: int = 5, threshold: int = 3) -> None:
        self._window: deque[str] = deque(maxlen=window)
        self._threshold = threshold

    def feed(self, event: Event) -> bool:
        """Observe one event; True when the rule fires on it (only tool calls can fire it)."""
        if not isinstance(event, StepEvent):
            return False
        self._window.append(call_key(event))
        return max(Counter(self._window).values()) >= self._threshold


def fires(detector_factory: Any, events: Sequence[Event]) -> list[bool]:
    """Run a fresh detector over ``events`` and return, per event, whether it fired on it."""
    detector = detector_factory()
    return [detector.feed(event) for event in events]


# --- OpenHands ---------------------------------------------------------------------------------

_OH: dict[str, Any] = {}


def openhands_available() -> bool:
    """True when ``openhands-ai`` (0.9.8) and ``termcolor`` are importable."""
    try:
        _load_openhands()
    except ImportError:
        return False
    return True


def _namespace(name: str, path: Path) -> None:
    """Register package ``name`` as a bare namespace so its ``__init__`` never runs."""
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module


def _load_openhands() -> dict[str, Any]:
    if _OH:
        return _OH
    spec = importlib.util.find_spec("openhands")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            'openhands-ai is not installed: pip install "openhands-ai==0.9.8" --no-deps termcolor'
        )
    if importlib.util.find_spec("termcolor") is None:
        raise ImportError("OpenHands' logger needs termcolor: pip install termcolor")
    root = Path(next(iter(spec.submodule_search_locations)))
    for package in (
        "",
        "events",
        "events.action",
        "events.observation",
        "controller",
        "controller.state",
        "core",
    ):
        _namespace("openhands" + ("." + package if package else ""), root.joinpath(*package.split(".")))

    class State:
        """Stand-in for OpenHands' ``State``: the history and the ``almost_stuck`` counter."""

        def __init__(self) -> None:
            self.events: list[Any] = []
            self.almost_stuck = 0
            self.history = self

        def get_events(self) -> list[Any]:
            return self.events

    state_module = types.ModuleType("openhands.controller.state.state")
    state_module.State = State  # type: ignore[attr-defined]
    sys.modules["openhands.controller.state.state"] = state_module
    # Imported by name: the modules are untyped, and absent when the extra tool is not installed.
    stuck = importlib.import_module("openhands.controller.stuck")
    commands = importlib.import_module("openhands.events.action.commands")
    message = importlib.import_module("openhands.events.action.message")
    event = importlib.import_module("openhands.events.event")
    observations = importlib.import_module("openhands.events.observation.commands")
    error = importlib.import_module("openhands.events.observation.error")

    # stuck.py logs a warning on every hit; the benchmark reports hits itself.
    logging.getLogger("openhands").setLevel(logging.ERROR)
    _OH.update(
        State=State,
        StuckDetector=stuck.StuckDetector,
        IPythonRunCellAction=commands.IPythonRunCellAction,
        IPythonRunCellObservation=observations.IPythonRunCellObservation,
        ErrorObservation=error.ErrorObservation,
        MessageAction=message.MessageAction,
        EventSource=event.EventSource,
    )
    return _OH


def to_openhands(event: Event) -> list[Any]:
    """The OpenHands 0.9.8 events one goalkeeper event becomes (see the module docstring)."""
    oh = _load_openhands()
    if isinstance(event, StepEvent):
        call = ", ".join(
            f"{k}={json.dumps(v, sort_keys=True, default=str)}" for k, v in sorted(event.args.items())
        )
        code = f"{event.tool}({call})"
        action = oh["IPythonRunCellAction"](code=code, thought=event.thought)
        if event.error is not None:
            observation = oh["ErrorObservation"](content=event.error)
        else:
            observation = oh["IPythonRunCellObservation"](content=event.output, code=code)
        action._source = oh["EventSource"].AGENT
        observation._source = oh["EventSource"].AGENT
        return [action, observation]
    if isinstance(event, MessageEvent) and event.role in ("user", "assistant"):
        message = oh["MessageAction"](content=event.content)
        message._source = oh["EventSource"].USER if event.role == "user" else oh["EventSource"].AGENT
        return [message]
    return []


class OpenHandsStuck:
    """OpenHands' ``StuckDetector.is_stuck()`` checked after every converted event."""

    name = "OpenHands StuckDetector"

    def __init__(self) -> None:
        oh = _load_openhands()
        self._state = oh["State"]()
        self._detector = oh["StuckDetector"](self._state)

    def feed(self, event: Event) -> bool:
        """Observe one event; True when ``is_stuck()`` holds after it."""
        converted = to_openhands(event)
        if not converted:
            return False
        self._state.events.extend(converted)
        return bool(self._detector.is_stuck())
