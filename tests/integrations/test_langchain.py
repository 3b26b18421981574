"""The LangChain handler and the LangGraph node on real graphs with looping fake models."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END
from lc_fakes import (
    ANSWER,
    NUDGE_MARK,
    LoopingChatModel,
    build_graph,
    make_tools,
    search_call,
    stubborn_model,
)

from goalkeeper.client import AsyncLocalClient, LocalClient
from goalkeeper.errors import ConfigurationError
from goalkeeper.integrations import GoalAborted, GoalMonitor
from goalkeeper.integrations.langchain import (
    GoalkeeperCallbackHandler,
    goalkeeper_node,
    nudge_messages,
    route_on_action,
)

GOAL = "Find the population of Paris and report it"
QUESTION = "How many people live in Paris?"


@pytest.fixture
def client() -> LocalClient:
    gk = LocalClient()
    gk.create_goal(GOAL, goal_id="paris")
    return gk


def test_graph_injects_the_nudge_and_the_agent_changes_course(client: LocalClient) -> None:
    monitor = GoalMonitor(client, "paris")
    model, calls = LoopingChatModel(listens=True, tokens=120), []
    result = build_graph(model, monitor, make_tools(calls)).invoke({"messages": [HumanMessage(QUESTION)]})
    assert calls == ["paris population"] * 3
    assert result["messages"][-1].content == ANSWER
    nudges = [m for m in result["messages"] if isinstance(m, SystemMessage)]
    assert len(nudges) == 1
    assert nudges[0].content.startswith(NUDGE_MARK)
    assert "`search` with the same arguments 3 times" in nudges[0].content
    # The model saw the nudge on its 4th turn, right after the third identical search.
    assert isinstance(model.seen[3][-1], SystemMessage)
    assert client.get_goal("paris").metrics["steps"] == 3
    assert client.get_goal("paris").metrics["tokens"] == 360  # the model turns' usage_metadata


def test_graph_routes_a_stubborn_loop_to_end_with_the_reason(client: LocalClient) -> None:
    monitor = GoalMonitor(client, "paris")
    calls: list[str] = []
    graph = build_graph(stubborn_model(), monitor, make_tools(calls))
    result = graph.invoke({"messages": [HumanMessage(QUESTION)]}, {"recursion_limit": 100})
    assert len(calls) == 6
    last = result["messages"][-1]
    assert isinstance(last, AIMessage)
    assert last.name == "goalkeeper"
    assert last.content.startswith("Stopped by goalkeeper: ")
    info = last.additional_kwargs["goalkeeper"]
    assert info["action"] == "abort"
    assert info["goal_id"] == "paris"
    assert "`search`" in info["reason"]
    assert monitor.action == "abort"
    # The adjust and replan nudges were injected before the stop.
    assert sum(isinstance(m, SystemMessage) for m in result["messages"]) == 3


async def test_graph_node_with_an_async_client() -> None:
    client = AsyncLocalClient()
    await client.create_goal(GOAL, goal_id="paris")
    monitor = GoalMonitor(client, "paris")
    model, calls = LoopingChatModel(listens=True), []
    result = await build_graph(model, monitor, make_tools(calls)).ainvoke(
        {"messages": [HumanMessage(QUESTION)]}
    )
    assert result["messages"][-1].content == ANSWER
    assert len(calls) == 3


def test_callback_handler_records_tools_and_stops_a_plain_langchain_loop(client: LocalClient) -> None:
    monitor = GoalMonitor(client, "paris")
    handler = GoalkeeperCallbackHandler(monitor)
    model, calls = stubborn_model(), []
    (search,) = make_tools(calls)
    messages = [HumanMessage(QUESTION)]

    def agent_loop() -> None:  # a hand-written agent loop
        for _ in range(20):
            reply = model.invoke(messages)
            messages.append(reply)
            for call in reply.tool_calls:
                messages.append(search.invoke(call, config={"callbacks": [handler]}))
            messages.extend(nudge_messages(monitor.take_nudges()))

    with pytest.raises(GoalAborted) as caught:
        agent_loop()
    assert len(calls) == 6
    assert "stopping" in caught.value.reason
    assert sum(isinstance(m, SystemMessage) for m in messages) == 3  # adjust at 3, replan at 4 and 5


def test_callback_handler_records_errors(client: LocalClient) -> None:
    monitor = GoalMonitor(client, "paris")
    handler = GoalkeeperCallbackHandler(monitor, stop_run=False)

    @tool
    def fetch(url: str) -> str:
        """Fetch a page."""
        raise RuntimeError("connection refused")

    with pytest.raises(RuntimeError):
        fetch.invoke({"url": "http://x"}, config={"callbacks": [handler]})
    task = client.task("paris")
    assert "RuntimeError: connection refused" in str(task["errors"])
    assert task["tools"]["fetch"]["successes"] == 0


def test_router_routes_on_the_monitors_action(client: LocalClient) -> None:
    monitor = GoalMonitor(client, "paris")
    handler = GoalkeeperCallbackHandler(monitor, stop_run=False)
    router = route_on_action(monitor, continue_to="agent", replan_to="replan")
    (search,) = make_tools([])
    routes = []
    for n in range(6):
        search.invoke(search_call(n).tool_calls[0], config={"callbacks": [handler]})
        route = router({})
        routes.append(route)
        if route == "replan":
            monitor.take_nudges()
    assert routes == ["agent", "agent", "replan", "replan", "replan", END]


def test_node_ignores_results_of_an_earlier_turn(client: LocalClient) -> None:
    monitor = GoalMonitor(client, "paris")
    node = goalkeeper_node(monitor, next="agent")
    turn = [
        HumanMessage("q"),
        search_call(1),
        ToolMessage("no results", tool_call_id="call_1", name="search"),
    ]
    node({"messages": turn})
    node({"messages": turn})  # the same turn again: not recorded twice
    node({"messages": [*turn, HumanMessage("more")]})
    assert client.get_goal("paris").metrics["steps"] == 1


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="sync client"):
        GoalkeeperCallbackHandler(GoalMonitor(AsyncLocalClient(), "g"))
    with pytest.raises(ConfigurationError, match="role"):
        goalkeeper_node(GoalMonitor(LocalClient(), "g"), next="agent", role="tool")
