"""``goalkeeper goals list|show|close`` against a real SQLite store written like the worker does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from goalkeeper.cli._app import build_app
from goalkeeper.core.model import GoalEvent, StepEvent
from goalkeeper.core.session import GoalSession
from goalkeeper.events import suggestion_to_dict
from goalkeeper.ports.store import Commit
from goalkeeper.stores import open_store


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def _events(goal_id: str, n_loops: int) -> list[GoalEvent | StepEvent]:
    events: list[GoalEvent | StepEvent] = [
        GoalEvent(
            goal_id=goal_id,
            event_id=f"{goal_id}-0",
            ts=100.0,
            description="Book a flight to Seattle",
            plan=("search flights", "book the flight"),
        )
    ]
    for i in range(n_loops):
        events.append(
            StepEvent(
                goal_id=goal_id,
                event_id=f"{goal_id}-{i + 1}",
                ts=101.0 + i,
                tool="search_flights",
                args={"to": "SEA"},
                output="no flights",
                error="no results",
            )
        )
    return events


async def _populate(url: str) -> None:
    async with open_store(url) as store:
        for goal_id, loops in (("alpha", 6), ("teamA/beta", 1), ("gamma", 0)):
            session = GoalSession(goal_id)
            points, suggestions = [], []
            events = _events(goal_id, loops)
            for event in events:
                outcome = session.apply(event)
                m = outcome.metrics
                points.append(
                    {
                        "event_id": event.event_id,
                        "event_type": event.type.value,
                        "ts": event.ts or 0.0,
                        "progress": m.current_progress,
                        "drift_score": m.drift_score,
                        "loop_risk": m.loop_risk,
                        "action": outcome.recommended_action,
                        "flags": ["loop"] if m.loop_risk > 0.5 else [],
                    }
                )
                suggestions += [suggestion_to_dict(s) for s in outcome.suggestions]
            await store.commit(
                Commit(goal_id, 0, session.snapshot(), [e.event_id for e in events], suggestions, points)
            )
        await store.set_goal_status("gamma", "closed")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'gk.db'}"
    asyncio.run(_populate(url))
    return url


def test_list_all_and_filtered(store_url: str) -> None:
    code, out, _ = run("goals", "list", "--store", store_url, "--json")
    assert code == 0
    goals = json.loads(out)["goals"]
    assert [(g["goal_id"], g["status"], g["version"]) for g in goals] == [
        ("alpha", "active", 1),
        ("gamma", "closed", 1),
        ("teamA/beta", "active", 1),
    ]
    code, out, _ = run("goals", "list", "--store", store_url, "--status", "closed", "--json")
    assert [g["goal_id"] for g in json.loads(out)["goals"]] == ["gamma"]
    code, out, _ = run("goals", "list", "--store", store_url, "--prefix", "teamA/", "--json")
    assert [g["goal_id"] for g in json.loads(out)["goals"]] == ["teamA/beta"]
    code, out, _ = run("goals", "list", "--store", store_url, "--limit", "1", "--json")
    assert [g["goal_id"] for g in json.loads(out)["goals"]] == ["alpha"]
    code, out, _ = run("goals", "list", "--store", store_url)
    assert code == 0
    assert "goals (3)" in out
    assert "teamA/beta" in out
    assert "closed" in out


def test_store_comes_from_the_environment(store_url: str) -> None:
    code, out, _ = run("goals", "list", "--json", env={"GOALKEEPER_STORE": store_url})
    assert code == 0
    assert len(json.loads(out)["goals"]) == 3


def test_show_restores_the_session_and_lists_history_and_suggestions(store_url: str) -> None:
    code, out, _ = run("goals", "show", "alpha", "--store", store_url, "--json")
    assert code == 0
    data = json.loads(out)
    session = GoalSession("alpha")
    for event in _events("alpha", 6):
        session.apply(event)
    assert data["goal"] == "Book a flight to Seattle"
    assert data["recommended_action"] == session.recommended_action
    assert data["metrics"] == session.metrics.to_dict()
    assert [p["seq"] for p in data["history"]] == list(range(1, 8))
    assert data["history"][-1]["event_id"] == "alpha-6"
    assert data["suggestions"]
    assert all(s["goal_id"] == "alpha" for s in data["suggestions"])
    assert all(s["delivered"] is False for s in data["suggestions"])
    code, out, _ = run("goals", "show", "alpha", "--store", store_url, "--history", "2", "--json")
    assert [p["seq"] for p in json.loads(out)["history"]] == [6, 7]
    code, out, _ = run("goals", "show", "alpha", "--store", store_url)
    assert code == 0
    assert "Book a flight to Seattle" in out
    assert "recent metrics" in out
    assert "recent suggestions" in out


def test_close_and_archive(store_url: str) -> None:
    code, out, _ = run("goals", "close", "alpha", "--store", store_url)
    assert code == 0
    assert "goal alpha closed" in out
    code, out, _ = run("goals", "close", "teamA/beta", "--store", store_url, "--archive")
    assert "goal teamA/beta archived" in out
    code, out, _ = run("goals", "list", "--store", store_url, "--json")
    assert {g["goal_id"]: g["status"] for g in json.loads(out)["goals"]} == {
        "alpha": "closed",
        "gamma": "closed",
        "teamA/beta": "archived",
    }


def test_unknown_goal_is_a_usage_error(store_url: str) -> None:
    for args in (("show", "nope"), ("close", "nope")):
        code, out, err = run("goals", *args, "--store", store_url)
        assert code == 2
        assert "no goal with id 'nope'" in err
        assert out == ""


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "typo.db"
    code, _, err = run("goals", "list", "--store", f"sqlite:///{db}")
    assert code == 2
    assert "no goalkeeper database at" in err
    assert not db.exists()


def test_bad_store_url_is_a_usage_error() -> None:
    code, _, err = run("goals", "list", "--store", "sqlit:///x.db")
    assert code == 2
    assert "Did you mean sqlite://" in err


def test_memory_store_lists_nothing() -> None:
    code, out, _ = run("goals", "list", "--store", "memory://", "--json")
    assert code == 0
    assert json.loads(out) == {"goals": []}


def test_unreadable_stored_state_is_a_runtime_failure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"

    async def write() -> None:
        async with open_store(url) as store:
            await store.commit(Commit("odd", 0, {"kind": "SomethingElse", "schema": 99}))

    asyncio.run(write())
    code, _, err = run("goals", "show", "odd", "--store", url)
    assert code == 1
    assert "stored goal state cannot be read" in err
    assert "Traceback" not in err


@pytest.mark.postgres
def test_goals_on_postgresql() -> None:
    import psycopg

    from services import require, unique_name

    base = require("postgres")
    schema = unique_name("gkcli")
    url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    try:
        asyncio.run(_populate(url))
        code, out, _ = run("goals", "list", "--store", url, "--status", "active", "--json")
        assert code == 0
        assert [g["goal_id"] for g in json.loads(out)["goals"]] == ["alpha", "teamA/beta"]
        code, _, _ = run("goals", "close", "alpha", "--store", url)
        assert code == 0
        code, out, _ = run("goals", "show", "alpha", "--store", url, "--json")
        assert json.loads(out)["status"] == "closed"
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
