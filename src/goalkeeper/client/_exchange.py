"""Sending one request: the retry policy and the mapping of HTTP errors onto goalkeeper's tree.

Sans I/O like the rest of the client: :func:`exchange` yields the request (and the back-off sleeps)
and receives the response or the transport failure from the driver.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from ..errors import (
    ConfigurationError,
    GoalError,
    GoalkeeperError,
    GoalNotFound,
    InvalidInputError,
    ValidationError,
)
from ._errors import AuthenticationError, ServiceUnavailable
from ._protocol import Failure, Instruction, Reply, Request, Response, Sleep

__all__ = ["RetryPolicy", "error_for", "exchange"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a failed request is retried.

    A request is retried after a refused connection (it never left), and, if it is idempotent,
    after a timeout or a 5xx response. Event posts are idempotent (each event carries its
    ``event_id``), so they are retried; creating a goal and sending feedback are retried only when
    the connection was refused.

    Attributes:
        attempts: retries after the first try (0 disables retrying).
        backoff: delay before the first retry, in seconds; it doubles with every retry.
        max_backoff: the longest delay between two tries, in seconds.
        jitter: spread each delay uniformly over [delay/2, delay], so many clients that failed
            together do not retry together.
    """

    attempts: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 0:
            raise ConfigurationError(f"attempts must be an int >= 0, got {self.attempts!r}")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 3600:
                raise ConfigurationError(f"{name} must be seconds in [0, 3600), got {value!r}")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); a server's Retry-After wins."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff)
        base = float(min(self.backoff * 2 ** (retry - 1), self.max_backoff))
        return base * (0.5 + random.random() / 2) if self.jitter else base


def error_for(response: Response, request: Request) -> GoalkeeperError:
    """The goalkeeper error a 4xx/5xx response stands for (the in-process client's error)."""
    data = response.json()
    body = data if isinstance(data, Mapping) else {}
    message = str(body.get("message") or body.get("detail") or f"HTTP {response.status}")
    field = body.get("field") if isinstance(body.get("field"), str) else None
    status = response.status
    where = f"{request.method} {request.path}"
    if status == 401 or status == 403:
        return AuthenticationError(f"{where}: {message} (check the client's token)")
    if status == 404:
        goal_id = _goal_in(request.path)
        if goal_id is not None:
            return GoalNotFound(goal_id)
        return InvalidInputError(message, field="suggestion_id" if "/suggestions/" in request.path else None)
    if status == 409:
        return GoalError(message)
    if status in (400, 413, 422):
        cls = InvalidInputError if status == 413 else ValidationError
        return cls(message, field=field)
    if status >= 500:
        return ServiceUnavailable(f"{where}: HTTP {status}: {message}", status=status)
    return ConfigurationError(f"{where}: HTTP {status}: {message}")


def _goal_in(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "v1" and parts[2] == "goals":
        return unquote(parts[3])
    return None


def exchange(request: Request, retry: RetryPolicy) -> Generator[Instruction, Reply, Response]:
    """Send ``request``, retrying per ``retry``; return a 2xx/3xx response or raise its error.

    Raises:
        ServiceUnavailable: no response, or 5xx, after the allowed retries.
        GoalkeeperError: the mapped error of a 4xx response (never retried: the call must change).
    """
    tries = 0
    while True:
        reply = yield request
        if isinstance(reply, Failure):
            if tries < retry.attempts and (request.idempotent or not reply.sent):
                tries += 1
                yield Sleep(retry.delay(tries))
                continue
            raise ServiceUnavailable(
                f"{request.method} {request.path}: {type(reply.error).__name__}: {reply.error}"
            ) from reply.error
        assert isinstance(reply, Response), "a driver must answer a request with a Response or a Failure"
        if reply.status >= 500 and request.idempotent and tries < retry.attempts:
            tries += 1
            yield Sleep(retry.delay(tries, reply.retry_after))
            continue
        if reply.status >= 400:
            raise error_for(reply, request)
        return reply
