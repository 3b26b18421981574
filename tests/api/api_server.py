"""Test helpers for the HTTP API: a real uvicorn server in the test's event loop, and SSE parsing.

The API is tested over real HTTP (not ``httpx.ASGITransport``, which buffers whole responses and so
cannot test Server-Sent Events). Each :class:`LiveServer` has its own SQLite file, its own embedded
worker and a free port; nothing is shared between tests.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn

from goalkeeper.api import ApiConfig, create_app
from goalkeeper.api.app import end_streams

T = TypeVar("T")

TOKENS = {"token-team-a-123": "teamA", "token-team-b-456": "teamB"}
"""Bearer tokens of the two-tenant test server."""


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A running API: its base URL, config and app (for white-box checks of the store)."""

    url: str
    config: ApiConfig
    app: Any

    @property
    def store(self) -> Any:
        """The server's open store."""
        return self.app.state.runtime.store

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An async client for this server (with a bearer token if given)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10.0, **kwargs)


class _Server(uvicorn.Server):
    """Ends the app's SSE streams before shutting down, as ``goalkeeper serve`` does."""

    async def shutdown(self, sockets: Any = None) -> None:
        end_streams(self.config.app)
        await super().shutdown(sockets=sockets)


@asynccontextmanager
async def live_server(tmp_path: Path, **overrides: Any) -> AsyncIterator[LiveServer]:
    """Run ``create_app(ApiConfig(store_url=sqlite in tmp_path, **overrides))`` on a free port."""
    overrides.setdefault("store_url", f"sqlite:///{tmp_path / 'goalkeeper.db'}")
    config = ApiConfig(**overrides)
    app = create_app(config)
    port = free_port()
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()  # re-raise the startup failure
            raise RuntimeError("uvicorn stopped during startup")
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start within 20 s")
        await asyncio.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", config, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy (the worker applies events asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {result!r})")
        await asyncio.sleep(0.05)


@dataclass
class SseMessage:
    """One Server-Sent Events message."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        """The data decoded as JSON."""
        return json.loads(self.data)


async def sse_messages(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """Parse an SSE response into messages (comment-only blocks come as messages with event ``""``)."""
    current = SseMessage()
    async for line in response.aiter_lines():
        if line == "":
            if current.data or current.comments or current.id is not None:
                if not current.data and not current.id:
                    current.event = ""
                yield current
            current = SseMessage()
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            current.event = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value
        elif name == "id":
            current.id = value


_parsers: weakref.WeakKeyDictionary[httpx.Response, AsyncIterator[SseMessage]] = weakref.WeakKeyDictionary()


async def collect(
    response: httpx.Response, predicate: Callable[[list[SseMessage]], bool], timeout: float = 10.0
) -> list[SseMessage]:
    """Read messages from an open SSE response until ``predicate(new messages)`` holds; return them."""
    got: list[SseMessage] = []
    # One parser per response, kept across calls: a response body can be iterated only once.
    messages = _parsers.get(response)
    if messages is None:
        messages = _parsers[response] = sse_messages(response)

    async def run() -> None:
        async for message in messages:
            got.append(message)
            if predicate(got):
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError as exc:
        raise AssertionError(
            f"SSE condition not met within {timeout} s; got {[(m.event, m.data[:80]) for m in got]}"
        ) from exc
    return got


def loop_steps(n: int, tool: str = "search", query: str = "flights to paris") -> list[dict[str, Any]]:
    """``n`` identical failing steps: the loop detectors flag them after a few."""
    return [{"type": "step", "tool": tool, "args": {"q": query}, "output": "no results"} for _ in range(n)]
