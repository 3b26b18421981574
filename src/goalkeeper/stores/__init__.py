"""State store backends, chosen by URL: :func:`open_store`.

=====================================  ==================  ===================================
URL                                    class               extra to install
=====================================  ==================  ===================================
``memory://``                          ``MemoryStore``     none
``sqlite:///goalkeeper.db`` (default)  ``SQLiteStore``     none
``postgresql://user@host:5432/db``     ``PostgresStore``   ``pip install "goalkeeper[postgres]"``
``redis://host:6379/0``                ``RedisStore``      ``pip install "goalkeeper[redis]"``
=====================================  ==================  ===================================

The table below (:data:`SCHEMES`) is the whole dispatch: a backend module (and its driver) is
imported only when its scheme is used, so ``import goalkeeper`` never imports a database driver.
URL options and the guarantees of each backend are documented in ``docs/stores.md``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .tracker import GoalStateTracker, SyncGoalStateTracker

if TYPE_CHECKING:
    from ._base import BaseStore

__all__ = ["DEFAULT_STORE_URL", "SCHEMES", "GoalStateTracker", "SyncGoalStateTracker", "open_store"]

DEFAULT_STORE_URL = "sqlite:///goalkeeper.db"
"""The zero-config store: a SQLite file ``goalkeeper.db`` in the working directory."""


class Backend(NamedTuple):
    """Where a scheme's store class lives and which extra installs its driver."""

    module: str
    """Module path of the backend."""
    cls: str
    """Class name in that module (it has a ``from_url(url)`` classmethod)."""
    extra: str | None
    """The ``goalkeeper[...]`` extra that installs the driver, or None if none is needed."""
    driver: str | None
    """Top-level module name of the driver, to tell a missing driver from any other ImportError."""


SCHEMES: dict[str, Backend] = {
    "memory": Backend("goalkeeper.stores.memory", "MemoryStore", None, None),
    "sqlite": Backend("goalkeeper.stores.sqlite", "SQLiteStore", None, None),
    "postgresql": Backend("goalkeeper.stores.postgres", "PostgresStore", "postgres", "psycopg"),
    "postgres": Backend("goalkeeper.stores.postgres", "PostgresStore", "postgres", "psycopg"),
    "redis": Backend("goalkeeper.stores.redis", "RedisStore", "redis", "redis"),
    "rediss": Backend("goalkeeper.stores.redis", "RedisStore", "redis", "redis"),
}
"""URL scheme -> backend. ``postgres`` is an alias of ``postgresql``; ``rediss`` is Redis over TLS."""


def open_store(url: str | None = None) -> BaseStore:
    """Return the (not yet opened) store for ``url``; use it with ``async with`` or ``await open()``.

    Args:
        url: ``memory://``, ``sqlite:///path.db``, ``postgresql://...`` or ``redis://...``, with
            options in the query string (``docs/stores.md``). Default: :data:`DEFAULT_STORE_URL`.

    Raises:
        ConfigurationError: not a URL, an unknown scheme (the message lists the known ones and
            suggests the closest), a bad option, or the backend's driver is not installed (the
            message gives the ``pip install`` command).
    """
    if url is None:
        url = DEFAULT_STORE_URL
    if not isinstance(url, str):
        raise ConfigurationError(f"store URL must be a string, got {type(url).__name__}")
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    backend = SCHEMES.get(scheme)
    if backend is None:
        known = ", ".join(f"{s}://" for s in sorted(SCHEMES))
        close = difflib.get_close_matches(scheme, SCHEMES, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]}://?" if close else ""
        shown = f"{scheme!r}" if scheme else "missing"
        raise ConfigurationError(f"store URL {url!r}: scheme {shown} is not known; known: {known}.{hint}")
    try:
        module = importlib.import_module(backend.module)
    except ImportError as exc:
        if backend.driver is None or exc.name is None or exc.name.split(".")[0] != backend.driver:
            raise
        raise ConfigurationError(
            f"the {scheme}:// store needs the {backend.driver!r} package: "
            f'pip install "goalkeeper[{backend.extra}]"'
        ) from exc
    store: BaseStore = getattr(module, backend.cls).from_url(url)
    return store
