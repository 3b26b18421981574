"""Partition leases: how several worker processes share the bus partitions and take over a dead one's.

Every worker of a group is a **member** that renews a heartbeat every ``lease_ttl / 3`` seconds.
The live members, sorted by name, split the partitions round-robin (partition ``p`` belongs to
member ``p % n``). A worker then holds a **lease** on each of its partitions before consuming it:

* a lease is granted when it is free, released, expired, or already ours;
* it is renewed with the heartbeat; a worker fetches from a partition only while its lease is valid
  by its own clock (renewed less than ``lease_ttl`` minus a safety margin ago);
* a graceful shutdown (or a partition moving to a new member) **releases** the lease *clean*,
  after every delivery of that partition was acked or released;
* a lease that **expired** (its holder died or lost touch) is granted *dirty*, together with how
  long ago it expired. The new holder then waits until the old holder's unacked deliveries are due
  again (the bus's visibility timeout after the expiry) before fetching, so the redelivered events
  come before newer ones and per-goal order holds across the takeover. On a bus that can rewind a
  partition (NATS, whose redeliveries come back in the order they came due rather than in publish
  order) the new holder rewinds it instead and fetches at once (:mod:`goalkeeper.worker.partitions`).

Backends, chosen by URL (by default derived from the store's URL): ``sqlite:///file`` (stdlib
``sqlite3``, for processes on one machine), ``postgresql://...`` (psycopg, server clock),
``redis://...`` (Lua scripts, server clock) and ``local://`` (this process only).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreError

__all__ = [
    "LeaseBackend",
    "LeaseGrant",
    "LocalLeases",
    "SQLiteLeases",
    "assign",
    "lease_url_for",
    "open_leases",
]


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A granted lease on one partition."""

    partition: int
    """The partition."""
    clean: bool
    """True if the previous holder released it (or nobody held it, or we did)."""
    expired_ago: float
    """For a dirty grant: seconds since the previous holder's lease expired (>= 0)."""


class LeaseBackend(Protocol):
    """Where members and leases of worker groups are recorded. All methods are coroutines."""

    async def open(self) -> None:
        """Connect and create the tables or keys (idempotent)."""
        ...

    async def close(self) -> None:
        """Disconnect (idempotent)."""
        ...

    async def heartbeat(self, group: str, member: str, ttl: float) -> list[str]:
        """Renew ``member`` for ``ttl`` seconds; return the live members of ``group``, sorted."""
        ...

    async def acquire(self, group: str, partitions: list[int], member: str, ttl: float) -> list[LeaseGrant]:
        """Take or renew the leases that are free, released, expired or ours; return those granted."""
        ...

    async def release(self, group: str, partitions: list[int], member: str) -> None:
        """Release ``member``'s leases on ``partitions`` cleanly."""
        ...

    async def leave(self, group: str, member: str) -> None:
        """Remove ``member`` from the group (its leases should be released first)."""
        ...


def assign(members: list[str], partitions: int, member: str) -> list[int]:
    """The partitions ``member`` should own when ``members`` (sorted) share ``partitions``."""
    if member not in members:
        return []
    n, i = len(members), members.index(member)
    return [p for p in range(partitions) if p % n == i]


class LocalLeases:
    """Leases inside one process (``local://``): for stores that cannot be shared (``memory://``)."""

    def __init__(self) -> None:
        self._members: dict[tuple[str, str], float] = {}
        self._leases: dict[tuple[str, int], tuple[str | None, float]] = {}

    async def open(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def heartbeat(self, group: str, member: str, ttl: float) -> list[str]:
        """Renew the member; return the live ones."""
        now = time.time()
        self._members[(group, member)] = now + ttl
        return sorted(m for (g, m), until in self._members.items() if g == group and until > now)

    async def acquire(self, group: str, partitions: list[int], member: str, ttl: float) -> list[LeaseGrant]:
        """Grant free, released, expired or own leases."""
        now, out = time.time(), []
        for p in partitions:
            owner, until = self._leases.get((group, p), (None, 0.0))
            if owner is not None and owner != member and until > now:
                continue
            clean = owner is None or owner == member
            self._leases[(group, p)] = (member, now + ttl)
            out.append(LeaseGrant(p, clean, 0.0 if clean else now - until))
        return out

    async def release(self, group: str, partitions: list[int], member: str) -> None:
        """Release the member's leases."""
        for p in partitions:
            if self._leases.get((group, p), (None, 0.0))[0] == member:
                self._leases[(group, p)] = (None, 0.0)

    async def leave(self, group: str, member: str) -> None:
        """Forget the member."""
        self._members.pop((group, member), None)


class SQLiteLeases:
    """Leases in a SQLite file (tables ``gk_worker_members`` / ``gk_worker_leases``), for workers on
    one machine; usually the embedded deployment's own database file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Open the file and create the tables."""
        if self._con is None:
            await asyncio.to_thread(self._open)

    def _open(self) -> None:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA busy_timeout=30000")
        con.execute(
            "CREATE TABLE IF NOT EXISTS gk_worker_members (grp TEXT NOT NULL, member TEXT NOT NULL, "
            "expires_at REAL NOT NULL, PRIMARY KEY (grp, member))"
        )
        con.execute(
            "CREATE TABLE IF NOT EXISTS gk_worker_leases (grp TEXT NOT NULL, part INTEGER NOT NULL, "
            "owner TEXT, expires_at REAL NOT NULL, PRIMARY KEY (grp, part))"
        )
        self._con = con

    async def close(self) -> None:
        """Close the file."""
        con, self._con = self._con, None
        if con is not None:
            await asyncio.to_thread(con.close)

    async def _run(self, fn: Any, *args: Any) -> Any:
        def locked() -> Any:
            with self._lock:
                if self._con is None:
                    raise StoreError("lease database is not open")
                con = self._con
                try:
                    con.execute("BEGIN IMMEDIATE")
                    try:
                        result = fn(con, time.time(), *args)
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                    con.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    raise StoreError(f"sqlite leases ({self.path}): {exc}") from exc

        return await asyncio.to_thread(locked)

    async def heartbeat(self, group: str, member: str, ttl: float) -> list[str]:
        """Renew the member; return the live ones."""

        def body(con: sqlite3.Connection, now: float) -> list[str]:
            con.execute("INSERT OR REPLACE INTO gk_worker_members VALUES (?,?,?)", (group, member, now + ttl))
            con.execute("DELETE FROM gk_worker_members WHERE grp=? AND expires_at<?", (group, now - 3600))
            rows = con.execute(
                "SELECT member FROM gk_worker_members WHERE grp=? AND expires_at>? ORDER BY member",
                (group, now),
            )
            return [r[0] for r in rows]

        result: list[str] = await self._run(body)
        return result

    async def acquire(self, group: str, partitions: list[int], member: str, ttl: float) -> list[LeaseGrant]:
        """Grant free, released, expired or own leases."""

        def body(con: sqlite3.Connection, now: float) -> list[LeaseGrant]:
            out = []
            for p in partitions:
                row = con.execute(
                    "SELECT owner, expires_at FROM gk_worker_leases WHERE grp=? AND part=?", (group, p)
                ).fetchone()
                owner, until = (None, 0.0) if row is None else row
                if owner is not None and owner != member and until > now:
                    continue
                clean = owner is None or owner == member
                con.execute(
                    "INSERT OR REPLACE INTO gk_worker_leases VALUES (?,?,?,?)", (group, p, member, now + ttl)
                )
                out.append(LeaseGrant(p, clean, 0.0 if clean else now - until))
            return out

        result: list[LeaseGrant] = await self._run(body)
        return result

    async def release(self, group: str, partitions: list[int], member: str) -> None:
        """Release the member's leases."""

        def body(con: sqlite3.Connection, now: float) -> None:
            con.executemany(
                "UPDATE gk_worker_leases SET owner=NULL, expires_at=0 WHERE grp=? AND part=? AND owner=?",
                [(group, p, member) for p in partitions],
            )

        await self._run(body)

    async def leave(self, group: str, member: str) -> None:
        """Forget the member."""

        def body(con: sqlite3.Connection, now: float) -> None:
            con.execute("DELETE FROM gk_worker_members WHERE grp=? AND member=?", (group, member))

        await self._run(body)


def lease_url_for(store_url: str) -> str:
    """The default lease URL for a store URL: the same database, or ``local://`` for ``memory://``."""
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme == "memory" or (scheme == "sqlite" and parts.path in ("", "/", "/:memory:")):
        return "local://"  # a store no other process can see: nobody to share partitions with
    if scheme in ("sqlite", "postgresql", "postgres", "redis", "rediss"):
        return store_url
    raise ConfigurationError(f"cannot derive a lease URL from store URL scheme {scheme!r}; set lease_url")


def _sqlite_path(url: str) -> str:
    path = urlsplit(url).path
    # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db" (as the store reads it).
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ConfigurationError(f"sqlite lease URL {url!r} needs a file shared by the workers")
    return path


def _strip_query(url: str, keep: frozenset[str]) -> tuple[str, dict[str, str]]:
    """Split goalkeeper's own options off a URL; keep the driver's."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    kept = {k: v for k, v in query.items() if k in keep}
    return urlunsplit(parts._replace(query=urlencode(kept))), query


_LIBPQ = frozenset(
    "sslmode sslrootcert sslcert sslkey connect_timeout application_name options target_session_attrs "
    "passfile channel_binding keepalives keepalives_idle".split()
)


def open_leases(url: str) -> LeaseBackend:
    """The lease backend for ``url`` (not opened yet).

    Raises:
        ConfigurationError: an unknown scheme, a non-shared SQLite database, or a missing driver.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "local":
        return LocalLeases()
    if scheme == "sqlite":
        return SQLiteLeases(_sqlite_path(url))
    if scheme in ("postgresql", "postgres"):
        conninfo, query = _strip_query(url, _LIBPQ)
        try:
            from ._leases_pg import PostgresLeases
        except ImportError as exc:  # psycopg is missing
            if exc.name is None or not exc.name.startswith("psycopg"):
                raise
            raise ConfigurationError(
                'postgresql:// leases need psycopg: pip install "goalkeeper[postgres]"'
            ) from exc
        return PostgresLeases(conninfo, schema=query.get("schema", "goalkeeper"))
    if scheme in ("redis", "rediss"):
        plain, query = _strip_query(url, frozenset())
        try:
            from ._leases_redis import RedisLeases
        except ImportError as exc:  # redis-py is missing
            if exc.name is None or not exc.name.startswith("redis"):
                raise
            raise ConfigurationError('redis:// leases need redis: pip install "goalkeeper[redis]"') from exc
        return RedisLeases(plain, prefix=query.get("prefix", "goalkeeper"))
    raise ConfigurationError(
        f"unknown lease URL scheme {scheme!r} in {url!r} (known: local://, sqlite://, postgresql://, redis://)"
    )
