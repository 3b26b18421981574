"""The integrations against a real goalkeeper server (HTTP client), not only in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("agents")
pytest.importorskip("langgraph")

from agents import Agent, RunConfig, Runner, function_tool
from agents_fakes import ANSWER, LoopingModel
from langchain_core.messages import HumanMessage
from lc_fakes import build_graph, make_tools, stubborn_model

from goalkeeper.client import AsyncGoalkeeperClient, GoalkeeperClient
from goalkeeper.client.testing import running_server
from goalkeeper.integrations import GoalAborted, GoalMonitor
from goalkeeper.integrations.openai_agents import run_options

GOAL = "Find the population of Paris and report it"
OFFLINE = RunConfig(tracing_disabled=True)  # no trace export: the tests never touch the network


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(store_url=f"sqlite:///{tmp_path_factory.mktemp('remote') / 'gk.db'}") as base:
        yield base


async def test_openai_agents_run_against_the_server(url: str) -> None:
    async with AsyncGoalkeeperClient(url) as gk:
        await gk.create_goal(GOAL, goal_id="agents-remote")
        monitor = GoalMonitor(gk, "agents-remote")
        calls: list[str] = []

        @function_tool
        def search(q: str) -> str:
            """Search the web."""
            calls.append(q)
            return "no results"

        model = LoopingModel(listens=False)
        agent = Agent(name="researcher", instructions="Answer.", model=model, tools=[search])
        with pytest.raises(GoalAborted) as caught:
            await Runner.run(
                agent, "Paris?", max_turns=50, **run_options(monitor, RunConfig(tracing_disabled=True))
            )
        assert len(calls) == 6
        assert "stopping" in caught.value.reason
        goal = await gk.get_goal("agents-remote")
        assert goal.recommended_action == "abort"
        # The replan nudges were acknowledged through the server (feedback events).
        points = await gk.metrics_history("agents-remote")
        assert [p["event_type"] for p in points].count("feedback") == 2


async def test_openai_agents_nudge_over_http(url: str) -> None:
    async with AsyncGoalkeeperClient(url) as gk:
        await gk.create_goal(GOAL, goal_id="agents-nudge")
        monitor = GoalMonitor(gk, "agents-nudge")

        @function_tool
        def search(q: str) -> str:
            """Search the web."""
            return "no results"

        model = LoopingModel(listens=True)
        agent = Agent(name="researcher", instructions="Answer.", model=model, tools=[search])
        result = await Runner.run(
            agent, "Paris?", max_turns=20, **run_options(monitor, RunConfig(tracing_disabled=True))
        )
        assert result.final_output == ANSWER
        assert LoopingModel.saw_nudge(model.inputs[-1])


def test_langgraph_against_the_server(url: str) -> None:
    with GoalkeeperClient(url) as gk:
        gk.create_goal(GOAL, goal_id="graph-remote")
        monitor = GoalMonitor(gk, "graph-remote")
        calls: list[str] = []
        graph = build_graph(stubborn_model(), monitor, make_tools(calls))
        result = graph.invoke({"messages": [HumanMessage("Paris?")]}, {"recursion_limit": 100})
        assert len(calls) == 6
        assert result["messages"][-1].name == "goalkeeper"
        assert gk.get_goal("graph-remote").metrics["steps"] == 6
