"""The background worker: :class:`GoalFeedbackWorker` and what plugs into it.

``GoalFeedbackWorker`` consumes events from a transport (:mod:`goalkeeper.bus`), applies them to
each goal's :class:`~goalkeeper.core.session.GoalSession` in order, commits the new state, the
applied event ids and the suggestions in one store transaction (:mod:`goalkeeper.stores`), acks,
and delivers the suggestions to sinks. ``docs/worker.md`` is the user guide.

Nothing here imports a third-party package at import time: prometheus-client, httpx and the
database drivers load only when a worker, sink or lease backend that needs them is built.
"""

from __future__ import annotations

from .config import WorkerConfig
from .runtime import GoalFeedbackWorker
from .sinks import BusSink, CallbackSink, DeliveryError, PermanentDeliveryError, SuggestionSink, WebhookSink
from .sources import ActionSource
from .types import GoalUpdate, Listener, WorkerStats

__all__ = [
    "ActionSource",
    "BusSink",
    "CallbackSink",
    "DeliveryError",
    "GoalFeedbackWorker",
    "GoalUpdate",
    "Listener",
    "PermanentDeliveryError",
    "SuggestionSink",
    "WebhookSink",
    "WorkerConfig",
    "WorkerStats",
]
