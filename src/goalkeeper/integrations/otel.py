"""OpenTelemetry: goalkeeper's metrics and decisions on the agent's own spans.

Off by default. Turn it on per monitor (``GoalMonitor(..., otel=True)``, which every integration
passes through) or call :func:`annotate_span` yourself. Only ``opentelemetry-api`` is needed
(``pip install "goalkeeper[otel]"``); with no SDK configured the API's spans record nothing and
this costs next to nothing.

On the current span (the tool call's or the agent's, whichever is current when the step is
recorded) it sets these attributes, overwritten by each later decision on the same span:

==============================  =====================================================
attribute                       value
==============================  =====================================================
``goalkeeper.goal_id``          the goal
``goalkeeper.version``          the goal's state version after the event
``goalkeeper.action``           ``continue``, ``adjust``, ``replan`` or ``abort``
``goalkeeper.progress``         ``current_progress`` in [0, 1]
``goalkeeper.drift_score``      in [0, 1]
``goalkeeper.loop_risk``        in [0, 1]
==============================  =====================================================

and adds one span event ``goalkeeper.suggestion`` per new suggestion (attributes
``goalkeeper.suggestion_id``, ``goalkeeper.kind``, ``goalkeeper.rule``, ``goalkeeper.message``).
"""

from __future__ import annotations

from typing import Any

from ..client import Decision
from ._optional import require

_trace: Any = require("opentelemetry.trace", "otel", "the OpenTelemetry integration")

__all__ = ["ATTRIBUTE_PREFIX", "SUGGESTION_EVENT", "annotate_span"]

#: Prefix of every attribute goalkeeper sets.
ATTRIBUTE_PREFIX = "goalkeeper."
#: Name of the span event of a suggestion.
SUGGESTION_EVENT = "goalkeeper.suggestion"


def annotate_span(decision: Decision, span: Any = None) -> None:
    """Put ``decision`` on ``span`` (default: the current span); a no-op on a non-recording span.

    Args:
        decision: what goalkeeper answered.
        span: an ``opentelemetry.trace.Span``; ``None`` means ``trace.get_current_span()``.
    """
    target = _trace.get_current_span() if span is None else span
    if not target.is_recording():
        return
    m = decision.metrics
    target.set_attributes(
        {
            "goalkeeper.goal_id": decision.goal_id,
            "goalkeeper.version": decision.version,
            "goalkeeper.action": decision.action,
            "goalkeeper.progress": float(m.get("current_progress", 0.0)),
            "goalkeeper.drift_score": float(m.get("drift_score", 0.0)),
            "goalkeeper.loop_risk": float(m.get("loop_risk", 0.0)),
        }
    )
    for s in decision.suggestions:
        target.add_event(
            SUGGESTION_EVENT,
            {
                "goalkeeper.suggestion_id": s.suggestion_id,
                "goalkeeper.kind": s.kind.value,
                "goalkeeper.rule": s.rule,
                "goalkeeper.message": s.message,
            },
        )
