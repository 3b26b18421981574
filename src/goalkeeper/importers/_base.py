"""What every trajectory importer produces: :class:`Trajectory`, a run turned into wire events.

An importer reads one agent-trajectory format (tau-bench / OpenAI chat, SWE-agent ``.traj``,
OpenHands event logs, goalkeeper JSONL) and yields one :class:`Trajectory` per run. The events are
goalkeeper :class:`~goalkeeper.core.model.Event` objects (validated), starting with the run's
``goal`` event, so a trajectory can be fed straight to a :class:`~goalkeeper.GoalSession` or written
as JSONL with :func:`goalkeeper.events.write_jsonl`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.model import Event

__all__ = ["Trajectory"]


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One agent run, converted to goalkeeper events."""

    id: str
    """The run's id within its source (also used as the ``goal_id`` of its events)."""
    events: tuple[Event, ...]
    """The run as wire events, in order; the first is the ``goal`` event."""
    source: str
    """The format it was read from (``"openai-chat"``, ``"swe-agent"``, ``"openhands"``, ``"jsonl"``)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """What the source says about the run beyond its events, e.g. ``reward`` (1.0 = success),
    ``task_id`` and, for tau-bench, ``expected_actions`` (the task's ground-truth tool calls)."""
