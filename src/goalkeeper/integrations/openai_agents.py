"""OpenAI Agents SDK (``openai-agents``): record every tool call, inject nudges, stop on abort.

Three lines attach goalkeeper to a run::

    from goalkeeper.integrations.openai_agents import run_options

    result = await Runner.run(agent, "Find the population of Paris", **run_options(monitor))

``run_options`` gives the run two things:

* ``hooks``: :class:`GoalkeeperHooks`, whose ``on_tool_end`` records every tool call with its
  arguments and result as a ``step`` event of the monitor's goal, with the tokens the run spent
  since the previous step (so a goal's token budget is tracked);
* ``run_config``: a ``RunConfig`` whose ``call_model_input_filter`` is a :class:`NudgeInputFilter`.
  Before every model call it (1) raises :class:`~goalkeeper.integrations.GoalAborted` when
  goalkeeper recommends ``abort``, so the run stops with goalkeeper's reason and the model is not
  called again; (2) appends the text of a new ``replan``/``adjust`` suggestion to the model's
  input as a system message, so the agent reads it on its next turn.

Both act through the monitor's :class:`~goalkeeper.integrations.Policy`. A tool's exception is seen
as its result, because the SDK turns tool errors into a message for the model.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from ..errors import ConfigurationError
from ._monitor import GoalMonitor
from ._optional import require

require("agents", "openai-agents", "the OpenAI Agents integration")

from agents import Agent, RunConfig, RunContextWrapper, RunHooks, Tool  # noqa: E402
from agents.run_config import CallModelData, CallModelInputFilter, ModelInputData  # noqa: E402
from agents.tool_context import ToolContext  # noqa: E402

__all__ = ["GoalkeeperHooks", "NudgeInputFilter", "run_config", "run_options"]


class GoalkeeperHooks(RunHooks[Any]):
    """Run hooks that record every local tool call and its result as a ``step`` event.

    Subclass it to add your own hooks (call ``super()`` in ``on_tool_end``).

    Args:
        monitor: the goal's monitor.
    """

    def __init__(self, monitor: GoalMonitor) -> None:
        self.monitor = monitor
        self._tokens_seen = 0  # the run's total token count at the last recorded step

    def _new_tokens(self, context: RunContextWrapper[Any]) -> int:
        """Tokens the run spent since the last step (the model turns that led to this call)."""
        total = getattr(getattr(context, "usage", None), "total_tokens", 0)
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            return 0
        # A smaller total than before means a new run reuses these hooks: count from zero.
        spent = total - self._tokens_seen if total >= self._tokens_seen else total
        self._tokens_seen = total
        return spent

    async def on_tool_end(
        self, context: RunContextWrapper[Any], agent: Agent[Any], tool: Tool, result: object
    ) -> None:
        """Record the call (tool name, its JSON arguments, its result) and get the decision."""
        if isinstance(context, ToolContext):
            name, args = context.tool_name, context.tool_arguments
        else:  # hosted or non-function tools: no call metadata on the context
            name, args = getattr(tool, "name", type(tool).__name__), None
        tokens = self._new_tokens(context)
        await self.monitor.arecord(self.monitor.step_event(name, args, output=result, tokens=tokens))


class NudgeInputFilter:
    """A ``RunConfig.call_model_input_filter`` that stops the run on abort and injects nudges.

    Args:
        monitor: the goal's monitor.
        role: the role of the injected message (``system`` by default; ``developer`` or ``user``
            suit some models better).
        inner: a filter of your own, run first (sync or async).
    """

    def __init__(
        self, monitor: GoalMonitor, *, role: str = "system", inner: CallModelInputFilter | None = None
    ):
        if role not in ("system", "developer", "user"):
            raise ConfigurationError(f"role must be system, developer or user, got {role!r}")
        self.monitor = monitor
        self.role = role
        self.inner = inner

    async def __call__(self, data: CallModelData[Any]) -> ModelInputData:
        """Raise GoalAborted on abort; else return the model input with any new nudge appended."""
        model_data = data.model_data
        if self.inner is not None:
            returned = self.inner(data)
            model_data = await returned if inspect.isawaitable(returned) else returned
        self.monitor.check()
        texts = await self.monitor.atake_nudges()
        if not texts:
            return model_data
        nudge: Any = {"role": self.role, "content": "\n".join(texts)}
        return ModelInputData(input=[*model_data.input, nudge], instructions=model_data.instructions)


def run_config(monitor: GoalMonitor, base: RunConfig | None = None, *, role: str = "system") -> RunConfig:
    """``base`` (or a new ``RunConfig``) with a :class:`NudgeInputFilter` (wrapping its own filter)."""
    config = base if base is not None else RunConfig()
    flt = NudgeInputFilter(monitor, role=role, inner=config.call_model_input_filter)
    return dataclasses.replace(config, call_model_input_filter=flt)


def run_options(
    monitor: GoalMonitor, base: RunConfig | None = None, *, role: str = "system"
) -> dict[str, Any]:
    """``hooks`` and ``run_config`` for ``Runner.run(agent, input, **run_options(monitor))``."""
    return {"hooks": GoalkeeperHooks(monitor), "run_config": run_config(monitor, base, role=role)}
