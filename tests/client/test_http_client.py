"""The remote clients against the real server (``goalkeeper.api`` app + embedded worker, over HTTP).

The same scenario runs on the in-process client and on the server: the answers must be the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from goalkeeper.client import (
    AsyncGoalkeeperClient,
    AuthenticationError,
    Decision,
    GoalkeeperClient,
    LocalClient,
    RetryPolicy,
    ServiceUnavailable,
    SyncClientBase,
)
from goalkeeper.client.testing import free_port, running_server
from goalkeeper.errors import GoalError, GoalNotFound, InvalidInputError, ValidationError

GOAL = "Find the population of Paris and report it"
TOKENS = {"tok-team-a-0001": "teamA", "tok-team-b-0002": "teamB"}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(store_url=f"sqlite:///{tmp_path_factory.mktemp('server') / 'gk.db'}") as base:
        yield base


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("auth") / "gk.db"
    with running_server(store_url=f"sqlite:///{db}", tokens=TOKENS) as base:
        yield base


def scenario(gk: SyncClientBase, goal_id: str) -> list[Decision]:
    gk.create_goal(GOAL, goal_id=goal_id, plan=["search the web", "report the number"])
    out = [gk.step(goal_id, "search", {"q": "paris population"}, output="no results") for _ in range(6)]
    out.append(
        gk.record({"type": "message", "goal_id": goal_id, "role": "assistant", "content": "still looking"})
    )
    return out


def test_the_server_answers_like_the_in_process_client(url: str) -> None:
    with GoalkeeperClient(url) as remote:
        local = LocalClient()
        theirs, ours = scenario(remote, "parity"), scenario(local, "parity")
        assert [d.action for d in theirs] == [d.action for d in ours]
        assert [d.version for d in theirs] == [d.version for d in ours]
        assert [[s.suggestion_id for s in d.suggestions] for d in theirs] == [
            [s.suggestion_id for s in d.suggestions] for d in ours
        ]
        assert [d.nudge for d in theirs] == [d.nudge for d in ours]
        for a, b in zip(theirs, ours, strict=True):
            assert a.metrics == pytest.approx(b.metrics)
        goal_r, goal_l = remote.get_goal("parity"), local.get_goal("parity")
        assert (goal_r.version, goal_r.recommended_action, goal_r.plan) == (
            goal_l.version,
            goal_l.recommended_action,
            goal_l.plan,
        )
        assert set(goal_r.metrics) == set(goal_l.metrics)
        assert set(remote.task("parity")) == set(local.task("parity"))
        point_r, point_l = remote.metrics_history("parity")[-1], local.metrics_history("parity")[-1]
        assert set(point_r) == set(point_l)
        assert point_r["flags"] == point_l["flags"]
        assert [s.to_dict() for s in remote.suggestions("parity")] == [
            s.to_dict() for s in local.suggestions("parity")
        ]


def test_goal_lifecycle_and_errors_over_http(url: str) -> None:
    with GoalkeeperClient(url) as gk:
        goal = gk.create_goal(GOAL, goal_id="life", goal_state={"progress": 10})
        assert goal.status == "active"
        with pytest.raises(GoalError, match="exists"):
            gk.create_goal(GOAL, goal_id="life")
        assert gk.update_goal("life", plan=["a", "b"]).accepted == 1
        with pytest.raises(GoalNotFound):
            gk.update_goal("no-such-goal", plan=["a"])
        with pytest.raises(ValidationError) as bad:
            gk.send([{"type": "metrics", "goal_id": "life", "values": []}])
        assert bad.value.field == "events[0].values"
        readings = [
            gk.record({"type": "metrics", "goal_id": "life", "values": {"progress": v}}) for v in (4, 7, 10)
        ]
        # Progress is measured from the first reading toward the target; the last one reaches it.
        assert [d.metrics["current_progress"] for d in readings] == pytest.approx([0.0, 0.5, 1.0])
        assert [s.kind.value for s in readings[-1].suggestions] == ["goal_reached"]
        assert gk.get_goal("life").plan == ("a", "b")
        assert "life" in [g.goal_id for g in gk.list_goals("active")]
        with pytest.raises(InvalidInputError) as unknown:
            gk.feedback("no-such-suggestion", "helped")
        assert unknown.value.field == "suggestion_id"
        assert gk.close_goal("life").status == "closed"
        with pytest.raises(GoalError, match="closed"):
            gk.step("life", "search")
        assert "life" in [g.goal_id for g in gk.list_goals("closed")]


def test_a_duplicate_event_is_taken_once(url: str) -> None:
    with GoalkeeperClient(url) as gk:
        gk.create_goal(GOAL, goal_id="dupes")
        event = {"type": "step", "goal_id": "dupes", "event_id": "once", "tool": "search"}
        first = gk.record(event)
        again = gk.record(event)
        assert again.duplicate
        assert not first.duplicate
        assert again.version == first.version == gk.get_goal("dupes").version
        # A fresh client (no cursor yet) finds the old point too.
        with GoalkeeperClient(url) as other:
            assert other.record(event).version == first.version


async def test_the_async_client_over_http(url: str) -> None:
    async with AsyncGoalkeeperClient(url) as gk:
        await gk.create_goal(GOAL, goal_id="async-goal")
        actions = [
            (await gk.step("async-goal", "search", {"q": "x"}, output="none")).action for _ in range(4)
        ]
        assert actions == ["continue", "continue", "adjust", "replan"]
        replan = (await gk.suggestions("async-goal"))[-1]
        assert (await gk.feedback(replan.suggestion_id, "accepted")).accepted == 1
        assert (await gk.health())["status"] == "ok"


def test_tokens_and_tenants(auth_url: str) -> None:
    with GoalkeeperClient(auth_url) as anonymous, pytest.raises(AuthenticationError):
        anonymous.list_goals()
    with GoalkeeperClient(auth_url, token="wrong-token-xyz") as wrong, pytest.raises(AuthenticationError):
        wrong.get_goal("x")
    with (
        GoalkeeperClient(auth_url, token="tok-team-a-0001") as a,
        GoalkeeperClient(auth_url, token="tok-team-b-0002") as b,
    ):
        a.create_goal(GOAL, goal_id="shared-name")
        assert a.step("shared-name", "search").version == 2
        with pytest.raises(GoalNotFound):
            b.get_goal("shared-name")  # another tenant's goal is invisible
        b.create_goal("Another team's goal", goal_id="shared-name")  # the same id, another tenant
        assert b.get_goal("shared-name").version == 1
        assert a.get_goal("shared-name").version == 2


def test_an_unreachable_server() -> None:
    with (
        GoalkeeperClient(
            f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=1, backoff=0.01)
        ) as gk,
        pytest.raises(ServiceUnavailable, match="ConnectError"),
    ):
        gk.get_goal("x")
