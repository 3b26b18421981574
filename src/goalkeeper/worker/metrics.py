"""Prometheus metrics of one worker, in the worker's own ``CollectorRegistry``.

``prometheus-client`` is imported only when a worker is built (it ships with the ``server`` extra);
without it the worker runs with :class:`NullMetrics` and ``metrics_text()`` explains what to
install. Each worker has its own registry, so two workers in one process (or one test after
another) never share or collide on counters.

=========================================  =========  ==========================================
metric                                     type       meaning
=========================================  =========  ==========================================
``goalkeeper_worker_events_total``         counter    deliveries by ``result``: applied,
                                                      duplicate, dead_letter, retried
``goalkeeper_worker_batches_total``        counter    non-empty batches processed
``goalkeeper_worker_batch_seconds``        histogram  fetch-to-ack time of a batch
``goalkeeper_worker_commits_total``        counter    goal commits by ``result``: ok, conflict
``goalkeeper_worker_suggestions_total``    counter    suggestions by ``stage``: committed,
                                                      delivered, failed, dead_letter
``goalkeeper_worker_dead_letters_total``   counter    dead-letter records written
``goalkeeper_worker_lag_seconds``          gauge      commit time minus the newest event's ``ts``
``goalkeeper_worker_partitions``           gauge      partitions this worker holds
``goalkeeper_worker_sessions``             gauge      goal sessions cached in memory
=========================================  =========  ==========================================
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .processing import BatchResult
    from .types import WorkerStats

__all__ = ["NullMetrics", "WorkerMetrics", "make_metrics", "record_batch"]


class NullMetrics:
    """Stand-in when prometheus-client is not installed: every update is a no-op."""

    registry: Any = None

    def event(self, result: str, n: int = 1) -> None:
        """Count deliveries."""

    def batch(self, seconds: float) -> None:
        """Record a processed batch."""

    def commit(self, result: str, n: int = 1) -> None:
        """Count commits."""

    def suggestion(self, stage: str, n: int = 1) -> None:
        """Count suggestions."""

    def dead_letter(self, n: int = 1) -> None:
        """Count dead letters."""

    def gauges(
        self, *, lag: float | None = None, partitions: int | None = None, sessions: int | None = None
    ) -> None:
        """Set gauges."""

    def text(self) -> bytes:
        """The exposition text (explains what is missing)."""
        return b'# prometheus-client is not installed: pip install "goalkeeper[server]"\n'


class WorkerMetrics(NullMetrics):
    """The worker's Prometheus metrics (see the module docstring)."""

    def __init__(self) -> None:
        import prometheus_client as pc

        self._pc = pc
        self.registry = pc.CollectorRegistry(auto_describe=True)
        r = self.registry
        self._events = pc.Counter(
            "goalkeeper_worker_events", "Deliveries handled, by result.", ["result"], registry=r
        )
        self._batches = pc.Counter("goalkeeper_worker_batches", "Non-empty batches processed.", registry=r)
        self._batch_seconds = pc.Histogram(
            "goalkeeper_worker_batch_seconds",
            "Fetch-to-ack time of one batch.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self._commits = pc.Counter(
            "goalkeeper_worker_commits", "Goal commits, by result.", ["result"], registry=r
        )
        self._suggestions = pc.Counter(
            "goalkeeper_worker_suggestions", "Suggestions, by stage.", ["stage"], registry=r
        )
        self._dead = pc.Counter("goalkeeper_worker_dead_letters", "Dead-letter records written.", registry=r)
        self._lag = pc.Gauge(
            "goalkeeper_worker_lag_seconds", "Commit time minus newest event ts.", registry=r
        )
        self._parts = pc.Gauge("goalkeeper_worker_partitions", "Partitions held.", registry=r)
        self._sessions = pc.Gauge("goalkeeper_worker_sessions", "Goal sessions cached.", registry=r)

    def event(self, result: str, n: int = 1) -> None:
        """Count deliveries."""
        if n:
            self._events.labels(result).inc(n)

    def batch(self, seconds: float) -> None:
        """Record a processed batch."""
        self._batches.inc()
        self._batch_seconds.observe(seconds)

    def commit(self, result: str, n: int = 1) -> None:
        """Count commits."""
        if n:
            self._commits.labels(result).inc(n)

    def suggestion(self, stage: str, n: int = 1) -> None:
        """Count suggestions."""
        if n:
            self._suggestions.labels(stage).inc(n)

    def dead_letter(self, n: int = 1) -> None:
        """Count dead letters."""
        if n:
            self._dead.inc(n)

    def gauges(
        self, *, lag: float | None = None, partitions: int | None = None, sessions: int | None = None
    ) -> None:
        """Set gauges."""
        if lag is not None:
            self._lag.set(lag)
        if partitions is not None:
            self._parts.set(partitions)
        if sessions is not None:
            self._sessions.set(sessions)

    def text(self) -> bytes:
        """The Prometheus exposition text of this worker's registry."""
        data: bytes = self._pc.generate_latest(self.registry)
        return data


def make_metrics() -> NullMetrics:
    """:class:`WorkerMetrics` if prometheus-client is installed, else :class:`NullMetrics`."""
    try:
        return WorkerMetrics()
    except ImportError:
        return NullMetrics()


def record_batch(
    stats: WorkerStats, metrics: NullMetrics, result: BatchResult, seconds: float, sessions: int
) -> list[dict[str, Any]]:
    """Count one processed batch in the stats and the metrics; return its committed suggestions."""
    suggestions = [x for u in result.updates for x in u.suggestions]
    stats.batches += 1
    stats.events_applied += result.applied
    stats.events_skipped += result.skipped
    stats.dead_letters += result.dead_letters
    stats.commits += len(result.updates)
    stats.conflicts += result.conflicts
    stats.suggestions_committed += len(suggestions)
    if result.newest_ts is not None:
        stats.last_lag = max(0.0, time.time() - result.newest_ts)
    metrics.event("applied", result.applied)
    metrics.event("duplicate", result.skipped)
    metrics.event("dead_letter", result.dead_letters)
    metrics.dead_letter(result.dead_letters)
    metrics.commit("ok", len(result.updates))
    metrics.commit("conflict", result.conflicts)
    metrics.suggestion("committed", len(suggestions))
    metrics.batch(seconds)
    metrics.gauges(lag=stats.last_lag if result.newest_ts is not None else None, sessions=sessions)
    return suggestions
