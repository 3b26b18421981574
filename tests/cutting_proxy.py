"""A TCP proxy for tests that loses one reply in transit: the broker did the work, the client never hears.

``CuttingProxy`` forwards bytes between clients and a server. After :meth:`CuttingProxy.cut_on`
(``marker``), the first chunk the *server* sends that contains ``marker`` is dropped and both sides
of that connection are closed at once: the broker has executed the request (Redis put the entries
in the consumer's pending list, NATS delivered the messages to the pull request), but the reply is
lost, exactly as when a network cut or a broker restart interrupts it. The client then reconnects
to the proxy as usual (a fresh pair of connections).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from goalkeeper.bus import open_bus
from goalkeeper.ports.bus import Transport
from services import drop_bus_prefix, require, unique_name


class CuttingProxy:
    """Forward ``127.0.0.1:port`` to ``host:target_port``; cut a connection on a marked reply."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._marker: bytes | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.cut_done = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def cut_on(self, marker: bytes) -> None:
        """Drop the next server chunk containing ``marker`` and cut that connection."""
        self.cut_done.clear()
        self._marker = marker

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}

        def cut() -> None:
            for w in (client_w, server_w):
                # An abort, not a graceful close: nothing still buffered may reach either side.
                w.transport.abort()

        up = asyncio.create_task(self._pump(client_r, server_w, False, cut))
        down = asyncio.create_task(self._pump(server_r, client_w, True, cut))
        self._tasks |= {up, down}
        try:
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self._tasks -= {up, down}
            self._writers -= {client_w, server_w}
            cut()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        from_server: bool,
        cut: Callable[[], None],
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if from_server and self._marker is not None and self._marker in data:
                    self._marker = None
                    self.cuts += 1
                    cut()
                    self.cut_done.set()
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()


@contextlib.asynccontextmanager
async def proxied_buses(
    kind: str, stem: str, visibility: float
) -> AsyncIterator[tuple[CuttingProxy, Transport, Transport]]:
    """(proxy, bus straight to the ``kind`` server, bus through the proxy), one partition, on a fresh
    prefix that is deleted afterwards."""
    base = require(kind)
    parts = urlsplit(base)
    proxy = CuttingProxy(parts.hostname or "127.0.0.1", parts.port or (6379 if kind == "redis" else 4222))
    await proxy.start()
    prefix = unique_name(stem)
    options = f"partitions=1&visibility_timeout={visibility}&prefix={prefix}"
    direct = open_bus(f"{base}?{options}")
    via = open_bus(f"{parts._replace(netloc=f'127.0.0.1:{proxy.port}').geturl()}?{options}")
    try:
        await direct.start()
        await via.start()
        yield proxy, direct, via
    finally:
        with contextlib.suppress(Exception):
            await via.close()
        await proxy.close()
        await direct.close()
        await drop_bus_prefix(base, prefix, 1)
