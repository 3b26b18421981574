"""What the commands share: the consoles, the error-to-exit-code mapping and the store option."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from ..errors import BackendError, ConfigurationError, GoalNotFound, InvalidInputError, SnapshotError
from ..importers import FORMATS, Trajectory, get_importer, read_trajectories
from . import EXIT_FAILURE, EXIT_USAGE

__all__ = [
    "DEFAULT_STORE",
    "PIPE_WIDTH",
    "FilesArgument",
    "FormatOption",
    "StoreOption",
    "err_console",
    "fail",
    "out_console",
    "print_json",
    "read_inputs",
    "reporting",
    "store_url",
]

DEFAULT_STORE = "sqlite:///goalkeeper.db"
"""The store ``goals`` uses without ``--store`` or ``GOALKEEPER_STORE`` (the one ``serve`` creates)."""

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="GOALKEEPER_STORE",
        help=f"State store URL (default {DEFAULT_STORE}).",
        show_default=False,
    ),
]


FilesArgument = Annotated[
    list[Path],
    typer.Argument(
        help="Trajectory files (or OpenHands session directories).", show_default=False, metavar="FILE"
    ),
]
"""The trajectory inputs of ``analyze`` and ``import``."""

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help=f"Input format ({', '.join(FORMATS)}); sniffed from the content when omitted.",
        show_default=False,
    ),
]
"""The input format of ``analyze`` and ``import`` (sniffed when omitted)."""


def store_url(value: str | None) -> str:
    """The store URL to use: the option, else the default."""
    return value or DEFAULT_STORE


#: Width of tables written to a pipe or file (a terminal's own width is used otherwise).
PIPE_WIDTH = 160


def out_console() -> Console:
    """The console for results (stdout). No colour codes, and a fixed width, when it is not a terminal."""
    tty = sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=False, width=None if tty else PIPE_WIDTH)


def err_console() -> Console:
    """The console for messages and progress (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int) -> NoReturn:
    """Print ``goalkeeper: error: <message>`` on stderr and exit with ``code``."""
    err_console().print(
        f"[bold red]goalkeeper: error:[/] {message}", markup=True, highlight=False, soft_wrap=True
    )
    raise typer.Exit(code)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn goalkeeper's exceptions into a one-line message and the right exit code.

    Bad input and usage (InvalidInputError, ValidationError, ConfigurationError, GoalNotFound) exit
    with 2; backend failures, unreadable stored state and I/O errors with 1. Never a traceback for an
    expected failure.
    """
    try:
        yield
    except (InvalidInputError, ConfigurationError, GoalNotFound) as exc:
        fail(_escape(str(exc)), EXIT_USAGE)
    except BackendError as exc:
        cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
        fail(_escape(f"{exc}{cause}"), EXIT_FAILURE)
    except SnapshotError as exc:  # stored state this version cannot read: not the user's input
        fail(_escape(f"stored goal state cannot be read: {exc}"), EXIT_FAILURE)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        fail(_escape(f"{where}{exc.strerror or exc}"), EXIT_FAILURE)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (no Rich formatting, so it stays parseable)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def read_inputs(files: list[Path], fmt: str | None) -> list[tuple[str, Trajectory]]:
    """Every trajectory of ``files`` as (file, trajectory), in order.

    Raises:
        InvalidInputError: a missing or unreadable file, a directory that is not an OpenHands
            session, an unknown or unrecognisable format (ValidationError: malformed content).
    """
    out: list[tuple[str, Trajectory]] = []
    for path in files:
        if path.is_dir() and fmt is None and not get_importer("openhands").sniff(path):
            raise InvalidInputError(f"{path}: is a directory (only OpenHands session directories are read)")
        try:
            out.extend((str(path), t) for t in read_trajectories(path, fmt))
        except IsADirectoryError:
            raise InvalidInputError(f"{path}: is a directory, which the {fmt} format does not read") from None
        except PermissionError as exc:
            raise InvalidInputError(f"{path}: cannot read: {exc.strerror}") from None
    return out
