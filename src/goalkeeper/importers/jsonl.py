"""goalkeeper's own JSONL (wire schema v1, one event a line) -> trajectories, one per ``goal_id``.

A file may interleave several goals; each becomes one :class:`~goalkeeper.importers._base.Trajectory`
(id = the ``goal_id``) holding that goal's events in file order, and trajectories come out in the order
their goals first appear. Events without an ``event_id`` get a deterministic one
(``"<goal_id>:line<N>"``), so importing the same file twice yields the same events.

Errors: a bad line raises :class:`~goalkeeper.errors.ValidationError`; the message names the file,
the line and the field (``"run.jsonl: line 7: values.progress: expected a finite number..."``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .._wire import MAX_ID_LENGTH
from ..core.model import Event
from ..errors import ValidationError
from ..events import parse_event
from ._base import Trajectory
from ._common import error, json_lines, read_text

__all__ = ["FORMAT", "read", "sniff"]

#: The name this importer is registered under.
FORMAT = "jsonl"

_SNIFF_BYTES = 1 << 20


def sniff(path: str | os.PathLike[str]) -> bool:
    """True if the first non-blank line of ``path`` is a wire event object (``type`` and ``goal_id``).

    Never raises: unreadable or foreign content gives ``False``.
    """
    try:
        with Path(path).open(encoding="utf-8-sig") as fp:
            for line in fp:
                if line.strip():
                    obj = json.loads(line[:_SNIFF_BYTES])
                    return isinstance(obj, dict) and "type" in obj and "goal_id" in obj
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return False


def _line_id(goal_id: object, number: int) -> Callable[[], str]:
    # Cut from the left when too long: the line number at the end keeps ids unique within a file.
    return lambda: f"{goal_id}:line{number}"[-MAX_ID_LENGTH:]


def read(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Read the goalkeeper JSONL file at ``path``: one trajectory per goal, in order of appearance.

    Raises:
        ValidationError: a line is not valid JSON or fails the wire schema (the message names the
            file, the line and the field; ``.field`` is the event field).
        OSError: the file cannot be opened.
    """
    p = Path(path)
    text = read_text(p)
    goals: dict[str, list[Event]] = {}
    for number, obj in json_lines(p, text):
        goal_id = obj.get("goal_id") if isinstance(obj, dict) else None
        try:
            event = parse_event(obj, event_id_factory=_line_id(goal_id, number))
        except ValidationError as exc:
            where = f"line {number}" + (f": {exc.field}" if exc.field else "")
            message = str(exc)
            if exc.field and message.startswith(f"{exc.field}: "):
                message = message[len(exc.field) + 2 :]
            err = error(p, where, message)
            err.field = exc.field
            raise err from None
        goals.setdefault(event.goal_id, []).append(event)
    for goal_id, events in goals.items():
        yield Trajectory(id=goal_id, events=tuple(events), source=FORMAT, metadata={})
