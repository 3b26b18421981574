"""Contracts between goalkeeper's runtime and its backends.

* :mod:`goalkeeper.ports.store`: ``StateStore``, where goal state lives (memory, SQLite, PostgreSQL,
  Redis), opened by URL with :func:`goalkeeper.stores.open_store`.
* :mod:`goalkeeper.ports.bus`: ``Transport``, how events reach the worker (embedded, Redis Streams,
  NATS JetStream), opened by URL with :func:`goalkeeper.bus.open_bus`.

Third parties implement these Protocols without inheriting anything.
"""
