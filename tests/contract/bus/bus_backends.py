"""Backend parametrization of the transport contract suite (importable by other suites).

``memory`` always runs (the durable SQLite mode, so crash and restart tests mean something);
``redis`` and ``nats`` need their servers (skipped locally when absent, failing under ``CI=true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from goalkeeper.bus import open_bus
from goalkeeper.ports.bus import Transport

BUS_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("nats", id="nats", marks=pytest.mark.nats),
]

TEST_OPTIONS = "partitions=4&visibility_timeout=1&dedup_window=30"


def with_options(base: str, prefix: str, extra: str = "") -> str:
    """``base`` plus the suite's options, a unique prefix and ``extra`` (``k=v&...``)."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{TEST_OPTIONS}&prefix={prefix}" + (f"&{extra}" if extra else "")


@dataclass
class BusTarget:
    """Where a contract test publishes: ``url(extra)`` gives the URL with extra options."""

    kind: str
    base: str
    prefix: str

    def url(self, extra: str = "") -> str:
        """The bus URL with the suite's options and ``extra`` (``k=v&...``)."""
        return with_options(self.base, self.prefix, extra)


@dataclass
class Restartable:
    """A broker the test may restart: a private Redis/NATS server, or the SQLite file."""

    kind: str
    url: str
    server: Any = None

    async def restart(self, bus: Transport) -> Transport:
        """Restart the broker; return the transport to continue with.

        Redis and NATS: the server process is stopped and started again and the *same* client
        must reconnect. memory: the "broker" is the process itself, so the transport is closed
        and reopened on the same file.
        """
        if self.server is None:
            await bus.close()
            reopened = open_bus(self.url)
            await reopened.start()
            return reopened
        self.server.stop()
        self.server.start()
        return bus
