"""Structured logging for the worker: stdlib ``logging`` with ``extra=`` fields, optionally as JSON lines.

The worker logs to the ``goalkeeper.worker`` logger and puts machine-readable fields in ``extra``
(``goal_id``, ``event_id``, ``partition``, ``events``, ``seconds``, ``reason``...). Applications keep
their own logging setup; :func:`configure_logging` is what ``goalkeeper worker`` uses.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit

__all__ = ["JsonFormatter", "configure_logging", "logger", "mask_url", "stats_fields"]

logger = logging.getLogger("goalkeeper.worker")
"""The worker's logger."""

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the extra fields, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as one line of JSON."""
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **extras(record),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class _KeyValueFormatter(logging.Formatter):
    """Human-readable lines with the extra fields appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line} {fields}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(level: int = logging.INFO, *, json_lines: bool = False) -> None:
    """Send goalkeeper's logs to stderr at ``level``, as key=value text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else _KeyValueFormatter())
    root = logging.getLogger("goalkeeper")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to log)."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def stats_fields(stats: Any) -> dict[str, Any]:
    """A dataclass of counters as ``stats_<field>`` log fields."""
    return {f"stats_{k}": getattr(stats, k) for k in stats.__dataclass_fields__}
