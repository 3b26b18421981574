"""What an agent does, as the core sees it: :class:`Step`, :class:`Message`, :class:`ContextCompressed`.

These are the inputs of the detectors and the tracker. They are frozen value objects; build them
with :meth:`Step.of` (which validates and normalises loose input and raises
:class:`~goalkeeper.errors.InvalidInputError` naming the bad field) or directly when the values are
already clean.

Two derived keys drive loop detection:

* :attr:`Step.action_key`: the tool and its canonical arguments (see
  :func:`~goalkeeper.core.text.canonical_args`); the agent's ``thought`` text is *not* part of it,
  unless reasoning is all the tool takes (``think(thought=...)``).
* :attr:`Step.observation_key`: the result of the call, with volatile details masked, the error
  text (if any) and the exit code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast, overload

from ..errors import InvalidInputError
from ._checks import check_now, check_str
from .text import REASONING_ARG_KEYS, canonical_args, identifiers, mask_volatile, stable_hash

__all__ = [
    "ContextCompressed",
    "Message",
    "Observation",
    "Role",
    "Step",
    "check_message_fields",
    "check_step_fields",
]

Role = Literal["user", "assistant", "system"]
_ROLES: frozenset[str] = frozenset({"user", "assistant", "system"})

#: How many characters of output take part in the observation key. Long outputs (file dumps) are
#: compared by their head and tail, which is where status lines and errors live.
_OBS_HEAD = 2000
_OBS_TAIL = 500


T = TypeVar("T")


class _lazy(Generic[T]):
    """A computed-once attribute, like :func:`functools.cached_property` without its lock.

    Python 3.11's ``cached_property`` takes a lock on every first access, which costs more than some
    of the keys it guards; a step is built and read by one thread. The value lands in the instance
    ``__dict__``, which shadows this (non-data) descriptor from then on, so later reads are plain
    attribute lookups.
    """

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self._fn = fn
        self._name = fn.__name__
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _lazy[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object, owner: type | None = None) -> T | _lazy[T]:
        if obj is None:
            return self
        value = self._fn(obj)
        obj.__dict__[self._name] = value
        return value


@dataclass(frozen=True, slots=False)
class Step:
    """One action of the agent and its result.

    Attributes:
        tool: name of the tool or action type (``"search"``, ``"bash"``); may be empty for free-text
            steps described only by ``description``.
        args: the tool's arguments (a JSON-like mapping).
        description: what the agent says the step does.
        output: the tool's result as text.
        error: error text if the step failed, else ``None``.
        exit_code: process exit code where there is one.
        tokens: tokens spent on this step (>= 0).
        thought: the agent's reasoning text; kept for display, ignored by loop equality.
        ts: when it happened (seconds since the epoch), if known.
    """

    tool: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    output: str = ""
    error: str | None = None
    exit_code: int | None = None
    tokens: int = 0
    thought: str = ""
    ts: float | None = None

    @classmethod
    def of(
        cls,
        tool: object = "",
        args: object = None,
        description: object = "",
        output: object = "",
        error: object = None,
        exit_code: object = None,
        tokens: object = 0,
        thought: object = "",
        ts: object = None,
    ) -> Step:
        """Validate loose input and build a :class:`Step`.

        ``output`` that is not a string is JSON-encoded; ``error=""`` counts as no error.

        Raises:
            InvalidInputError: a field has the wrong type or an impossible value; ``.field`` names it.
        """
        tool_s = check_str("tool", tool)
        desc_s = check_str("description", description)
        thought_s = check_str("thought", thought)
        if args is None:
            args_m: Mapping[str, Any] = {}
        elif isinstance(args, Mapping):
            args_m = dict(args)
        else:
            raise InvalidInputError(f"must be an object, got {type(args).__name__}", field="args")
        if isinstance(output, str):
            out_s = output
        elif output is None:
            out_s = ""
        else:
            try:
                out_s = json.dumps(output, sort_keys=True, default=repr)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"cannot be encoded: {exc}", field="output") from exc
        err_s = None if error is None else check_str("error", error) or None
        if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
            raise InvalidInputError("must be an integer or null", field="exit_code")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise InvalidInputError("must be a non-negative integer", field="tokens")
        ts_f: float | None
        if ts is None:
            ts_f = None
        elif isinstance(ts, (int, float)) and not isinstance(ts, bool) and math.isfinite(ts):
            ts_f = float(ts)
        else:
            raise InvalidInputError("must be a finite number of seconds or null", field="ts")
        return cls(tool_s, args_m, desc_s, out_s, err_s, exit_code, tokens, thought_s, ts_f)

    @property
    def failed(self) -> bool:
        """True when the step reported an error or a non-zero exit code."""
        return self.error is not None or (self.exit_code is not None and self.exit_code != 0)

    @_lazy
    def action_key(self) -> str:
        """Identity of the action: tool plus canonical arguments; the description stands in when
        there are neither tool nor arguments.

        The agent's thought text never takes part, with one exception: a tool whose *only*
        arguments are reasoning keys (:data:`~goalkeeper.core.text.REASONING_ARG_KEYS`, like
        tau-bench's ``think(thought=...)``) is keyed on their masked text, since dropping them would
        make every call of it the same action.
        """
        if not self.tool and not self.args:
            return "desc:" + mask_volatile(self.description.lower())
        if self.args and all(str(k).lower() in REASONING_ARG_KEYS for k in self.args):
            # The form loop detection has keyed such steps on from the start, so that loop keys
            # stored in snapshots stay valid.
            return f"{self.tool}:" + mask_volatile(json.dumps(self.args, sort_keys=True, default=str))
        return f"{self.tool}:{canonical_args(self.args)}"

    @_lazy
    def observation_key(self) -> str:
        """Identity of the result: masked output head/tail, masked error, exit code (hashed)."""
        out = self.output
        if len(out) > _OBS_HEAD + _OBS_TAIL:
            out = out[:_OBS_HEAD] + "\u2026" + out[-_OBS_TAIL:]
        err = mask_volatile(self.error) if self.error is not None else ""
        return stable_hash(f"{mask_volatile(out)}\x1f{err}\x1f{self.exit_code}")

    @_lazy
    def text(self) -> str:
        """The step as free text (tool, description and argument values), for relevance scoring."""
        parts = [self.tool, self.description]
        parts += [str(v) for v in self.args.values() if isinstance(v, (str, int, float))]
        return " ".join([p for p in parts if p])

    @_lazy
    def text_head(self) -> str:
        """The start of :attr:`text` made of the tool and the description (the part that repeats
        from step to step); :attr:`text` is this, a space, and the argument values when there are any."""
        return " ".join([p for p in (self.tool, self.description) if p])

    @_lazy
    def words(self) -> tuple[str, ...]:
        """The identifiers of :attr:`text` (see :func:`~goalkeeper.core.text.identifiers`), found
        once and shared by the word features the detectors derive from them."""
        return tuple(identifiers(self.text))

    def __getstate__(self) -> dict[str, Any]:  # computed keys are not part of the state
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def check_step_fields(step: Step) -> None:
    """Check the fields the detectors read (a :class:`Step` built directly is not validated).

    Raises:
        InvalidInputError: ``tool``, ``description`` or ``output`` is not a string, ``error`` not a
            string or None, ``args`` not a mapping, or ``exit_code`` not an integer or None;
            ``.field`` names it.
    """
    for name, value in (("tool", step.tool), ("description", step.description), ("output", step.output)):
        if not isinstance(value, str):
            raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=name)
    if step.error is not None and not isinstance(step.error, str):
        raise InvalidInputError("must be a string or None", field="error")
    if not isinstance(step.args, Mapping):
        raise InvalidInputError(f"must be an object, got {type(step.args).__name__}", field="args")
    if step.exit_code is not None and (
        isinstance(step.exit_code, bool) or not isinstance(step.exit_code, int)
    ):
        raise InvalidInputError("must be an integer or None", field="exit_code")


def check_message_fields(message: Message) -> None:
    """Check a :class:`Message` built directly (without :meth:`Message.of`).

    Raises:
        InvalidInputError: ``role`` is not user/assistant/system, ``content`` is not a string, or
            ``ts`` is not a finite number or None; ``.field`` names it.
    """
    _check_role(message.role)
    check_str("content", message.content)
    check_now(message.ts, "ts")


def _check_role(role: object) -> None:
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidInputError(f"must be one of {', '.join(sorted(_ROLES))}, got {role!r}", field="role")


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message in the agent's stream (``role`` is ``user``, ``assistant`` or ``system``)."""

    role: Role
    content: str
    ts: float | None = None

    @classmethod
    def of(cls, role: object, content: object, ts: object = None) -> Message:
        """Validate and build a :class:`Message`; raises :class:`InvalidInputError` naming the field."""
        _check_role(role)
        content_s = "" if content is None else check_str("content", content)
        return cls(cast(Role, role), content_s or "", check_now(ts, "ts"))


@dataclass(frozen=True, slots=True)
class ContextCompressed:
    """Marker: the agent condensed its context."""

    ts: float | None = None


#: Anything the loop detector observes.
Observation = Step | Message | ContextCompressed
