"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

The page is loaded, events are posted over HTTP, and the goal list, the charts, the step log and
the suggestion list must update live (from the SSE streams, without reloading). A screenshot is
saved under the test's tmp_path (its path is printed). Runs under ``CI=true``; on a developer
machine without Chromium it is skipped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import live_server

CHROMIUM = os.environ.get("GOALKEEPER_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 15_000


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI=true, so the browser test must run", pytrace=False)
        pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def loop_steps(n: int) -> list[dict[str, Any]]:
    return [{"type": "step", "tool": "search_flights", "args": {"to": "CDG", "date": "2026-12-01"},
             "output": "no flights found"} for _ in range(n)]  # fmt: skip


async def test_dashboard_updates_live(browser: Any, tmp_path: Path) -> None:
    async with live_server(tmp_path) as server, httpx.AsyncClient(base_url=server.url, timeout=10) as api:
        page = await browser.new_page(viewport={"width": 1440, "height": 1000})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(server.url + "/")
        await page.wait_for_selector("#conn.conn-on", timeout=TIMEOUT_MS)  # the list stream is live
        assert await page.locator(".goal-item").count() == 0

        # A goal appears in the list live.
        plan = ["search flights to Paris", "compare prices", "book the cheapest flight", "pay"]
        r = await api.post("/v1/goals", json={"goal_id": "paris-trip", "description":
                                              "Book a flight from Boston to Paris for December 1st",
                                              "plan": plan})  # fmt: skip
        assert r.status_code == 201
        await api.post(
            "/v1/goals", json={"goal_id": "quarterly-report", "description": "Write the Q3 report"}
        )
        item = page.locator('.goal-item[data-goal-id="paris-trip"]')
        await item.wait_for(timeout=TIMEOUT_MS)
        await item.click()
        await page.wait_for_selector("#detail:not([hidden])", timeout=TIMEOUT_MS)
        await page.wait_for_function(
            "document.getElementById('d-desc').textContent.startsWith('Book a flight from Boston')",
            timeout=TIMEOUT_MS,
        )
        assert (
            await page.locator("#d-desc").inner_text()
            == "Book a flight from Boston to Paris for December 1st"
        )

        # Some healthy progress first, then a loop: the chart, log, KPIs and suggestions follow.
        subgoals = [{"type": "subgoal", "id": f"s{i}", "description": text, "status": "pending"}
                    for i, text in enumerate(plan)]  # fmt: skip
        await api.post("/v1/goals/paris-trip/events", json={"events": [
            *subgoals,
            {"type": "step", "tool": "search_flights", "args": {"to": "CDG"}, "output": "12 flights found",
             "description": "search flights to Paris"},
            {"type": "subgoal", "id": "s0", "status": "done"},
        ]})  # fmt: skip
        await page.wait_for_function(
            "document.querySelectorAll('#log-body tr').length >= 7", timeout=TIMEOUT_MS
        )
        path_before = await page.locator("#chart path.series-loop_risk").get_attribute("d")
        await api.post("/v1/goals/paris-trip/events", json={"events": loop_steps(7)})
        await page.wait_for_function(
            "document.querySelectorAll('#log-body tr').length >= 14", timeout=TIMEOUT_MS
        )
        await page.wait_for_function(
            "document.querySelectorAll('#suggestions li').length >= 2", timeout=TIMEOUT_MS
        )
        await page.wait_for_selector("#log-body tr.flagged", timeout=TIMEOUT_MS)
        await page.wait_for_function(
            "document.getElementById('k-action').textContent !== 'continue'", timeout=TIMEOUT_MS
        )

        path_after = await page.locator("#chart path.series-loop_risk").get_attribute("d")
        assert path_before
        assert path_after
        assert path_after.count("L") > path_before.count("L")
        for series in ("progress", "drift_score", "loop_risk"):
            assert await page.locator(f"#chart path.series-{series}").count() == 1
        loop_text = await page.locator("#k-loop").inner_text()
        assert loop_text.endswith("%")
        assert int(loop_text[:-1]) >= 50
        assert await page.locator("#log-body tr.flagged").count() >= 3
        assert "search_flights" in await page.locator("#log-body").inner_text()
        messages = await page.locator("#suggestions .msg").all_inner_texts()
        assert any("search_flights" in m for m in messages)
        action = await page.locator("#k-action").inner_text()
        assert action in ("ADJUST", "REPLAN", "ABORT", "adjust", "replan", "abort")
        await page.wait_for_function(
            """document.querySelector('.goal-item[data-goal-id="paris-trip"] .action').textContent
               === document.getElementById('k-action').textContent""",
            timeout=TIMEOUT_MS,
        )

        # Feedback from the page reaches the API.
        await page.locator("#suggestions li .fb button", has_text="helped").first.click()
        await page.wait_for_selector("#suggestions .sent", timeout=TIMEOUT_MS)
        log = (await api.get("/v1/goals/paris-trip/events", params={"after_seq": 14})).json()["events"]
        assert any(e["type"] == "feedback" and e["outcome"] == "helped" for e in log)

        # Hovering the chart shows the values of the nearest point.
        box = await page.locator("#chart svg").bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] / 2)
        assert "progress" in await page.locator("#chart .tip").inner_text()
        await page.mouse.move(0, 0)
        shot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"dashboard screenshot: {shot}")
        if os.environ.get("GOALKEEPER_DASHBOARD_SCREENSHOT"):  # how docs/img/dashboard.png is made
            await page.screenshot(path=os.environ["GOALKEEPER_DASHBOARD_SCREENSHOT"], full_page=True)
        assert shot.stat().st_size > 10_000
        assert errors == []


async def test_dashboard_asks_for_a_token(browser: Any, tmp_path: Path) -> None:
    tokens = {"browser-token-1": "teamA", "browser-token-2": "teamB"}
    async with live_server(tmp_path, tokens=tokens) as server, httpx.AsyncClient(base_url=server.url) as api:
        mine = {"Authorization": "Bearer browser-token-1"}
        theirs = {"Authorization": "Bearer browser-token-2"}
        await api.post("/v1/goals", json={"goal_id": "ours", "description": "our goal"}, headers=mine)
        await api.post("/v1/goals", json={"goal_id": "secret", "description": "not ours"}, headers=theirs)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(server.url + "/")
        await page.wait_for_selector("#token-dialog[open]", timeout=TIMEOUT_MS)
        await page.fill("#token-input", "browser-token-1")
        await page.click("#token-form button[type=submit]")
        await page.locator('.goal-item[data-goal-id="ours"]').wait_for(timeout=TIMEOUT_MS)
        await page.wait_for_selector("#conn.conn-on", timeout=TIMEOUT_MS)  # SSE with ?access_token=
        # Live updates reach the page through the authenticated stream; the other tenant's never do.
        await api.post("/v1/goals", json={"goal_id": "ours-2", "description": "another"}, headers=mine)
        await page.locator('.goal-item[data-goal-id="ours-2"]').wait_for(timeout=TIMEOUT_MS)
        assert await page.locator('.goal-item[data-goal-id="secret"]').count() == 0
        assert errors == []
