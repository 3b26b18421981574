"""Framework-free: watch plain tool functions with a decorator or a ``with`` block.

::

    from goalkeeper.client import LocalClient
    from goalkeeper.integrations import GoalMonitor, watch

    gk = LocalClient()
    gk.create_goal("Find the population of Paris", goal_id="paris")
    monitor = GoalMonitor(gk, "paris")

    @watch(monitor)
    def search(q: str) -> str:
        ...

Every call is recorded as a ``step`` (tool = the function's name, args = its bound arguments,
output = its result, or the exception it raised). Then, per the monitor's :class:`Policy`:

* ``abort``: :class:`GoalAborted` is raised (after the call is recorded), and any later call of a
  watched function raises it before running: the run stops with goalkeeper's reason.
* ``adjust`` / ``replan``: when the function returns a string (what an LLM reads as the tool's
  result), the nudge text is appended to it, so the agent sees it on its next turn. Otherwise the
  nudge waits in ``monitor.take_nudges()`` for your own loop to show it.

Sync and async functions are both supported (an async one needs nothing else; a sync one needs a
sync client, since it cannot await).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from ..client import Decision
from ._monitor import GoalMonitor

__all__ = ["ToolCall", "tracked", "watch"]

P = ParamSpec("P")
R = TypeVar("R")


def _bound(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name (``self``/``cls`` left out: they are not the input)."""
    if signature is not None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            pass  # the call itself will raise the precise TypeError
        else:
            return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
    return {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}


def _nudged(monitor: GoalMonitor, result: Any, inject: bool) -> Any:
    if inject and isinstance(result, str) and monitor.has_nudges():
        return result + "\n\n" + "\n".join(monitor.take_nudges())
    return result


async def _anudged(monitor: GoalMonitor, result: Any, inject: bool) -> Any:
    if inject and isinstance(result, str) and monitor.has_nudges():
        return result + "\n\n" + "\n".join(await monitor.atake_nudges())
    return result


def watch(
    monitor: GoalMonitor, *, tool: str | None = None, inject: bool = True
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a tool function so goalkeeper sees every call (see the module docs).

    Args:
        monitor: the goal's monitor (its client and policy).
        tool: the tool name recorded (default: the function's ``__name__``).
        inject: append nudge texts to a string result (default True).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name: str = tool or str(getattr(fn, "__name__", "tool"))
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have no signature
            signature = None

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                monitor.check()
                call_args = _bound(signature, args, kwargs)
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    await monitor.arecord(monitor.step_event(name, call_args, error=exc))
                    monitor.check()
                    raise
                await monitor.arecord(monitor.step_event(name, call_args, output=result))
                monitor.check()
                return await _anudged(monitor, result, inject)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            monitor.check()
            call_args = _bound(signature, args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                monitor.record(monitor.step_event(name, call_args, error=exc))
                monitor.check()
                raise
            monitor.record(monitor.step_event(name, call_args, output=result))
            monitor.check()
            nudged: R = _nudged(monitor, result, inject)
            return nudged

        return wrapper

    return decorate


@dataclass(slots=True)
class ToolCall:
    """One call tracked by :func:`tracked`: set :attr:`output` inside the block.

    Attributes:
        tool: the tool's name.
        args: its arguments.
        output: what it returned (set it before the block ends).
        decision: goalkeeper's decision, once the block ended.
        nudges: nudge texts to show the agent, once the block ended (empty if none).
    """

    tool: str
    args: Any = None
    output: Any = None
    decision: Decision | None = None
    nudges: tuple[str, ...] = ()


@contextmanager
def tracked(monitor: GoalMonitor, tool: str, args: Any = None) -> Iterator[ToolCall]:
    """Record the tool call made inside the block (with a sync client).

    ::

        with tracked(monitor, "search", {"q": q}) as call:
            call.output = search(q)
        call.nudges  # show these to the agent

    An exception inside the block is recorded as the step's error and re-raised (as
    :class:`GoalAborted` if goalkeeper now says to stop).

    Raises:
        GoalAborted: the policy says to stop (before the block runs, if it already did).
    """
    monitor.check()
    call = ToolCall(tool, args)
    try:
        yield call
    except Exception as exc:
        call.decision = monitor.record(monitor.step_event(tool, args, error=exc))
        monitor.check()
        raise
    call.decision = monitor.record(monitor.step_event(tool, args, output=call.output))
    monitor.check()
    call.nudges = tuple(monitor.take_nudges())
