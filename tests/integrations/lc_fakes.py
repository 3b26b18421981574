"""Fake chat models for the LangChain / LangGraph tests (no network).

:class:`LoopingChatModel` asks for ``search({"q": "paris population"})`` every turn, until the
conversation holds a goalkeeper nudge and it ``listens``. :func:`stubborn_model` is langchain-core's
own ``GenericFakeChatModel`` scripted to ask for the same search forever.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import Field

from goalkeeper.integrations import GoalMonitor
from goalkeeper.integrations.langchain import goalkeeper_node

NUDGE_MARK = "[goalkeeper]"
ANSWER = "Paris has about 2.1 million inhabitants (found after changing approach)."


def search_call(n: int, tokens: int = 0) -> AIMessage:
    """The model's turn: call ``search`` with the same arguments (a fresh call id each turn)."""
    usage = {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens} if tokens else None
    calls = [{"name": "search", "args": {"q": "paris population"}, "id": f"call_{n}"}]
    return AIMessage(content="", tool_calls=calls, usage_metadata=usage)


class LoopingChatModel(BaseChatModel):
    """Loops on ``search``; answers once it reads a goalkeeper nudge (if ``listens``)."""

    listens: bool = True
    tokens: int = 0
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "looping-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.seen.append(list(messages))
        nudged = any(NUDGE_MARK in str(m.content) for m in messages)
        message = (
            AIMessage(content=ANSWER) if self.listens and nudged else search_call(len(self.seen), self.tokens)
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Any, **kwargs: Any) -> LoopingChatModel:
        return self


def stubborn_model() -> GenericFakeChatModel:
    """langchain-core's scripted fake model, scripted to loop forever."""
    script: Iterator[AIMessage] = (search_call(n) for n in itertools.count(1))
    return GenericFakeChatModel(messages=script)


def make_tools(calls: list[str]) -> list[Any]:
    """A ``search`` tool that records its queries in ``calls`` and never finds anything."""

    @tool
    def search(q: str) -> str:
        """Search the web."""
        calls.append(q)
        return "no results"

    return [search]


def build_graph(model: Any, monitor: GoalMonitor, tools: list[Any]) -> Any:
    """agent -> tools -> goalkeeper -> agent ... (the agent ends the run by answering)."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_node("goalkeeper", goalkeeper_node(monitor, next="agent"))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "goalkeeper")
    return graph.compile()
