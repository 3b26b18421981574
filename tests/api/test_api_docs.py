"""The curl quickstart of docs/api.md runs as written against a live server."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from api_server import LiveServer, eventually

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def quickstart_posts() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Quickstart with curl", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [b.strip() for b in blocks if b.lstrip().startswith("curl -s -X POST")]
    assert len(commands) == 2, "the quickstart should create a goal and post events"
    return commands


async def test_curl_quickstart(server: LiveServer) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    outputs = []
    for command in quickstart_posts():
        command = command.replace("localhost:8000", server.url.removeprefix("http://"))
        result = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", command], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout.splitlines()[0]))
    assert outputs[0]["goal_id"] == "paris-trip"
    assert outputs[0]["version"] == 1
    assert outputs[1]["accepted"] == 6

    async def looped() -> object:
        async with server.client() as c:
            goal = (await c.get("/v1/goals/paris-trip")).json()
        return goal if goal["metrics"]["steps"] == 6 else None

    goal = await eventually(looped)
    assert goal["recommended_action"] in ("replan", "abort")  # what the docs promise the dashboard shows
    assert goal["metrics"]["loop_risk"] > 0.5
