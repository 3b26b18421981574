"""Where suggestions go after they are committed: the :class:`SuggestionSink` protocol and three sinks.

A sink's :meth:`~SuggestionSink.deliver` either returns (every suggestion handed over) or raises
(none is considered delivered: they stay in the store's outbox and are delivered again later, also
after a restart). Delivery is therefore **at least once**; each suggestion carries a stable
``suggestion_id`` so a receiver can drop repeats.

* :class:`CallbackSink` calls a Python function (sync or async) per suggestion.
* :class:`BusSink` publishes suggestions to a transport (a "topic": another bus or prefix), keyed by
  ``goal_id`` with the ``suggestion_id`` as the event id, so the bus's own dedup applies.
* :class:`WebhookSink` POSTs each suggestion as JSON with an ``Idempotency-Key`` header, retrying
  transient failures (connection errors, 408, 429, 5xx) with exponential back-off. A permanent
  rejection (another 4xx) raises :class:`PermanentDeliveryError`: the worker records the
  suggestion as a dead letter instead of retrying it forever.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigurationError, GoalkeeperError

if TYPE_CHECKING:
    import httpx

    from ..ports.bus import Transport

__all__ = [
    "BusSink",
    "CallbackSink",
    "DeliveryError",
    "PermanentDeliveryError",
    "SuggestionSink",
    "WebhookSink",
    "as_sinks",
]


class DeliveryError(GoalkeeperError):
    """A sink could not deliver suggestions now; they stay in the outbox and are retried."""


class PermanentDeliveryError(DeliveryError):
    """A sink's receiver rejected suggestions for good (for example HTTP 400/404/422).

    Attributes:
        suggestion_ids: the rejected suggestions; the others of the call were delivered.
    """

    def __init__(self, message: str, suggestion_ids: Sequence[str]) -> None:
        super().__init__(message)
        self.suggestion_ids = tuple(suggestion_ids)


@runtime_checkable
class SuggestionSink(Protocol):
    """Something that receives committed suggestions (wire dicts of :mod:`goalkeeper.events`)."""

    name: str
    """A short name used in logs and metric labels."""

    async def deliver(self, suggestions: Sequence[dict[str, Any]]) -> None:
        """Hand over ``suggestions`` (in commit order); raise to have all of them retried later."""
        ...


class CallbackSink:
    """Deliver each suggestion to a Python callable, sync or async.

    Args:
        fn: called as ``fn(suggestion_dict)``; a coroutine function is awaited. An exception means
            "not delivered": the suggestion is retried later (so ``fn`` should be idempotent by
            ``suggestion_id``).
        name: the sink's name in logs and metrics.

    Raises:
        ConfigurationError: ``fn`` is not callable.
    """

    def __init__(self, fn: Callable[[dict[str, Any]], object], *, name: str = "callback") -> None:
        if not callable(fn):
            raise ConfigurationError(f"CallbackSink needs a callable, got {type(fn).__name__}")
        self.name = name
        self._fn = fn

    async def deliver(self, suggestions: Sequence[dict[str, Any]]) -> None:
        """Call the function once per suggestion, in order."""
        for suggestion in suggestions:
            result = self._fn(suggestion)
            if inspect.isawaitable(result):
                await result


class BusSink:
    """Publish suggestions to a transport, one message per suggestion keyed by its goal.

    Args:
        bus: a started :class:`~goalkeeper.ports.bus.Transport`, or a URL (opened on first use and
            closed by :meth:`aclose`). Use its ``prefix`` option to make it a separate "topic",
            for example ``redis://host/0?prefix=suggestions``.
        name: the sink's name in logs and metrics.
    """

    def __init__(self, bus: Transport | str, *, name: str = "bus") -> None:
        self.name = name
        if isinstance(bus, str):
            from ..bus import open_bus  # the bus package is light; its drivers load only when opened

            self._bus: Transport = open_bus(bus)
            self._owned = True
        else:
            self._bus = bus
            self._owned = False
        self._started = not self._owned
        self._lock = asyncio.Lock()

    async def deliver(self, suggestions: Sequence[dict[str, Any]]) -> None:
        """Publish every suggestion (the ``suggestion_id`` doubles as the bus event id)."""
        async with self._lock:
            if not self._started:
                await self._bus.start()
                self._started = True
        try:
            await self._bus.publish_many({**s, "event_id": s["suggestion_id"]} for s in suggestions)
        except GoalkeeperError as exc:
            raise DeliveryError(f"bus sink {self.name!r}: publish failed: {exc}") from exc

    async def aclose(self) -> None:
        """Close the transport if this sink opened it."""
        if self._owned and self._started:
            await self._bus.close()
            self._started = False


_RETRYABLE = frozenset({408, 425, 429})


class WebhookSink:
    """POST each suggestion as JSON to an HTTP endpoint (needs ``httpx``: ``goalkeeper[client]``).

    Every request carries ``Idempotency-Key: <suggestion_id>`` and ``Content-Type: application/json``.
    A 2xx answer means delivered. Connection errors, timeouts, 408/425/429 and 5xx are retried up to
    ``retries`` times with exponential back-off and jitter (``backoff * 2**attempt`` seconds, capped
    at 30 s; a ``Retry-After`` in seconds is honoured up to the same cap); if they keep failing the
    call raises :class:`DeliveryError` and the worker retries the suggestion from the outbox later.
    Any other status is a permanent rejection (:class:`PermanentDeliveryError`).

    Args:
        url: the endpoint (http or https).
        headers: extra headers (for example ``Authorization``).
        timeout: seconds per request.
        retries: retries after the first attempt (>= 0).
        backoff: base back-off in seconds (> 0).
        name: the sink's name in logs and metrics.
        client: an ``httpx.AsyncClient`` to use (tests pass one with a mock transport); the sink
            then does not close it.

    Raises:
        ConfigurationError: a bad argument, or httpx is not installed (with the install hint).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        name: str = "webhook",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"webhook URL must start with http:// or https://, got {url!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be an integer >= 0, got {retries!r}")
        for label, value in (("timeout", timeout), ("backoff", backoff)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ConfigurationError(f"{label} must be a positive number of seconds, got {value!r}")
        if client is None:
            try:
                import httpx
            except ImportError as exc:
                raise ConfigurationError(
                    'the webhook sink needs the "httpx" package: pip install "goalkeeper[client]"'
                ) from exc
            client = httpx.AsyncClient(timeout=timeout)
            self._owned = True
        else:
            self._owned = False
        self.name = name
        self.url = url
        self._client = client
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout = float(timeout)
        self._retries = retries
        self._backoff = float(backoff)
        # A sleeper the tests can replace; it is the only source of waiting in this class.
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def deliver(self, suggestions: Sequence[dict[str, Any]]) -> None:
        """POST each suggestion; raise if any could not be delivered (see the class docstring)."""
        rejected: list[str] = []
        reasons: list[str] = []
        for suggestion in suggestions:
            reason = await self._post(suggestion)
            if reason is not None:
                rejected.append(str(suggestion["suggestion_id"]))
                reasons.append(reason)
        if rejected:
            raise PermanentDeliveryError(f"webhook {self.url} rejected: {'; '.join(reasons)}", rejected)

    async def _post(self, suggestion: dict[str, Any]) -> str | None:
        """POST one suggestion; None when delivered, the reason when permanently rejected."""
        import httpx

        sid = str(suggestion["suggestion_id"])
        headers = {**self._headers, "Idempotency-Key": sid}
        last = ""
        for attempt in range(self._retries + 1):
            delay = min(30.0, self._backoff * 2**attempt) * (0.5 + random.random() / 2)
            try:
                response = await self._client.post(
                    self.url, json=suggestion, headers=headers, timeout=self._timeout
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return None
                if status < 500 and status not in _RETRYABLE:
                    return f"{sid}: HTTP {status}"
                last = f"HTTP {status}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = min(30.0, float(retry_after))
            if attempt < self._retries:
                await self._sleep(delay)
        raise DeliveryError(
            f"webhook {self.url}: {sid} not delivered after {self._retries + 1} attempts ({last})"
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this sink created it."""
        if self._owned:
            await self._client.aclose()


def as_sinks(sinks: Sequence[SuggestionSink | Callable[[dict[str, Any]], object]]) -> list[SuggestionSink]:
    """Normalise the worker's ``sinks=`` argument: a plain callable becomes a :class:`CallbackSink`.

    Raises:
        ConfigurationError: an item is neither a sink nor callable.
    """
    out: list[SuggestionSink] = []
    for sink in sinks:
        if isinstance(sink, SuggestionSink):
            out.append(sink)
        elif callable(sink):
            out.append(CallbackSink(sink))
        else:
            raise ConfigurationError(f"a sink must be a SuggestionSink or a callable, got {sink!r}")
    return out
