"""What an agent does, as the core sees it: :class:`Step`, :class:`Message`, :class:`ContextCompressed`.

These are the inputs of the detectors and the tracker. They are frozen value objects; build them
with :meth:`Step.of` (which validates and normalises loose input and raises
:class:`~goalkeeper.errors.InvalidInputError` naming the bad field) or directly when the values are
already clean.

Two derived keys drive loop detection:

* :attr:`Step.action_key`: the tool and its canonical arguments (see
  :func:`~goalkeeper.core.text.canonical_args`); the agent's ``thought`` text is *not* part of it.
* :attr:`Step.observation_key`: the result of the call, with volatile details masked, the error
  text (if any) and the exit code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, cast

from ..errors import InvalidInputError
from .text import canonical_args, mask_volatile, stable_hash

__all__ = ["ContextCompressed", "Message", "Observation", "Role", "Step"]

Role = Literal["user", "assistant", "system"]
_ROLES: frozenset[str] = frozenset({"user", "assistant", "system"})

#: How many characters of output take part in the observation key. Long outputs (file dumps) are
#: compared by their head and tail, which is where status lines and errors live.
_OBS_HEAD = 2000
_OBS_TAIL = 500


def _check_str(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=name)
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
        tool_s = _check_str("tool", tool) or ""
        desc_s = _check_str("description", description) or ""
        thought_s = _check_str("thought", thought) or ""
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
            import json

            try:
                out_s = json.dumps(output, sort_keys=True, default=repr)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"cannot be encoded: {exc}", field="output") from exc
        err_s = _check_str("error", error, optional=True) or None
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

    @cached_property
    def action_key(self) -> str:
        """Identity of the action: tool plus canonical arguments; the description stands in when
        there are neither tool nor arguments. Thought text never takes part."""
        if not self.tool and not self.args:
            return "desc:" + mask_volatile(self.description.lower())
        return f"{self.tool}:{canonical_args(self.args)}"

    @cached_property
    def observation_key(self) -> str:
        """Identity of the result: masked output head/tail, masked error, exit code (hashed)."""
        out = self.output
        if len(out) > _OBS_HEAD + _OBS_TAIL:
            out = out[:_OBS_HEAD] + "\u2026" + out[-_OBS_TAIL:]
        err = mask_volatile(self.error) if self.error is not None else ""
        return stable_hash(f"{mask_volatile(out)}\x1f{err}\x1f{self.exit_code}")

    @property
    def text(self) -> str:
        """The step as free text (tool, description and argument values), for relevance scoring."""
        parts = [self.tool, self.description]
        parts.extend(str(v) for v in self.args.values() if isinstance(v, (str, int, float)))
        return " ".join(p for p in parts if p)

    def __getstate__(self) -> dict[str, Any]:  # cached_property values are not part of the state
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Message:
    """A chat message in the agent's stream (``role`` is ``user``, ``assistant`` or ``system``)."""

    role: Role
    content: str
    ts: float | None = None

    @classmethod
    def of(cls, role: object, content: object, ts: object = None) -> Message:
        """Validate and build a :class:`Message`; raises :class:`InvalidInputError` naming the field."""
        if role not in _ROLES:
            raise InvalidInputError(f"must be one of {', '.join(sorted(_ROLES))}, got {role!r}", field="role")
        content_s = "" if content is None else _check_str("content", content)
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
            raise InvalidInputError("must be a number of seconds or null", field="ts")
        return cls(cast(Role, role), content_s or "", None if ts is None else float(ts))


@dataclass(frozen=True, slots=True)
class ContextCompressed:
    """Marker: the agent condensed its context."""

    ts: float | None = None


#: Anything the loop detector observes.
Observation = Step | Message | ContextCompressed
