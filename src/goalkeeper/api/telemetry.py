"""Prometheus metrics of the API, in a per-app registry (no global collector state).

``GET /metrics`` exposes these together with the embedded worker's own registry, so one scrape
sees both. Names:

* ``goalkeeper_api_requests_total{method, route, status}`` — requests answered;
* ``goalkeeper_api_request_seconds{method, route}`` — latency histogram;
* ``goalkeeper_api_events_total{result}`` — events received (``accepted``, ``duplicate``, ``invalid``);
* ``goalkeeper_api_sse_streams`` — open SSE streams.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiMetrics"]


class ApiMetrics:
    """The API's counters, histograms and gauges, registered in their own ``CollectorRegistry``."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "goalkeeper_api_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "goalkeeper_api_request_seconds",
            "HTTP request latency in seconds, by method and route template (SSE streams excluded).",
            ("method", "route"),
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.events = Counter(
            "goalkeeper_api_events",
            "Events received over HTTP, by result (accepted, duplicate, invalid).",
            ("result",),
            registry=self.registry,
        )
        self.streams = Gauge(
            "goalkeeper_api_sse_streams", "Open Server-Sent Events streams.", registry=self.registry
        )

    def render(self, *extra_registries: Any) -> bytes:
        """The Prometheus text exposition of this registry and of ``extra_registries``."""
        from prometheus_client import generate_latest

        out = generate_latest(self.registry)
        for registry in extra_registries:
            if registry is not None:
                out += generate_latest(registry)
        return out
