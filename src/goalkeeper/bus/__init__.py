"""Event transports, chosen by URL: :func:`open_bus`.

======================  ===============================================  ==========================
URL                     backend                                          install
======================  ===============================================  ==========================
``memory://``           embedded, in-process (volatile)                  nothing
``memory:///path.db``   embedded, durable SQLite queue (same file as     nothing
                        the SQLite store)
``redis://host/0``      Redis Streams: partition streams, consumer       ``goalkeeper[redis]``
                        groups, XAUTOCLAIM
``rediss://...``        the same over TLS                                ``goalkeeper[redis]``
``nats://host:4222``    NATS JetStream: subject per partition, durable   ``goalkeeper[nats]``
                        pull consumers, ``Nats-Msg-Id`` dedup
======================  ===============================================  ==========================

Options ride in the query string (``?partitions=32&visibility_timeout=60``) or as keyword
arguments; see :class:`goalkeeper.bus._common.BusOptions` and ``docs/transport.md``. Drivers are
imported only when their scheme is opened, so ``import goalkeeper`` never needs one.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any
from urllib.parse import urlsplit

from goalkeeper.errors import ConfigurationError
from goalkeeper.ports.bus import Transport

__all__ = ["SCHEMES", "open_bus"]

SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("goalkeeper.bus.memory", "MemoryBus", None),
    "redis": ("goalkeeper.bus.redis_streams", "RedisStreamsBus", "redis"),
    "rediss": ("goalkeeper.bus.redis_streams", "RedisStreamsBus", "redis"),
    "nats": ("goalkeeper.bus.nats", "NatsJetStreamBus", "nats"),
    "tls": ("goalkeeper.bus.nats", "NatsJetStreamBus", "nats"),
}
"""URL scheme -> (module, class, optional extra that installs its driver)."""


def open_bus(url: str = "memory://", **options: Any) -> Transport:
    """Return the transport for ``url``; nothing connects until ``start()`` / ``async with``.

    Args:
        url: ``memory://``, ``memory:///path.db``, ``redis://host:6379/0`` or ``nats://host:4222``,
            with options in the query string.
        **options: The same options as keyword arguments (they win over the query string).

    Raises:
        ConfigurationError: unknown scheme (with a "did you mean" hint), bad option, or the
            backend's driver is not installed (with the ``pip install`` command).

    Example:
        >>> bus = open_bus("memory://?partitions=4")
        >>> bus.partitions
        4
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"bus URL must be a string, got {type(url).__name__}")
    scheme = urlsplit(url).scheme
    try:
        module_name, class_name, extra = SCHEMES[scheme]
    except KeyError:
        close = difflib.get_close_matches(scheme, SCHEMES, n=1)
        hint = f"; did you mean {close[0]}://?" if close else ""
        known = ", ".join(f"{s}://" for s in sorted(SCHEMES))
        raise ConfigurationError(f"unknown bus scheme {scheme!r} in {url!r}{hint} (known: {known})") from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # The one guarded import of the bus package: the driver of an optional extra is missing.
        raise ConfigurationError(
            f'{scheme}:// needs the {exc.name!r} package: pip install "goalkeeper[{extra}]"'
        ) from exc
    transport: Transport = getattr(module, class_name).from_url(url, **options)
    return transport
