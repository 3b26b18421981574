"""The Typer app of the ``goalkeeper`` command: :func:`build_app`.

Imported by :func:`goalkeeper.cli.main` only once Typer and Rich are known to be importable. The app
is built by a function (no module-level app object), so tests and embedders get a fresh one.
"""

from __future__ import annotations

import platform
from typing import Annotated

import typer

from .. import __version__
from ._analyze import analyze
from ._common import print_json
from ._goals import build_goals_app
from ._import import import_command

__all__ = ["build_app", "version"]


def version(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Print goalkeeper's version."""
    if as_json:
        print_json({"goalkeeper": __version__, "python": platform.python_version()})
    else:
        typer.echo(f"goalkeeper {__version__} (Python {platform.python_version()})")


def build_app() -> typer.Typer:
    """Build the ``goalkeeper`` Typer app with every command.

    ``serve`` and ``worker`` live in :mod:`goalkeeper.cli.serve` and :mod:`goalkeeper.cli.worker`,
    which add themselves with their ``register(app)``.
    """
    app = typer.Typer(
        name="goalkeeper",
        help="goalkeeper keeps AI agents on their goals: progress, drift, loop risk and what to do next.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.command("analyze")(analyze)
    app.command("import")(import_command)
    app.add_typer(build_goals_app(), name="goals")
    app.command("version")(version)
    # Imported here, not at the top: they belong to other parts (API server, worker) and each adds
    # its own command; their heavy dependencies are imported only when the command runs.
    from . import serve, worker

    serve.register(app)
    worker.register(app)
    return app
