"""``postgresql://`` partition leases (see :mod:`goalkeeper.worker.leases`), on the server's clock.

Tables ``gk_worker_members`` and ``gk_worker_leases`` live in the store's schema (``?schema=``,
default ``goalkeeper``). Time is the server's ``clock_timestamp()``, so workers on machines with
skewed clocks still agree on when a lease expired.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import psycopg

from ..errors import ConfigurationError, StoreError
from .leases import LeaseGrant

__all__ = ["PostgresLeases"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_NOW = "SELECT extract(epoch from clock_timestamp())::float8"


class PostgresLeases:
    """Members and leases in PostgreSQL (one connection; calls are serialised)."""

    def __init__(self, conninfo: str, *, schema: str = "goalkeeper") -> None:
        if not _IDENT.fullmatch(schema):
            raise ConfigurationError(f"schema must be a plain SQL identifier, got {schema!r}")
        self._conninfo = conninfo
        self._schema = schema
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect and create the tables (under an advisory lock: concurrent creators would race)."""
        if self._conn is not None:
            return
        s = self._schema
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=5
            )
            async with self._conn.transaction():
                await self._conn.execute("SELECT pg_advisory_xact_lock(7421337)")
                await self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
                await self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {s}.gk_worker_members (grp TEXT NOT NULL, "
                    "member TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (grp, member))"
                )
                await self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {s}.gk_worker_leases (grp TEXT NOT NULL, "
                    "part INTEGER NOT NULL, owner TEXT, expires_at DOUBLE PRECISION NOT NULL, "
                    "PRIMARY KEY (grp, part))"
                )
        except psycopg.Error as exc:
            raise StoreError(f"postgresql leases: cannot open: {exc}") from exc

    async def close(self) -> None:
        """Disconnect."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @property
    def _db(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None:
            raise StoreError("postgresql leases are not open")
        return self._conn

    async def _now(self) -> float:
        cur = await self._db.execute(_NOW)
        row = await cur.fetchone()
        assert row is not None
        return float(row[0])

    async def heartbeat(self, group: str, member: str, ttl: float) -> list[str]:
        """Renew the member; return the live ones."""
        s = self._schema
        async with self._lock:
            try:
                now = await self._now()
                await self._db.execute(
                    f"INSERT INTO {s}.gk_worker_members VALUES (%s, %s, %s) ON CONFLICT (grp, member) "
                    "DO UPDATE SET expires_at = EXCLUDED.expires_at",
                    (group, member, now + ttl),
                )
                await self._db.execute(
                    f"DELETE FROM {s}.gk_worker_members WHERE grp = %s AND expires_at < %s",
                    (group, now - 3600),
                )
                cur = await self._db.execute(
                    f"SELECT member FROM {s}.gk_worker_members WHERE grp = %s AND expires_at > %s "
                    "ORDER BY member",
                    (group, now),
                )
                return [str(r[0]) for r in await cur.fetchall()]
            except psycopg.Error as exc:
                raise StoreError(f"postgresql leases: heartbeat failed: {exc}") from exc

    async def acquire(self, group: str, partitions: list[int], member: str, ttl: float) -> list[LeaseGrant]:
        """Grant free, released, expired or own leases (rows locked for the decision)."""
        s, out = self._schema, []
        async with self._lock:
            try:
                async with self._db.transaction():
                    now = await self._now()
                    await self._db.execute(
                        f"INSERT INTO {s}.gk_worker_leases SELECT %s, p, NULL, 0 FROM unnest(%s::int[]) AS p "
                        "ON CONFLICT DO NOTHING",
                        (group, partitions),
                    )
                    cur = await self._db.execute(
                        f"SELECT part, owner, expires_at FROM {s}.gk_worker_leases WHERE grp = %s "
                        "AND part = ANY(%s::int[]) ORDER BY part FOR UPDATE",
                        (group, partitions),
                    )
                    for part, owner, until in await cur.fetchall():
                        if owner is not None and owner != member and until > now:
                            continue
                        clean = owner is None or owner == member
                        out.append(LeaseGrant(int(part), clean, 0.0 if clean else now - float(until)))
                    await self._db.execute(
                        f"UPDATE {s}.gk_worker_leases SET owner = %s, expires_at = %s "
                        "WHERE grp = %s AND part = ANY(%s::int[])",
                        (member, now + ttl, group, [g.partition for g in out]),
                    )
            except psycopg.Error as exc:
                raise StoreError(f"postgresql leases: acquire failed: {exc}") from exc
        return out

    async def release(self, group: str, partitions: list[int], member: str) -> None:
        """Release the member's leases."""
        async with self._lock:
            try:
                await self._db.execute(
                    f"UPDATE {self._schema}.gk_worker_leases SET owner = NULL, expires_at = 0 "
                    "WHERE grp = %s AND part = ANY(%s::int[]) AND owner = %s",
                    (group, partitions, member),
                )
            except psycopg.Error as exc:
                raise StoreError(f"postgresql leases: release failed: {exc}") from exc

    async def leave(self, group: str, member: str) -> None:
        """Forget the member."""
        async with self._lock:
            try:
                await self._db.execute(
                    f"DELETE FROM {self._schema}.gk_worker_members WHERE grp = %s AND member = %s",
                    (group, member),
                )
            except psycopg.Error as exc:
                raise StoreError(f"postgresql leases: leave failed: {exc}") from exc
