"""Fixtures of the end-to-end tests: one fresh namespace per pairing (see ``e2e_pairings``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_pairings import BUS_OPTIONS, PAIRINGS, Pairing, cleanup

from services import require, unique_name


@pytest.fixture(params=PAIRINGS)
async def pairing(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pairing]:
    """A fresh namespace for one pairing."""
    kind: str = request.param
    prefix = unique_name("gke2e")
    if kind == "embedded":
        db = tmp_path / "goalkeeper.db"
        yield Pairing(kind, f"sqlite:///{db}", f"memory://{db}?{BUS_OPTIONS}&prefix={prefix}", tmp_path)
        return
    broker = require("redis" if kind.startswith("redis") else "nats")
    postgres = require("postgres")
    schema = unique_name("gke2e")
    pair = Pairing(
        kind,
        f"{postgres}?schema={schema}",
        f"{broker}?{BUS_OPTIONS}&prefix={prefix}",
        tmp_path,
    )
    try:
        yield pair
    finally:
        await cleanup(pair, prefix, schema)
