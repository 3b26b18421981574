"""The ``goalkeeper`` command line.

``goalkeeper analyze``, ``import``, ``goals``, ``version``, ``serve`` and ``worker`` (``docs/cli.md``).
The command line needs the ``cli`` extra (Typer and Rich); this module imports neither at the top,
so :func:`main` can say how to install them instead of failing with a traceback. The Typer app is
built by :func:`goalkeeper.cli._app.build_app`.

Exit codes: 0 success, 1 runtime failure (a backend failed, a file could not be written, a missing
optional package), 2 bad input or usage (a missing file, an unknown format, an invalid event: the
message names the file, the line and the field).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "INSTALL_HINT", "main"]

EXIT_OK = 0
"""Success."""
EXIT_FAILURE = 1
"""A runtime failure: a backend failed, an output could not be written, an optional package is missing."""
EXIT_USAGE = 2
"""Bad input or usage: missing file, unknown format, invalid events, bad option (Click's code too)."""

INSTALL_HINT = 'the goalkeeper command line needs Typer and Rich: pip install "goalkeeper[cli]"'
"""What :func:`main` prints when the ``cli`` extra is not installed."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``goalkeeper`` command line (the console script) and exit with its code.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
    """
    try:
        from ._app import build_app
    except ImportError as exc:
        if exc.name not in ("typer", "rich", "click") and not str(exc.name or "").startswith(
            ("typer.", "rich.")
        ):
            raise
        print(f"goalkeeper: {INSTALL_HINT}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    app = build_app()
    app(args=list(argv) if argv is not None else None, prog_name="goalkeeper")
