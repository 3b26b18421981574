"""Shared helpers for tests that need a real server (PostgreSQL, Redis, NATS).

* URLs come from ``GOALKEEPER_TEST_{POSTGRES,REDIS,NATS}_URL`` (defaults: the local servers of
  ``../shared/SERVICES.md``).
* :func:`require` skips the test when the server is unreachable on a developer's machine, and
  **fails** it when ``CI=true``: CI cannot go green by skipping.
* :func:`unique_name` isolates test data by a fresh name (stream prefix, schema, key prefix) instead
  of flushing shared state.
* ``private_*`` start a private server on a free port for tests that kill or restart it; the shared
  servers are never stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

DEFAULT_URLS = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/test",
    "redis": "redis://127.0.0.1:6379/0",
    "nats": "nats://127.0.0.1:4222",
}


def in_ci() -> bool:
    """True when running under CI (``CI=true``): service tests must run, never skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def service_url(name: str) -> str:
    """The URL of the shared test server ``name`` (postgres, redis or nats)."""
    return os.environ.get(f"GOALKEEPER_TEST_{name.upper()}_URL", DEFAULT_URLS[name])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def require(name: str) -> str:
    """Return the service's URL, or skip (locally) / fail (CI) when it is unreachable."""
    url = service_url(name)
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or {"postgres": 5432, "redis": 6379, "nats": 4222}[name]
    if not port_open(host, port):
        message = f"{name} server not reachable at {host}:{port} ({url})"
        if in_ci():
            pytest.fail(f"{message}; CI=true, so service tests must run", pytrace=False)
        pytest.skip(message)
    return url


def unique_name(prefix: str = "gk") -> str:
    """A fresh, collision-free name for isolating test data (``gk_3f2a9c1e``)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def drop_bus_prefix(url: str, prefix: str, partitions: int) -> None:
    """Remove what a test left on a shared broker under ``prefix``: its Redis keys, or the NATS
    streams of its ``partitions`` partitions. Nothing to do for any other URL (the memory bus)."""
    base = url.split("?")[0]
    if url.startswith("redis"):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(base)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    elif url.startswith("nats"):
        import nats

        nc = await nats.connect(base)
        js = nc.jetstream()
        for part in range(partitions):
            with contextlib.suppress(Exception):
                await js.delete_stream(f"{prefix}_bus_{part}")
        await nc.close()


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    """Wait until ``host:port`` accepts connections, or raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout} s")


@dataclass
class PrivateServer:
    """A server process started for one test; ``stop()``/``kill()``/``start()`` restart it."""

    name: str
    port: int
    argv: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL."""
        scheme = {"redis": "redis", "nats": "nats"}[self.name]
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        # The child keeps its own copy of the descriptor; ours is closed at once (no ResourceWarning).
        with (self.workdir / f"{self.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_port(self.port)

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM), waiting for it to exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def kill(self) -> None:
        """Kill the server (SIGKILL): what a crash looks like."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        message = f"{name} is not installed"
        if in_ci():
            pytest.fail(f"{message}; CI=true, so service tests must run", pytrace=False)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateServer]:
    """A private Redis (AOF on, fsync always, so acknowledged writes survive a restart)."""
    workdir = Path(tempfile.mkdtemp(prefix="gk-redis-"))
    port = free_port()
    argv = [
        _binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir),
    ]  # fmt: skip
    server = PrivateServer("redis", port, argv, workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def private_nats() -> Iterator[PrivateServer]:
    """A private NATS server with JetStream storing in a temporary directory."""
    workdir = Path(tempfile.mkdtemp(prefix="gk-nats-"))
    port = free_port()
    argv = [_binary("nats-server"), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "js")]
    server = PrivateServer("nats", port, argv, workdir)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
