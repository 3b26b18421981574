"""The remote clients: :class:`GoalkeeperClient` and :class:`AsyncGoalkeeperClient` over httpx.

They only move bytes: every request, retry, poll and error comes from the shared sans-I/O
operations (:class:`~goalkeeper.client._core.HttpOps`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import ConfigurationError
from ._core import HttpOps, RetryPolicy
from ._facade import AsyncClientBase, SyncClientBase
from ._protocol import Failure, Request, Response

__all__ = ["DEFAULT_URL", "AsyncGoalkeeperClient", "GoalkeeperClient"]

#: Where ``goalkeeper serve`` listens by default.
DEFAULT_URL = "http://127.0.0.1:8000"
_JSON = {"Content-Type": "application/json"}


def _setup(
    base_url: str, token: str | None, timeout: float, headers: Mapping[str, str] | None
) -> tuple[str, dict[str, str], httpx.Timeout]:
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise ConfigurationError(f"timeout must be seconds in (0, 3600], got {timeout!r}")
    if token is None:
        token = os.environ.get("GOALKEEPER_TOKEN") or None
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise ConfigurationError("token must be a non-empty string")
    out = {"User-Agent": f"goalkeeper-client/{__version__}", "Accept": "application/json", **(headers or {})}
    if token is not None:
        out["Authorization"] = f"Bearer {token}"
    return base_url.rstrip("/"), out, httpx.Timeout(float(timeout))


def _failure(exc: httpx.TransportError) -> Failure:
    # A refused or timed-out connect, or no free pooled connection, means the request never left.
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return Failure(exc, sent=not never_sent)


def _response(r: httpx.Response) -> Response:
    retry_after: float | None = None
    raw = r.headers.get("Retry-After")
    if raw is not None:
        try:
            retry_after = float(raw)
        except ValueError:
            retry_after = None  # an HTTP date: fall back to the policy's own back-off
    return Response(r.status_code, r.content, retry_after)


class GoalkeeperClient(SyncClientBase):
    """A client of a running ``goalkeeper serve`` (blocking calls).

    Args:
        base_url: the server (default ``http://127.0.0.1:8000``).
        token: the bearer token (default: ``$GOALKEEPER_TOKEN`` if set; none for a loopback server
            without tokens).
        timeout: seconds allowed for each request.
        retry: when failed requests are retried (default :class:`RetryPolicy`).
        decision_timeout: how long :meth:`record` waits for the server's worker to apply the event.
        transport: an httpx transport (tests pass ``httpx.MockTransport`` or a WSGI/ASGI one).
        headers: extra headers of every request.

    Raises:
        ConfigurationError: a bad argument.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        decision_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url, hdrs, tmo = _setup(base_url, token, timeout, headers)
        super().__init__(HttpOps(retry or RetryPolicy(), decision_timeout=decision_timeout))
        self.base_url = url
        self._http = httpx.Client(base_url=url, headers=hdrs, timeout=tmo, transport=transport)

    def _exchange(self, request: Request) -> Response | Failure:
        content = request.content()
        try:
            r = self._http.request(
                request.method,
                request.path,
                params=dict(request.params),
                content=content,
                headers=_JSON if content is not None else None,
            )
        except httpx.TransportError as exc:
            return _failure(exc)
        return _response(r)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class AsyncGoalkeeperClient(AsyncClientBase):
    """A client of a running ``goalkeeper serve`` (coroutine calls); arguments as :class:`GoalkeeperClient`.

    ``transport`` is an ``httpx.AsyncBaseTransport`` (tests pass ``httpx.ASGITransport(app)``).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        decision_timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        url, hdrs, tmo = _setup(base_url, token, timeout, headers)
        super().__init__(HttpOps(retry or RetryPolicy(), decision_timeout=decision_timeout))
        self.base_url = url
        self._http = httpx.AsyncClient(base_url=url, headers=hdrs, timeout=tmo, transport=transport)

    async def _exchange(self, request: Request) -> Response | Failure:
        content = request.content()
        try:
            r = await self._http.request(
                request.method,
                request.path,
                params=dict(request.params),
                content=content,
                headers=_JSON if content is not None else None,
            )
        except httpx.TransportError as exc:
            return _failure(exc)
        return _response(r)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
