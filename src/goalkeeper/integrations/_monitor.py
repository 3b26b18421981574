"""GoalMonitor: what every integration shares: feed one goal, remember the decision, apply the policy.

An integration turns a framework's callbacks into ``step`` events and calls :meth:`GoalMonitor.record`
(or :meth:`GoalMonitor.arecord` from async code). The monitor keeps the latest
:class:`~goalkeeper.client.Decision`, queues the nudges the :class:`Policy` says to show the agent,
and tells the integration when to stop (:meth:`GoalMonitor.check` raises :class:`GoalAborted`). The
policy logic lives here once; the framework modules only translate.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..client import ACTIONS, Action, AsyncClientBase, Decision, SyncClientBase
from ..client._protocol import new_id
from ..core.model import StepEvent, Suggestion, SuggestionKind
from ..errors import BackendError, ConfigurationError, GoalError

__all__ = ["MAX_TEXT", "GoalAborted", "GoalMonitor", "Policy", "json_args", "text_of"]

_log = logging.getLogger("goalkeeper.integrations")

#: Longest tool output (characters) sent with a step: enough to recognise a repeated result, and a
#: bound on what one step costs to send and keep.
MAX_TEXT = 4000
#: Nesting kept in tool arguments (deeper values become their text; this also ends cycles).
_MAX_DEPTH = 16
#: Suggestion ids remembered as already shown (the oldest are forgotten).
_SHOWN = 256

Client = SyncClientBase | AsyncClientBase


class GoalAborted(GoalError):
    """goalkeeper recommended ``abort`` and the integration stopped the agent.

    Attributes:
        goal_id: the goal.
        reason: why, in words (the abort suggestion's message, e.g. "You called `search` with the
            same arguments 6 times in a row ...").
        decision: the decision that stopped the run.
    """

    def __init__(self, decision: Decision, reason: str | None = None) -> None:
        self.goal_id = decision.goal_id
        self.reason = reason or decision.describe()
        self.decision = decision
        super().__init__(f"goalkeeper stopped goal {decision.goal_id!r}: {self.reason}")


@dataclass(frozen=True, slots=True)
class Policy:
    """What an integration does with goalkeeper's decisions.

    Attributes:
        inject_on: actions whose new suggestion text is shown to the agent on its next turn.
        stop_on: actions that stop the run (:class:`GoalAborted`).
        acknowledge: after showing a ``replan`` nudge, report it ``accepted`` (a ``feedback``
            event): goalkeeper then judges the new plan afresh instead of still counting the old
            loop against it.
        prefix: put before every injected text, so the agent (and a reader of the transcript) can
            tell goalkeeper's words from the user's.
        fail_open: when goalkeeper cannot be reached (a :class:`~goalkeeper.errors.BackendError`:
            the server is down, keeps failing, or did not apply the event in time), log a warning
            and let the agent go on instead of failing its tool call. Misuse (a bad token, a bad
            event) always raises.
    """

    inject_on: frozenset[str] = frozenset({"adjust", "replan"})
    stop_on: frozenset[str] = frozenset({"abort"})
    acknowledge: bool = True
    prefix: str = "[goalkeeper] "
    fail_open: bool = False

    def __post_init__(self) -> None:
        for name in ("inject_on", "stop_on"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(a in ACTIONS for a in value):
                raise ConfigurationError(f"{name} must be a set of {', '.join(ACTIONS)}; got {value!r}")
            object.__setattr__(self, name, frozenset(value))
        if not isinstance(self.prefix, str):
            raise ConfigurationError("prefix must be a string")


def text_of(value: object, limit: int = MAX_TEXT) -> str:
    """A tool's result as the text a step carries (``str()`` of it, cut to ``limit`` characters)."""
    text = value if isinstance(value, str) else ("" if value is None else _dumps(value))
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def _dumps(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def json_args(args: object) -> dict[str, Any]:
    """A tool's arguments as the JSON object a step carries.

    A mapping is kept (values JSON cannot carry become their ``str()``); a JSON string holding an
    object is decoded (frameworks pass tool arguments that way); anything else is kept as
    ``{"input": <text>}``.
    """
    if isinstance(args, str):
        try:
            decoded = json.loads(args)
        except ValueError:
            return {"input": args}
        return (
            {str(k): _jsonable(v, 1) for k, v in decoded.items()}
            if isinstance(decoded, dict)
            else {"input": _jsonable(decoded)}
        )
    if isinstance(args, Mapping):
        return {str(k): _jsonable(v, 1) for k, v in args.items()}
    return {} if args is None else {"input": _jsonable(args)}


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` with everything JSON cannot carry replaced by its ``str()`` (deep, bounded)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if depth < _MAX_DEPTH and isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    return str(value)


@dataclass(slots=True)
class _State:
    last: Decision | None = None
    pending: list[Suggestion] = field(default_factory=list)
    #: The latest message of each suggestion kind: the reason of a standing action that later
    #: decisions repeat without a new suggestion.
    reasons: dict[str, str] = field(default_factory=dict)
    shown: OrderedDict[str, None] = field(default_factory=OrderedDict)


class GoalMonitor:
    """Feeds one goal from an agent's actions and applies a :class:`Policy` to the decisions.

    Args:
        client: any goalkeeper client (:class:`~goalkeeper.client.LocalClient`, remote, sync or
            async). :meth:`record` needs a sync client; :meth:`arecord` takes either.
        goal_id: the goal the agent works on (create it with ``client.create_goal`` first, or let
            the first event create it).
        policy: what to do with decisions (default :class:`Policy`).
        on_decision: called with every decision (sync or async callable), e.g. to log it.
        otel: also put every decision on the current OpenTelemetry span (off by default; needs
            ``opentelemetry-api``; see :mod:`goalkeeper.integrations.otel`).

    Raises:
        ConfigurationError: a bad argument, or ``otel=True`` without ``opentelemetry-api``.
    """

    def __init__(
        self,
        client: Client,
        goal_id: str,
        *,
        policy: Policy | None = None,
        on_decision: Callable[[Decision], object] | None = None,
        otel: bool = False,
    ) -> None:
        if not isinstance(client, (SyncClientBase, AsyncClientBase)):
            raise ConfigurationError(f"client must be a goalkeeper client, got {type(client).__name__}")
        if not isinstance(goal_id, str) or not goal_id.strip():
            raise ConfigurationError("goal_id must be a non-empty string")
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigurationError(f"policy must be a Policy, got {type(policy).__name__}")
        if on_decision is not None and not callable(on_decision):
            raise ConfigurationError("on_decision must be callable")
        self.client = client
        self.goal_id = goal_id
        self.policy = policy if policy is not None else Policy()
        self._on_decision = on_decision
        self._annotate: Callable[[Decision], None] | None = None
        if otel:
            from .otel import annotate_span

            self._annotate = annotate_span
        self._state = _State()

    # -- what the agent did -----------------------------------------------------------------------

    def step_event(
        self,
        tool: str,
        args: object = None,
        *,
        output: object = None,
        error: BaseException | str | None = None,
        description: str = "",
        tokens: int = 0,
        event_id: str | None = None,
    ) -> StepEvent:
        """The ``step`` event for one tool call and its result (or the error it raised)."""
        err = (
            None
            if error is None
            else (error if isinstance(error, str) else f"{type(error).__name__}: {error}")
        )
        return StepEvent(
            goal_id=self.goal_id,
            event_id=event_id or new_id(),
            tool=tool,
            args=json_args(args),
            output=text_of(output),
            error=None if err is None else text_of(err),
            description=description,
            tokens=tokens,
        )

    def record(self, event: StepEvent | Mapping[str, Any]) -> Decision | None:
        """Send an event through a sync client and apply the policy to the decision.

        Returns:
            The decision; ``None`` only when goalkeeper could not be reached and the policy fails
            open (:attr:`Policy.fail_open`).

        Raises:
            ConfigurationError: the client or ``on_decision`` is async (use :meth:`arecord`).
            BackendError: goalkeeper could not be reached (unless the policy fails open).
        """
        try:
            result = self.client.record(event)
        except BackendError as exc:
            self._unreachable(exc)
            return None
        if inspect.isawaitable(result):
            _close(result)
            raise ConfigurationError("this monitor's client is async: use `await monitor.arecord(...)`")
        decision = self._observe(result)
        if self._on_decision is not None:
            returned = self._on_decision(decision)
            if inspect.isawaitable(returned):
                _close(returned)
                raise ConfigurationError("on_decision is async: use `await monitor.arecord(...)`")
        return decision

    async def arecord(self, event: StepEvent | Mapping[str, Any]) -> Decision | None:
        """Send an event through any client (awaiting an async one) and apply the policy.

        Returns and raises as :meth:`record`.
        """
        try:
            result = self.client.record(event)
            decision = await result if inspect.isawaitable(result) else result
        except BackendError as exc:
            self._unreachable(exc)
            return None
        assert isinstance(decision, Decision)
        decision = self._observe(decision)
        if self._on_decision is not None:
            returned = self._on_decision(decision)
            if inspect.isawaitable(returned):
                await returned
        return decision

    def _unreachable(self, exc: BackendError) -> None:
        if not self.policy.fail_open:
            raise exc
        # Failing open: the agent goes on; the standing decision is still the last one received.
        _log.warning(
            "goalkeeper could not record a step of goal %r; the agent goes on unmonitored: %s",
            self.goal_id, exc, extra={"goal_id": self.goal_id},
        )  # fmt: skip

    def _observe(self, decision: Decision) -> Decision:
        state = self._state
        state.last = decision
        for suggestion in decision.suggestions:
            state.reasons[suggestion.kind.value] = suggestion.message
            if suggestion.kind.value in self.policy.inject_on and suggestion.suggestion_id not in state.shown:
                state.pending.append(suggestion)
        if self._annotate is not None:
            self._annotate(decision)
        return decision

    # -- what the integration does next ----------------------------------------------------------

    @property
    def decision(self) -> Decision | None:
        """The latest decision (``None`` before the first event)."""
        return self._state.last

    @property
    def action(self) -> Action:
        """The latest recommended action (``continue`` before the first event)."""
        last = self._state.last
        return "continue" if last is None else last.action

    @property
    def should_stop(self) -> bool:
        """Whether the policy says to stop the run now."""
        return self.action in self.policy.stop_on

    def check(self) -> None:
        """Raise :class:`GoalAborted` if the policy says to stop the run now."""
        last = self._state.last
        if last is not None and last.action in self.policy.stop_on:
            raise GoalAborted(last, last.nudge or self._state.reasons.get(last.action))

    def has_nudges(self) -> bool:
        """Whether a nudge is waiting to be shown to the agent."""
        return bool(self._state.pending)

    def take_nudges(self) -> list[str]:
        """The nudge texts to show the agent now (each is handed out once), prefixed.

        With a sync client, a shown ``replan`` nudge is acknowledged here (see
        :attr:`Policy.acknowledge`); async integrations use :meth:`atake_nudges`.
        """
        texts, acks = self._take()
        for sid in acks:
            try:
                result = self.client.feedback(sid, "accepted")
            except BackendError as exc:
                self._unreachable(exc)
                continue
            if inspect.isawaitable(result):
                _close(result)
                raise ConfigurationError("this monitor's client is async: use `await monitor.atake_nudges()`")
        return texts

    async def atake_nudges(self) -> list[str]:
        """:meth:`take_nudges` for async code (works with either kind of client)."""
        texts, acks = self._take()
        for sid in acks:
            try:
                result = self.client.feedback(sid, "accepted")
                if inspect.isawaitable(result):
                    await result
            except BackendError as exc:
                self._unreachable(exc)
        return texts

    def _take(self) -> tuple[list[str], list[str]]:
        state = self._state
        pending, state.pending = state.pending, []
        texts: list[str] = []
        acks: list[str] = []
        for suggestion in pending:
            state.shown[suggestion.suggestion_id] = None
            if len(state.shown) > _SHOWN:
                state.shown.popitem(last=False)
            texts.append(self.policy.prefix + suggestion.message)
            if self.policy.acknowledge and suggestion.kind is SuggestionKind.REPLAN:
                acks.append(suggestion.suggestion_id)
        return texts, acks


def _close(value: object) -> None:
    """Close a coroutine that will not be awaited (so Python does not warn it never was)."""
    close = getattr(value, "close", None)
    if inspect.iscoroutine(value) and close is not None:
        close()
