"""Test helper: a real goalkeeper server in a background thread, for testing code that uses the client.

::

    from goalkeeper.client import GoalkeeperClient
    from goalkeeper.client.testing import running_server

    def test_my_agent(tmp_path):
        with running_server(store_url=f"sqlite:///{tmp_path / 'gk.db'}") as url:
            with GoalkeeperClient(url) as gk:
                ...

The server is the one ``goalkeeper serve`` runs (API + embedded worker), on a free loopback port,
in its own thread and event loop, so blocking clients can call it. Needs the ``server`` extra.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ConfigurationError

__all__ = ["free_port", "running_server"]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(*, startup_timeout: float = 30.0, **config: Any) -> Iterator[str]:
    """Run a goalkeeper server in a thread; yield its base URL; stop it on exit.

    Args:
        startup_timeout: seconds to wait for the server to accept connections.
        **config: fields of :class:`goalkeeper.api.ApiConfig` (``store_url``, ``tokens``, ...).

    Raises:
        ConfigurationError: the ``server`` extra is missing, a bad config field, or the server did
            not start in time.
    """
    try:
        import uvicorn

        from ..api import ApiConfig, create_app
    except ImportError as exc:
        raise ConfigurationError(
            f'running a test server needs the server extra: pip install "goalkeeper[server]" ({exc})'
        ) from exc
    try:
        app = create_app(ApiConfig(**config))
    except TypeError as exc:
        raise ConfigurationError(f"running_server: {exc}") from None
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve()), name=f"goalkeeper-test-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ConfigurationError(
                f"the test server on port {port} did not start within {startup_timeout}s"
            )
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
