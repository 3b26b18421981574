"""Fixtures of the HTTP API tests: a live server per test (see ``api_server.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_server import TOKENS, LiveServer, live_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A zero-config server (no tokens) with an embedded worker on SQLite."""
    async with live_server(tmp_path) as live:
        yield live


@pytest.fixture
async def auth_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    """A server with two tenants: teamA and teamB."""
    async with live_server(tmp_path, tokens=TOKENS) as live:
        yield live
