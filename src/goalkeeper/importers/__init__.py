"""Trajectory importers: agent-run formats -> goalkeeper events, by format name or sniffed.

=================  ===============================================================================
format             what it reads
=================  ===============================================================================
``jsonl``          goalkeeper's own JSONL (wire schema v1); one trajectory per ``goal_id``
``openai-chat``    OpenAI chat messages with ``tool_calls``; tau-bench result files
``swe-agent``      SWE-agent ``.traj`` and mini-swe-agent ``.traj.json`` files
``openhands``      OpenHands event logs (session directories, event arrays, evaluation output)
=================  ===============================================================================

:func:`read_trajectories` is the entry point::

    from goalkeeper.importers import read_trajectories

    for trajectory in read_trajectories("runs/gpt-4o-airline.json"):   # format sniffed
        print(trajectory.id, len(trajectory.events), trajectory.metadata.get("reward"))

Each importer module has ``read(path) -> Iterator[Trajectory]`` and ``sniff(path) -> bool``; the
table :data:`FORMATS` maps names to modules, imported on first use. Bad input raises
:class:`~goalkeeper.errors.ValidationError` naming the file and the place in it; an unknown format,
a missing file or one no importer recognises raises :class:`~goalkeeper.errors.InvalidInputError`
(``.field`` is ``"format"`` or ``"path"``). ``docs/importers.md`` maps every format's fields.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from ..errors import InvalidInputError, ValidationError
from ._base import Trajectory

__all__ = ["FORMATS", "Format", "Trajectory", "get_importer", "read_trajectories", "sniff"]


class Format(NamedTuple):
    """One registered format."""

    module: str
    """The importer module (it has ``read(path)`` and ``sniff(path)``)."""
    description: str
    """One line for ``--help`` and error messages."""


FORMATS: dict[str, Format] = {
    "jsonl": Format("goalkeeper.importers.jsonl", "goalkeeper JSONL events (one trajectory per goal_id)"),
    "swe-agent": Format(
        "goalkeeper.importers.swe_agent", "SWE-agent .traj / mini-swe-agent .traj.json files"
    ),
    "openhands": Format("goalkeeper.importers.openhands", "OpenHands event logs and evaluation output.jsonl"),
    "openai-chat": Format(
        "goalkeeper.importers.openai_chat", "OpenAI chat messages with tool_calls; tau-bench"
    ),
}
"""Format name -> importer. Sniffing tries them in this order: the most specific layouts first,
because an OpenAI-chat reader would also accept a file of role/content messages of another tool."""


def _names() -> str:
    return ", ".join(FORMATS)


def _bad(message: str, field: str) -> InvalidInputError:
    # The message already starts with the file or the value; .field still says which argument.
    exc = InvalidInputError(message)
    exc.field = field
    return exc


def get_importer(name: str) -> ModuleType:
    """The importer module of format ``name``.

    Raises:
        InvalidInputError: no such format (``.field`` is ``"format"``; the message lists the formats).
    """
    spec = FORMATS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise _bad(f"unknown format {name!r}; known formats: {_names()}", "format")
    return importlib.import_module(spec.module)


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise _bad(f"{p}: no such file or directory", "path")
    return p


def sniff(path: str | os.PathLike[str]) -> str:
    """The name of the format of ``path``, recognised by its content.

    Raises:
        InvalidInputError: the path does not exist, or no importer recognises it (``.field`` is
            ``"path"``; the message lists the formats and suggests ``--format``).
    """
    p = _check_path(path)
    for name in FORMATS:
        if get_importer(name).sniff(p):
            return name
    what = "directory" if p.is_dir() else "file"
    raise _bad(
        f"{p}: cannot tell the format of this {what}; known formats: {_names()} (name one with --format)",
        "path",
    )


def read_trajectories(path: str | os.PathLike[str], format: str | None = None) -> Iterator[Trajectory]:
    """Read the trajectories in ``path``, in the given ``format`` or the sniffed one.

    The path is checked and the format resolved when this is called; the trajectories are then read
    as the iterator is consumed.

    Raises:
        InvalidInputError: the path does not exist, the format is unknown or cannot be sniffed.
        ValidationError: (while iterating) the content is malformed; the message names the file and
            the place (line and/or JSON path) and ``.field`` the place.
        OSError: (while iterating) a file cannot be read.
    """
    p = _check_path(path)
    importer = get_importer(format) if format is not None else get_importer(sniff(p))
    return _uniform(p, importer.read(p))


def _uniform(p: Path, reader: Iterator[Trajectory]) -> Iterator[Trajectory]:
    """Re-word errors as ``<file>: <place>: <message>`` whichever importer raised them.

    ValidationError's own format puts the field first (``"<field>: <message>"``); an importer that
    prefixes the file inside the message then reads ``"<field>: <file>: ..."``. One order for every
    format makes the CLI's messages predictable.
    """
    try:
        yield from reader
    except ValidationError as exc:
        field = exc.field
        text = str(exc)
        head = f"{field}: {p}: "
        if field and text.startswith(head):
            err = ValidationError(f"{p}: {field}: {text[len(head) :]}")
            err.field = field
            raise err from None
        raise
