"""``redis://`` partition leases (see :mod:`goalkeeper.worker.leases`), on the server's clock.

Keys: a sorted set ``{prefix}:workers:{group}:members`` (member -> expiry in ms) and a hash
``{prefix}:workers:{group}:leases`` (partition -> ``owner|expiry_ms``). Each operation is one Lua
script, so it is atomic and uses Redis' own ``TIME``.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import StoreError
from .leases import LeaseGrant

__all__ = ["RedisLeases"]

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 3, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local owner, expiry = '', 0
  if cur then
    local sep = string.find(cur, '|', 1, true)
    owner = string.sub(cur, 1, sep - 1)
    expiry = tonumber(string.sub(cur, sep + 1))
  end
  if owner == '' or owner == ARGV[1] or expiry <= now then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[1] .. '|' .. (now + tonumber(ARGV[2])))
    local ago = -1
    if owner ~= '' and owner ~= ARGV[1] then ago = now - expiry end
    table.insert(out, ARGV[i])
    table.insert(out, ago)
  end
end
return out
"""

_RELEASE = """
for i = 2, #ARGV do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. '|' then
    redis.call('HSET', KEYS[1], ARGV[i], '|0')
  end
end
return 1
"""


class RedisLeases:
    """Members and leases in Redis."""

    def __init__(self, url: str, *, prefix: str = "goalkeeper") -> None:
        self._url = url
        self._prefix = prefix
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    async def open(self) -> None:
        """Connect and register the scripts."""
        if self._client is None:
            self._client = aioredis.Redis.from_url(self._url)
            for name, body in (("heartbeat", _HEARTBEAT), ("acquire", _ACQUIRE), ("release", _RELEASE)):
                self._scripts[name] = self._client.register_script(body)

    async def close(self) -> None:
        """Disconnect."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _key(self, group: str, what: str) -> str:
        return f"{self._prefix}:workers:{group}:{what}"

    async def heartbeat(self, group: str, member: str, ttl: float) -> list[str]:
        """Renew the member; return the live ones."""
        try:
            reply = await self._scripts["heartbeat"](
                keys=[self._key(group, "members")], args=[member, int(ttl * 1000)]
            )
        except RedisError as exc:
            raise StoreError(f"redis leases: heartbeat failed: {exc}") from exc
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in reply)

    async def acquire(self, group: str, partitions: list[int], member: str, ttl: float) -> list[LeaseGrant]:
        """Grant free, released, expired or own leases."""
        try:
            reply = await self._scripts["acquire"](
                keys=[self._key(group, "leases")], args=[member, int(ttl * 1000), *partitions]
            )
        except RedisError as exc:
            raise StoreError(f"redis leases: acquire failed: {exc}") from exc
        out = []
        for i in range(0, len(reply), 2):
            ago = int(reply[i + 1])
            out.append(LeaseGrant(int(reply[i]), ago < 0, max(0, ago) / 1000.0))
        return out

    async def release(self, group: str, partitions: list[int], member: str) -> None:
        """Release the member's leases."""
        try:
            await self._scripts["release"](keys=[self._key(group, "leases")], args=[member, *partitions])
        except RedisError as exc:
            raise StoreError(f"redis leases: release failed: {exc}") from exc

    async def leave(self, group: str, member: str) -> None:
        """Forget the member."""
        client = self._client
        if client is None:
            return
        try:
            await client.zrem(self._key(group, "members"), member)
        except RedisError as exc:
            raise StoreError(f"redis leases: leave failed: {exc}") from exc
