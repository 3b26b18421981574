"""LangChain / LangGraph: record tool calls, inject nudges, route to END on abort.

Two ways in, both through a :class:`~goalkeeper.integrations.GoalMonitor` and its policy:

* **A LangGraph node** (:func:`goalkeeper_node`), placed after your tools node. It records the tool
  calls the last model turn made (their ``ToolMessage`` results, paired with the model's
  ``tool_calls`` for the arguments) as ``step`` events, then routes with a ``Command``: to your
  model node as usual; to your model node with goalkeeper's nudge appended to ``messages`` when a
  ``replan``/``adjust`` suggestion is new; or to ``END`` with an ``AIMessage`` that gives the
  reason when goalkeeper says ``abort``::

      graph.add_node("tools", ToolNode(tools))
      graph.add_node("goalkeeper", goalkeeper_node(monitor, next="agent"))
      graph.add_edge("tools", "goalkeeper")

* **A callback handler** (:class:`GoalkeeperCallbackHandler`) for any LangChain code that runs tools
  (``tool.invoke(..., config={"callbacks": [handler]})``, agents, chains). It records every tool call
  and its result or error; with ``stop_run=True`` (the default) it raises
  :class:`~goalkeeper.integrations.GoalAborted` out of the tool call when goalkeeper says ``abort``.
  Your loop shows the nudges from ``monitor.take_nudges()`` (or :func:`nudge_messages`). For a
  graph that records through the handler, :func:`route_on_action` is a conditional-edge router.

The node and the router need ``langgraph``; the handler needs only ``langchain-core``. Both come
with ``pip install "goalkeeper[langchain]"``. The handler is synchronous (LangChain runs it in a
worker thread inside async runs), so it takes a sync client; the node takes either kind.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from ..client import SyncClientBase
from ..errors import ConfigurationError
from ._monitor import GoalMonitor
from ._optional import require

require("langchain_core", "langchain", "the LangChain integration")

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage  # noqa: E402

__all__ = ["GoalkeeperCallbackHandler", "goalkeeper_node", "nudge_messages", "route_on_action"]

#: Tool call ids a node remembers as recorded (the oldest are forgotten).
_SEEN = 1024
_ROLES = ("system", "human")


def _check_role(role: str) -> None:
    if role not in _ROLES:
        raise ConfigurationError(f"role must be system or human, got {role!r}")


def nudge_messages(texts: Sequence[str], role: str = "system") -> list[BaseMessage]:
    """Nudge texts as one chat message (``[]`` for no texts), to append to the conversation."""
    _check_role(role)
    if not texts:
        return []
    content = "\n".join(texts)
    message = SystemMessage(content=content) if role == "system" else HumanMessage(content=content)
    return [message]


def _content(output: Any) -> Any:
    """A tool's output as goalkeeper records it: a ``ToolMessage``'s content, else the value."""
    return output.content if isinstance(output, ToolMessage) else output


class GoalkeeperCallbackHandler(BaseCallbackHandler):
    """Records every tool call a LangChain run makes (name, input, result or error) as a ``step``.

    Args:
        monitor: the goal's monitor; its client must be synchronous.
        stop_run: raise :class:`~goalkeeper.integrations.GoalAborted` out of the tool call when the
            policy says to stop (default True). With False the handler only records; act on
            ``monitor.action`` yourself (or with :func:`route_on_action`).

    Raises:
        ConfigurationError: the monitor's client is async.
    """

    # Let GoalAborted (and a failure to reach goalkeeper) propagate instead of being logged away.
    raise_error = True

    def __init__(self, monitor: GoalMonitor, *, stop_run: bool = True) -> None:
        if not isinstance(monitor.client, SyncClientBase):
            raise ConfigurationError("GoalkeeperCallbackHandler needs a monitor with a sync client")
        self.monitor = monitor
        self.stop_run = stop_run
        self._calls: dict[UUID, tuple[str, Any]] = {}
        self._lock = threading.Lock()  # LangChain may call handlers from several threads

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the call's tool name and arguments until it ends."""
        name = kwargs.get("name") or (serialized or {}).get("name") or "tool"
        with self._lock:
            self._calls[run_id] = (str(name), inputs if inputs is not None else input_str)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the call with its result; stop the run if the policy says so."""
        self._finish(run_id, kwargs, output=_content(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the call with its error; stop the run if the policy says so."""
        self._finish(run_id, kwargs, error=error)

    def _finish(self, run_id: UUID, kwargs: Mapping[str, Any], **result: Any) -> None:
        with self._lock:
            name, args = self._calls.pop(run_id, (str(kwargs.get("name") or "tool"), None))
        self.monitor.record(self.monitor.step_event(name, args, **result))
        if self.stop_run:
            self.monitor.check()


def _new_tool_calls(
    messages: Sequence[Any], seen: OrderedDict[str, None]
) -> list[tuple[str, Any, Any, bool, int]]:
    """The tool results after the last model turn not recorded yet.

    Each is (name, args, output, failed, tokens); the model turn's tokens (its ``usage_metadata``)
    go with the first of its calls.
    """
    results: list[ToolMessage] = []
    asked: dict[str, tuple[str, Any]] = {}
    tokens = 0
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            results.append(message)
        elif isinstance(message, AIMessage):
            asked = {str(c.get("id")): (c["name"], c.get("args")) for c in message.tool_calls}
            usage: Mapping[str, Any] = message.usage_metadata or {}
            total = usage.get("total_tokens", 0)
            tokens = total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else 0
            break
        else:
            break  # a human or system message: the tool results above belong to an earlier turn
    out = []
    for message in reversed(results):
        key = message.tool_call_id
        if key in seen:
            continue
        seen[key] = None
        if len(seen) > _SEEN:
            seen.popitem(last=False)
        name, args = asked.get(key, (message.name or "tool", None))
        out.append((name, args, message.content, message.status == "error", tokens))
        tokens = 0
    return out


def goalkeeper_node(
    monitor: GoalMonitor,
    *,
    next: str,
    messages_key: str = "messages",
    role: str = "system",
) -> Callable[[Mapping[str, Any]], Any]:
    """A LangGraph node that records the last turn's tool calls and routes on goalkeeper's action.

    Put it after the tools node (``graph.add_edge("tools", "goalkeeper")``). It returns a
    ``Command``: ``goto=next`` normally; ``goto=next`` with the nudge appended to the messages for
    a new ``replan``/``adjust`` suggestion; ``goto=END`` with an ``AIMessage`` named ``goalkeeper``
    stating the reason on ``abort`` (its ``additional_kwargs["goalkeeper"]`` holds the action, the
    reason and the goal id).

    Args:
        monitor: the goal's monitor (sync or async client: the node is async for an async client).
        next: the node to continue with (your model node).
        messages_key: the state key of the conversation (default ``messages``).
        role: the nudge message's role, ``system`` (default) or ``human``.
    """
    types = require("langgraph.types", "langchain", "the LangGraph integration")
    graph = require("langgraph.graph", "langchain", "the LangGraph integration")
    command, end = types.Command, graph.END
    _check_role(role)
    seen: OrderedDict[str, None] = OrderedDict()

    def events(state: Mapping[str, Any]) -> list[Any]:
        calls = _new_tool_calls(state.get(messages_key) or (), seen)
        return [
            monitor.step_event(
                name, args, output=None if failed else out, error=str(out) if failed else None, tokens=tokens
            )
            for name, args, out, failed, tokens in calls
        ]

    def route(texts: list[str]) -> Any:
        if monitor.should_stop:
            decision = monitor.decision
            assert decision is not None
            reason = decision.describe()
            stop = AIMessage(
                content=f"Stopped by goalkeeper: {reason}",
                name="goalkeeper",
                additional_kwargs={"goalkeeper": {"action": decision.action, "reason": reason,
                                                  "goal_id": decision.goal_id}},
            )  # fmt: skip
            return command(update={messages_key: [stop]}, goto=end)
        if texts:
            return command(update={messages_key: nudge_messages(texts, role)}, goto=next)
        return command(goto=next)

    if isinstance(monitor.client, SyncClientBase):

        def node(state: Mapping[str, Any]) -> Any:
            for event in events(state):
                monitor.record(event)
            return route([] if monitor.should_stop else monitor.take_nudges())

        return node

    async def anode(state: Mapping[str, Any]) -> Any:
        for event in events(state):
            await monitor.arecord(event)
        return route([] if monitor.should_stop else await monitor.atake_nudges())

    return anode


def route_on_action(
    monitor: GoalMonitor, *, continue_to: str, replan_to: str | None = None, abort_to: str | None = None
) -> Callable[[Mapping[str, Any]], str]:
    """A conditional-edge router on the monitor's latest action (steps recorded by the handler).

    Returns ``abort_to`` (default ``END``) when the policy says to stop, ``replan_to`` when a nudge
    waits to be shown (your node shows it with ``monitor.take_nudges()``), else ``continue_to``.
    """
    graph = require("langgraph.graph", "langchain", "the LangGraph integration")
    stop_to: str = graph.END if abort_to is None else abort_to

    def router(state: Mapping[str, Any]) -> str:
        if monitor.should_stop:
            return stop_to
        if replan_to is not None and monitor.has_nudges():
            return replan_to
        return continue_to

    return router
