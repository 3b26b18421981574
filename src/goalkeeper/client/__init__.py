"""Clients of goalkeeper: talk to a running ``goalkeeper serve``, or run goals in this process.

* :class:`LocalClient` / :class:`AsyncLocalClient`: goals live in this process (a
  :class:`~goalkeeper.core.goals.GoalBook`); nothing to install, no server.
* :class:`GoalkeeperClient` / :class:`AsyncGoalkeeperClient`: goals live in a goalkeeper server;
  ``pip install "goalkeeper[client]"``.

All four have the same methods with the same results (:class:`GoalView`, :class:`Receipt`,
:class:`Decision`) and raise the same errors, so code written against one runs on the others::

    from goalkeeper.client import connect

    with connect("local") as gk:             # or connect("http://127.0.0.1:8000", token=...)
        gk.create_goal("Find the population of Paris", goal_id="paris")
        decision = gk.step("paris", "search", {"q": "paris population"}, output="no results")
        decision.action                      # 'continue', 'adjust', 'replan' or 'abort'

The sync and async clients share one sans-I/O implementation (``_protocol.py``, ``_core.py``):
operations are generators that yield the requests and waits they need; the sync client drives them
with ``httpx.Client`` and ``time.sleep``, the async one with ``httpx.AsyncClient`` and
``asyncio.sleep``. ``docs/client.md`` is the user guide.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ._core import RetryPolicy
from ._errors import AuthenticationError, ServiceUnavailable
from ._facade import AsyncClientBase, SyncClientBase
from ._local import AsyncLocalClient, LocalClient
from ._model import ACTIONS, Action, Decision, GoalView, Receipt

if TYPE_CHECKING:
    from ._http import AsyncGoalkeeperClient, GoalkeeperClient

__all__ = [
    "ACTIONS",
    "Action",
    "AsyncClientBase",
    "AsyncGoalkeeperClient",
    "AsyncLocalClient",
    "AuthenticationError",
    "Decision",
    "GoalView",
    "GoalkeeperClient",
    "LocalClient",
    "Receipt",
    "RetryPolicy",
    "ServiceUnavailable",
    "SyncClientBase",
    "connect",
    "connect_async",
]

#: The remote clients need httpx; they are imported on first use, with an install hint.
_REMOTE = ("GoalkeeperClient", "AsyncGoalkeeperClient")


def _http_module() -> Any:
    try:
        return importlib.import_module("goalkeeper.client._http")
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != "httpx":
            raise
        raise ConfigurationError(
            'the goalkeeper HTTP client needs the "httpx" package: pip install "goalkeeper[client]"'
        ) from exc


def __getattr__(name: str) -> Any:
    if name in _REMOTE:
        value = getattr(_http_module(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'goalkeeper.client' has no attribute {name!r}")


def _target(target: str | None) -> str:
    value = target if target is not None else os.environ.get("GOALKEEPER_URL") or "local"
    if not isinstance(value, str):
        raise ConfigurationError(f"target must be 'local' or an http(s) URL, got {type(value).__name__}")
    if value in ("local", "local://"):
        return "local"
    if value.startswith(("http://", "https://")):
        return value
    raise ConfigurationError(f"target must be 'local' or an http:// or https:// URL, got {value!r}")


def connect(target: str | None = None, **options: Any) -> SyncClientBase:
    """A blocking client for ``target``: ``"local"`` (in-process) or a server's URL.

    Args:
        target: ``"local"`` or ``"http(s)://host:port"`` (default: ``$GOALKEEPER_URL``, else
            ``"local"``).
        **options: passed to :class:`LocalClient` (``book``, ``retention``, ``clock``) or
            :class:`GoalkeeperClient` (``token``, ``timeout``, ``retry``, ``decision_timeout``, ...).

    Raises:
        ConfigurationError: an unknown target, a bad option, or httpx missing for a URL.
    """
    where = _target(target)
    try:
        if where == "local":
            return LocalClient(**options)
        client: SyncClientBase = _http_module().GoalkeeperClient(where, **options)
    except TypeError as exc:  # an option the chosen client does not take
        raise ConfigurationError(f"connect({where!r}): {exc}") from None
    return client


def connect_async(target: str | None = None, **options: Any) -> AsyncClientBase:
    """An async client for ``target``; see :func:`connect`."""
    where = _target(target)
    try:
        if where == "local":
            return AsyncLocalClient(**options)
        client: AsyncClientBase = _http_module().AsyncGoalkeeperClient(where, **options)
    except TypeError as exc:
        raise ConfigurationError(f"connect_async({where!r}): {exc}") from None
    return client
