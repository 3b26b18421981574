"""``goalkeeper serve``: the HTTP API, the live dashboard and an embedded worker in one process.

Zero configuration: ``goalkeeper serve`` listens on http://127.0.0.1:8000, keeps state in
``./goalkeeper.db`` (SQLite) and uses the same file as a durable embedded event queue, so nothing
but Python is needed. ``--store`` / ``--bus`` point it at PostgreSQL, Redis or NATS instead, and
``--no-worker`` serves the API only (workers run elsewhere, ``goalkeeper worker``).

Listening beyond loopback requires bearer tokens (``--token TOKEN=TENANT`` or ``GOALKEEPER_TOKENS``):
the command refuses to start otherwise (exit code 2), because an open goal API on a network lets
anyone read and steer every goal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

__all__ = ["register", "serve"]


def serve(
    host: Annotated[
        str, typer.Option("--host", envvar="GOALKEEPER_HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", envvar="GOALKEEPER_PORT", min=0, max=65535, help="TCP port.")
    ] = 8000,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar="GOALKEEPER_STORE",
            metavar="URL",
            help="State store URL (default sqlite:///goalkeeper.db).",
            show_default=False,
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option(
            "--bus",
            envvar="GOALKEEPER_BUS",
            metavar="URL",
            help="Event bus URL (default: a durable embedded queue in the SQLite store's file).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        list[str] | None,
        typer.Option(
            "--token",
            metavar="TOKEN=TENANT",
            help="Bearer token and its tenant, TOKEN=TENANT (repeatable; also GOALKEEPER_TOKENS=t1=a,t2=b).",
            show_default=False,
        ),
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the embedded worker in this process.")
    ] = True,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the dashboard in a browser once serving.")
    ] = False,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level (debug, info, warning, error).")
    ] = "info",
) -> None:
    """Serve the HTTP API and the live dashboard, with an embedded worker (zero config)."""
    try:
        import uvicorn

        from goalkeeper.api import ApiConfig, create_app
        from goalkeeper.api.app import end_streams
        from goalkeeper.api.config import check_exposure, parse_tokens
    except ImportError as exc:  # fastapi/uvicorn are the `server` extra
        typer.echo(
            f'goalkeeper serve needs the {exc.name!r} package: pip install "goalkeeper[server]"', err=True
        )
        raise typer.Exit(1) from None
    from goalkeeper._gc import freeze_startup_heap
    from goalkeeper.bus import open_bus
    from goalkeeper.errors import ConfigurationError
    from goalkeeper.stores import open_store

    try:
        base = ApiConfig.from_env(os.environ)
        tokens = dict(base.tokens)
        for spec in token or []:
            tokens.update(parse_tokens(spec))
        config = base.replace(
            store_url=store or base.store_url,
            bus_url=bus or base.bus_url,
            tokens=tokens,
            embedded_worker=worker,
        )
        check_exposure(host, config)
        # Catch a bad scheme or a missing driver now, with a clear message, rather than as a
        # traceback from the server's startup. Neither call connects to anything.
        open_store(config.store_url)
        open_bus(config.resolved_bus_url())
    except ConfigurationError as exc:
        typer.echo(f"goalkeeper serve: {exc}", err=True)
        raise typer.Exit(2) from None

    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    typer.echo(f"goalkeeper: dashboard and API on {url}  (store {config.masked_store_url()})", err=True)
    if open_browser:
        _open_later(url)
    app = create_app(config)
    server = _graceful_server_class(uvicorn.Server, lambda: end_streams(app))(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            proxy_headers=False,
            # Open SSE streams never end by themselves: give them a few seconds, then close them.
            timeout_graceful_shutdown=3,
        )
    )
    freeze_startup_heap()
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 3 when the lifespan fails (store unreachable...)
        typer.echo(f"goalkeeper serve: could not start (exit status {exc.code}); see the log above", err=True)
        raise typer.Exit(1) from None
    if not server.started:
        # uvicorn logs why (port in use, lifespan failure) and returns instead of raising.
        raise typer.Exit(1)


def _graceful_server_class(base: type[Any], before_shutdown: Callable[[], None]) -> type[Any]:
    """``uvicorn.Server`` that ends SSE streams first on shutdown and then exits normally.

    uvicorn re-raises the signal once it has shut down, so the process dies of it (exit 130 or
    -15). ``goalkeeper serve`` finishes its work on that signal (the worker drains, the store is
    closed), so, like ``goalkeeper worker``, it reports success: exit code 0.
    """

    class GracefulServer(base):  # type: ignore[misc]
        async def shutdown(self, sockets: Any = None) -> None:
            before_shutdown()
            await super().shutdown(sockets=sockets)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                try:
                    yield
                finally:
                    # Forget the signals so that uvicorn has nothing to re-raise.
                    getattr(self, "_captured_signals", []).clear()

    return GracefulServer


def _open_later(url: str) -> None:
    """Open ``url`` in a browser a moment after startup (the server must be listening first)."""
    import threading
    import webbrowser

    threading.Timer(1.0, webbrowser.open, args=(url,)).start()


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the ``goalkeeper`` Typer app."""
    app.command("serve")(serve)
