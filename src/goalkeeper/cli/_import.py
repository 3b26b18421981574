"""``goalkeeper import FILE... [-o OUT]``: convert trajectories to goalkeeper JSONL.

The output is wire schema v1, one event a line, ready for ``goalkeeper analyze``, ``POST /v1/events``
or :func:`goalkeeper.events.read_jsonl`. Event ids are deterministic, so importing the same run twice
and posting both is harmless (the second post is recognised as duplicates).

An output file is written to a temporary file next to it and renamed into place at the end, so a
failure half-way (a malformed input) never leaves a truncated file behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, TextIO

import typer

from ..events import write_jsonl
from ..importers import Trajectory, get_importer
from ._common import FilesArgument, FormatOption, err_console, read_inputs, reporting

__all__ = ["import_command"]


def import_command(
    files: FilesArgument,
    fmt: FormatOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of stdout.", show_default=False),
    ] = None,
) -> None:
    """Convert trajectories (SWE-agent, OpenHands, OpenAI chat/tau-bench...) to goalkeeper JSONL."""
    with reporting():
        if fmt is not None:
            get_importer(fmt)
        loaded = read_inputs(files, fmt)
    events = sum(len(t.events) for _, t in loaded)
    if output is None:
        _write(sys.stdout, loaded)
        sys.stdout.flush()
    else:
        with reporting():
            _write_atomic(output, loaded)
    where = "stdout" if output is None else str(output)
    err_console().print(f"imported {len(loaded)} trajectories, {events} events -> {where}", markup=False)


def _write(fp: TextIO, loaded: list[tuple[str, Trajectory]]) -> None:
    for _, trajectory in loaded:
        write_jsonl(trajectory.events, fp)


def _write_atomic(output: Path, loaded: list[tuple[str, Trajectory]]) -> None:
    directory = output.parent if str(output.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fp:
            _write(fp, loaded)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
