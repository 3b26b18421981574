"""Value types of the worker: what listeners receive (:class:`GoalUpdate`) and live counters
(:class:`WorkerStats`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .._views import metric_point
from ..core.model import Event
from ..core.session import Outcome

__all__ = ["GoalUpdate", "Listener", "WorkerStats", "metric_point"]


@dataclass(frozen=True, slots=True)
class GoalUpdate:
    """One goal's committed update, handed to every listener after the store commit succeeded.

    Listeners (for example the HTTP API's Server-Sent Events stream) see each commit once per
    worker, in commit order per goal. The tuples are the worker's own objects: treat them as
    read-only.
    """

    goal_id: str
    """The goal that was updated."""
    version: int
    """The store version this commit created."""
    events: tuple[Event, ...]
    """The typed events applied by this commit, in the order they were applied."""
    outcomes: tuple[Outcome, ...]
    """What each event did (``GoalSession.apply`` results), one per event, same order."""
    suggestions: tuple[dict[str, Any], ...]
    """The suggestion wire dicts committed to the outbox (``events.suggestion_to_dict`` form)."""
    metrics: tuple[dict[str, Any], ...]
    """One metric point per applied event (see :func:`metric_point`), same order."""
    committed_at: float
    """When the commit returned (seconds since the epoch, worker clock)."""


Listener = Callable[[GoalUpdate], Awaitable[None] | None]
"""A callable told about every commit: sync, or async (awaited with a timeout)."""


@dataclass(slots=True)
class WorkerStats:
    """Live counters of one worker (always available; Prometheus is optional).

    Counters only grow; they are per worker object and start at zero.
    """

    batches: int = 0
    """Batches fetched and processed (empty fetches not counted)."""
    events_received: int = 0
    """Deliveries taken from the bus (redeliveries included)."""
    events_applied: int = 0
    """Events applied to a goal and committed."""
    events_skipped: int = 0
    """Deliveries skipped because their event was already applied (inbox or session dedup)."""
    dead_letters: int = 0
    """Poison events recorded as dead letters."""
    commits: int = 0
    """Successful goal commits."""
    conflicts: int = 0
    """Compare-and-set conflicts (each followed by a reload and retry)."""
    suggestions_committed: int = 0
    """Suggestions written to the outbox."""
    suggestions_delivered: int = 0
    """Suggestions delivered to every sink and marked delivered."""
    sink_failures: int = 0
    """Failed delivery attempts (the suggestion stays in the outbox)."""
    listener_failures: int = 0
    """Listener calls that raised or timed out."""
    polled: int = 0
    """Events taken from action sources and published to the bus."""
    last_lag: float = 0.0
    """Seconds between the newest applied event's ``ts`` and its commit (0 when unknown)."""
