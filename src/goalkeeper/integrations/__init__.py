"""Drop-in integrations: feed goalkeeper from the agent you already run, and act on its decisions.

* :mod:`goalkeeper.integrations.decorator`: plain tool functions (``@watch``, ``tracked``);
  needs nothing.
* :mod:`goalkeeper.integrations.openai_agents`: the OpenAI Agents SDK;
  ``pip install "goalkeeper[openai-agents]"``.
* :mod:`goalkeeper.integrations.langchain`: LangChain callbacks and a LangGraph node;
  ``pip install "goalkeeper[langchain]"``.
* :mod:`goalkeeper.integrations.otel`: decisions as OpenTelemetry span attributes;
  ``pip install "goalkeeper[otel]"``.

Every integration works through a :class:`GoalMonitor` (one goal, any client, a :class:`Policy`),
so they behave alike: tool calls and results become ``step`` events; a ``replan`` (or ``adjust``)
suggestion's text is shown to the agent on its next turn; ``abort`` stops the run with
:class:`GoalAborted`, whose ``reason`` says why.

Importing this package imports no framework: each framework module is imported when you import it
(or name it here), and a missing one raises a :class:`~goalkeeper.errors.ConfigurationError` with
the ``pip install`` line. ``docs/integrations.md`` has a runnable example per framework.
"""

from __future__ import annotations

from ._monitor import GoalAborted, GoalMonitor, Policy
from .decorator import ToolCall, tracked, watch

__all__ = ["GoalAborted", "GoalMonitor", "Policy", "ToolCall", "tracked", "watch"]
