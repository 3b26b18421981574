"""Helpers shared by the importers: reading JSON with precise errors, typed field access, text
extraction and a builder that numbers and validates the events of one trajectory.

Every error an importer raises for bad input is a :class:`~goalkeeper.errors.ValidationError` whose
message starts with the file and the place in it (``"run.traj: trajectory[3].action: expected a
string, got 42"``) and whose ``.field`` is that place (the JSON path, or ``"line N"``), so a user sees
where to look without a traceback.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .._wire import MAX_ID_LENGTH
from ..core.model import Event
from ..errors import ValidationError
from ..events import parse_event

__all__ = [
    "EventBuilder",
    "error",
    "join",
    "load_json",
    "opt_str",
    "read_text",
    "safe_id",
    "text_of",
    "want_list",
    "want_map",
]

_UNSAFE_ID = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def error(path: str | os.PathLike[str], where: str | None, message: str) -> ValidationError:
    """A ValidationError for ``path`` at ``where`` (a JSON path or ``"line N"``; ``None`` = the file)."""
    text = f"{os.fspath(path)}: {where}: {message}" if where else f"{os.fspath(path)}: {message}"
    # Built with the file in front of the place (not ValidationError's "field: message" order),
    # so the message reads like a compiler diagnostic; .field still carries the place.
    exc = ValidationError(text)
    exc.field = where or None
    return exc


def describe(value: object) -> str:
    """A short description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def join(base: str, key: str | int) -> str:
    """Append an object key or array index to a JSON path."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def read_text(path: Path) -> str:
    """The file's text (UTF-8, an optional BOM removed).

    Raises:
        ValidationError: the file is not UTF-8 (the message gives the byte offset).
        OSError: it cannot be read.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_json(path: Path, text: str | None = None) -> Any:
    """Parse the JSON document at ``path``.

    Raises:
        ValidationError: not UTF-8, or malformed JSON (``.field`` is ``"line N"``; the message gives
            line and column).
    """
    if text is None:
        text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, f"line {exc.lineno}", f"malformed JSON at column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
        raise error(path, None, f"malformed JSON: {type(exc).__name__}: {exc}") from None


def json_lines(path: Path, text: str) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line of a JSON-lines file.

    Raises:
        ValidationError: a line is malformed JSON (``.field`` is ``"line N"``).
    """
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(path, f"line {number}", f"malformed JSON at column {exc.colno}: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
            raise error(path, f"line {number}", f"malformed JSON: {type(exc).__name__}") from None


def want_map(path: Path, value: Any, where: str, what: str = "an object") -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else a ValidationError naming ``where``."""
    if not isinstance(value, Mapping):
        raise error(path, where or None, f"expected {what}, got {describe(value)}")
    return value


def want_list(path: Path, value: Any, where: str, what: str = "an array") -> list[Any]:
    """``value`` if it is a JSON array, else a ValidationError naming ``where``."""
    if not isinstance(value, list):
        raise error(path, where or None, f"expected {what}, got {describe(value)}")
    return value


def opt_str(path: Path, obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """``obj[key]`` when it is a string, ``None`` when absent or null, else a ValidationError."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise error(path, join(where, key), f"expected a string, got {describe(value)}")


def text_of(path: Path, value: Any, where: str) -> str:
    """The text of a message ``content``: a string, null, or a list of parts with ``text``.

    Raises:
        ValidationError: any other shape (``where`` names it).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts: list[str] = []
        for i, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                # Image and other non-text parts carry nothing goalkeeper can use.
            else:
                raise error(path, join(where, i), f"expected a content part, got {describe(part)}")
        return "\n".join(parts)
    raise error(path, where, f"expected a string or an array of content parts, got {describe(value)}")


def safe_id(text: str, fallback: str = "trajectory") -> str:
    """``text`` made into a valid goal id (no control characters, bounded length)."""
    cleaned = _UNSAFE_ID.sub(" ", text).strip()
    return (cleaned or fallback)[:MAX_ID_LENGTH]


class EventBuilder:
    """Accumulates the wire events of one trajectory, validated, with deterministic ids.

    Event ids are ``"<trajectory id>:<n>"`` (n = 0, 1, ...), so importing the same file twice gives
    the same events and a store's inbox recognises a re-import.
    """

    def __init__(self, path: Path, traj_id: str) -> None:
        self.path = path
        self.traj_id = traj_id
        self.events: list[Event] = []
        self._suffix_room = MAX_ID_LENGTH - len(traj_id) - 1

    def add(self, wire: dict[str, Any], where: str) -> None:
        """Validate and append one wire event (``goal_id``/``event_id`` are filled in).

        Raises:
            ValidationError: the event fails the wire schema; the error names the source place.
        """
        wire["goal_id"] = self.traj_id
        number = str(len(self.events))
        # Ids are capped at MAX_ID_LENGTH: a long trajectory id is shortened to leave room.
        prefix = self.traj_id if len(number) <= self._suffix_room else self.traj_id[: -len(number) - 1]
        wire["event_id"] = f"{prefix}:{number}"
        try:
            self.events.append(parse_event(wire))
        except ValidationError as exc:
            inner = f"{exc.field}: " if exc.field else ""
            message = str(exc)
            if exc.field and message.startswith(f"{exc.field}: "):
                message = message[len(exc.field) + 2 :]
            raise error(self.path, where or None, f"cannot be converted ({inner}{message})") from None
