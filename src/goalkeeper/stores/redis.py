"""``redis://host:6379/0``: a fast store when Redis is already there and its durability is enough.

* **Atomic commits by Lua script** (``EVALSHA``): the version check, inbox and outbox inserts and
  the snapshot write of a whole ``commit_many`` batch run as one script, which Redis executes
  without interleaving any other command, so a stale writer gets a conflict, never a lost update.
* **Keys under a prefix** (``?prefix=goalkeeper:`` by default) for namespacing.
* **Durability is Redis's**: with ``appendonly yes`` + ``appendfsync always`` an acknowledged
  commit survives a server crash; with ``everysec`` up to about a second of commits can be lost;
  with no persistence (as on the shared test server) a restart loses everything. Replication is
  asynchronous, so a failover can drop acknowledged commits. A script that fails half-way (out of
  memory, a foreign key of the wrong type under our prefix) is not rolled back. Use PostgreSQL
  when the store must be the system of record.
* Single Redis server (or primary) only: the scripts touch keys of several goals, which Redis
  Cluster does not allow.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from ..errors import StoreError
from ..ports.store import (
    AppendResult,
    CommitResult,
    DeadLetter,
    GoalRecord,
    GoalSummary,
    StoredEvent,
    StoredSuggestion,
)
from ._base import (
    SCHEMA_VERSION,
    BaseStore,
    EncodedCommit,
    EncodedEvent,
    append_result,
    check_schema,
    loads,
    positive_float,
    positive_int,
    split_options,
)
from ._sql import prefix_end

__all__ = ["RedisStore"]

# Key layout under the prefix P (documented in docs/stores.md):
#   P schema                 schema version
#   P g:{goal}               hash v (version), s (snapshot), t (updated_at), n (inbox counter)
#   P goals                  zset of goal ids (score 0: ordered by id for list_goals)
#   P in:{goal}              zset event_id -> inbox seq (the newest inbox_keep are kept)
#   P out:{sid}              hash g (goal), v (version), p (payload), t (created_at), d (delivered)
#   P pending, P pendg:{goal} zsets of undelivered suggestion ids by outbox position (P outpos)
#   P log:{goal}             zset event_id -> seq; P logp:{goal} hash event_id -> "time payload"
#   P loghead:{goal}         last seq; P dead (+ P deadg:{goal}) zsets of dead letters by id

_COMMIT = """
local p, now, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local commits = cjson.decode(ARGV[4])
local arg = 5
local out = {}
for i, c in ipairs(commits) do
  local goal, expected, events, sids = c[1], c[2], c[3], c[4]
  local snapshot = ARGV[arg]
  arg = arg + 1
  local gkey = p .. 'g:' .. goal
  local cur = redis.call('HMGET', gkey, 'v', 'n')
  local version, inbox_n = tonumber(cur[1]) or 0, tonumber(cur[2]) or 0
  if version ~= expected then
    out[i] = {0, version, {}, {}}
    arg = arg + #sids
  else
    local ikey = p .. 'in:' .. goal
    local dup_e, dup_s = {}, {}
    for _, e in ipairs(events) do
      if redis.call('ZSCORE', ikey, e) then
        dup_e[#dup_e + 1] = e
      else
        inbox_n = inbox_n + 1
        redis.call('ZADD', ikey, inbox_n, e)
      end
    end
    if redis.call('ZCARD', ikey) > keep then
      redis.call('ZREMRANGEBYRANK', ikey, 0, -(keep + 1))
    end
    for _, sid in ipairs(sids) do
      local skey = p .. 'out:' .. sid
      if redis.call('EXISTS', skey) == 1 then
        dup_s[#dup_s + 1] = sid
      else
        local pos = redis.call('INCR', p .. 'outpos')
        redis.call('HSET', skey, 'g', goal, 'v', version + 1, 'p', ARGV[arg], 't', now, 'd', 0)
        redis.call('ZADD', p .. 'pending', pos, sid)
        redis.call('ZADD', p .. 'pendg:' .. goal, pos, sid)
      end
      arg = arg + 1
    end
    redis.call('HSET', gkey, 'v', version + 1, 's', snapshot, 't', now, 'n', inbox_n)
    redis.call('ZADD', p .. 'goals', 0, goal)
    out[i] = {1, version + 1, dup_e, dup_s}
  end
end
return out
"""

_APPEND = """
local p, now = ARGV[1], ARGV[2]
local events = cjson.decode(ARGV[3])
local out = {}
for i, e in ipairs(events) do
  local goal, id = e[1], e[2]
  local lkey = p .. 'log:' .. goal
  if not redis.call('ZSCORE', lkey, id) then
    local seq = redis.call('INCR', p .. 'loghead:' .. goal)
    redis.call('ZADD', lkey, seq, id)
    redis.call('HSET', p .. 'logp:' .. goal, id, now .. ' ' .. ARGV[3 + i])
    out[#out + 1] = {goal, id, seq}
  end
end
return out
"""

_TRIM = """
local lkey, pkey = KEYS[1], KEYS[2]
local ids = redis.call('ZRANGEBYSCORE', lkey, '-inf', '(' .. ARGV[1])
for _, id in ipairs(ids) do redis.call('HDEL', pkey, id) end
redis.call('ZREMRANGEBYSCORE', lkey, '-inf', '(' .. ARGV[1])
return #ids
"""

_MARK = """
local p, now = ARGV[1], ARGV[2]
local count = 0
for i = 3, #ARGV do
  local sid = ARGV[i]
  if redis.call('ZREM', p .. 'pending', sid) == 1 then
    local skey = p .. 'out:' .. sid
    redis.call('ZREM', p .. 'pendg:' .. redis.call('HGET', skey, 'g'), sid)
    redis.call('HSET', skey, 'd', now)
    count = count + 1
  end
end
return count
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore(BaseStore):
    """The Redis :class:`~goalkeeper.ports.store.StateStore` (``redis://...``, ``rediss://...``).

    Args:
        redis_url: the server URL (without goalkeeper's own options).
        prefix: prefix of every key this store uses.
        connect_timeout: seconds to wait for the server before failing.
        inbox_keep: applied event ids kept per goal.
        url: the URL to report (defaults to ``redis_url``).
    """

    backend = "redis"
    driver_errors = (redis.exceptions.RedisError, OSError)

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "goalkeeper:",
        connect_timeout: float = 5.0,
        inbox_keep: int | None = None,
        url: str | None = None,
    ) -> None:
        """Remember the configuration; :meth:`open` connects."""
        super().__init__(url or redis_url, **({} if inbox_keep is None else {"inbox_keep": inbox_keep}))
        self.redis_url = redis_url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self._client: aioredis.Redis | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Build from ``redis://host:port/db?prefix=...``.

        Options: ``prefix``, ``connect_timeout`` (seconds), ``inbox_keep``; other query options go
        to redis-py.
        """
        redis_url, options = split_options(
            url,
            {"prefix": str, "connect_timeout": positive_float, "inbox_keep": positive_int},
            pass_through=True,
        )
        return cls(redis_url, url=url, **options)

    @property
    def _r(self) -> aioredis.Redis:
        assert self._client is not None
        return self._client

    def _k(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    async def _connect(self) -> None:
        client = aioredis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_connect_timeout=self.connect_timeout
        )
        try:
            await client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            await client.aclose()
            kwargs = client.connection_pool.connection_kwargs
            address = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
            raise StoreError(f"cannot connect to Redis at {address} ({self.url}): {exc}") from exc
        self._client = client
        self._commit = client.register_script(_COMMIT)
        self._append_script = client.register_script(_APPEND)
        self._trim = client.register_script(_TRIM)
        self._mark = client.register_script(_MARK)

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _schema_version(self) -> int:
        return int(await self._r.get(self._k("schema")) or 0)

    async def _migrate(self) -> int:
        check_schema(await self._schema_version(), self.backend)
        # Version 1 needs no data changes; recording it is the whole migration.
        await self._r.set(self._k("schema"), SCHEMA_VERSION)
        return SCHEMA_VERSION

    async def _load(self, goal_id: str) -> GoalRecord | None:
        row: list[Any] = await self._r.hmget(self._k("g:", goal_id), ["v", "s", "t"])
        version, snapshot, updated_at = row
        if version is None:
            return None
        return GoalRecord(goal_id, int(version), loads(snapshot), float(updated_at))

    async def _commit_many(self, commits: list[EncodedCommit]) -> list[CommitResult]:
        header = [
            [c.goal_id, c.expected_version, list(c.event_ids), [s for s, _ in c.suggestions]] for c in commits
        ]
        args: list[str] = [self.prefix, repr(self.now()), str(self.inbox_keep), json.dumps(header)]
        for c in commits:
            args.append(c.snapshot)
            args.extend(text for _, text in c.suggestions)
        rows = await self._commit(args=args)
        results: list[CommitResult] = []
        for c, (committed, version, dup_events, dup_sids) in zip(commits, rows, strict=True):
            dups_e, dups_s = map(_text, dup_events), map(_text, dup_sids)
            results.append(
                c.committed(int(version), dups_e, dups_s) if committed else c.conflict(int(version))
            )
        return results

    async def _applied(self, goal_id: str, event_ids: list[str]) -> set[str]:
        scores = await self._r.zmscore(self._k("in:", goal_id), event_ids)
        return {e for e, score in zip(event_ids, scores, strict=True) if score is not None}

    async def _append(self, events: list[EncodedEvent], now: float) -> AppendResult:
        header = json.dumps([[e.goal_id, e.event_id] for e in events])
        rows = await self._append_script(args=[self.prefix, repr(now), header, *(e.payload for e in events)])
        seqs = {(_text(g), _text(i)): int(seq) for g, i, seq in rows}
        return append_result(events, seqs, now)

    async def _read_events(self, goal_id: str, from_seq: int, limit: int) -> list[StoredEvent]:
        ids: list[Any] = await self._r.zrangebyscore(
            self._k("log:", goal_id), from_seq, "+inf", 0, limit, withscores=True
        )
        if not ids:
            return []
        values = await self._r.hmget(self._k("logp:", goal_id), [event_id for event_id, _ in ids])
        out: list[StoredEvent] = []
        for (event_id, seq), value in zip(ids, values, strict=True):
            if value is None:  # trimmed between the two reads
                continue
            at, payload = _text(value).split(" ", 1)
            out.append(StoredEvent(goal_id, int(seq), _text(event_id), loads(payload), float(at)))
        return out

    async def _trim_events(self, goal_id: str, before_seq: int) -> int:
        keys = [self._k("log:", goal_id), self._k("logp:", goal_id)]
        return int(await self._trim(keys=keys, args=[before_seq]))

    async def _pending(self, goal_id: str | None, limit: int) -> list[StoredSuggestion]:
        key = self._k("pending") if goal_id is None else self._k("pendg:", goal_id)
        sids = [_text(s) for s in await self._r.zrange(key, 0, limit - 1)]
        async with self._r.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self._k("out:", sid), ["g", "v", "p", "t"])
            rows = await pipe.execute()
        return [
            StoredSuggestion(sid, _text(g), int(v), loads(p), float(t), False)
            for sid, (g, v, p, t) in zip(sids, rows, strict=True)
            if g is not None
        ]

    async def _mark_delivered(self, suggestion_ids: list[str]) -> int:
        return int(await self._mark(args=[self.prefix, repr(self.now()), *suggestion_ids]))

    async def _list_goals(self, prefix: str, after: str | None, limit: int) -> list[GoalSummary]:
        low = f"({after}" if after is not None and after >= prefix else f"[{prefix}"
        end = prefix_end(prefix)
        high = f"({end}" if end is not None else "+"
        ids = [_text(g) for g in await self._r.zrangebylex(self._k("goals"), low, high, 0, limit)]
        async with self._r.pipeline(transaction=False) as pipe:
            for goal_id in ids:
                pipe.hmget(self._k("g:", goal_id), ["v", "t"])
            rows = await pipe.execute()
        return [GoalSummary(g, int(v), float(t)) for g, (v, t) in zip(ids, rows, strict=True)]

    async def _add_dead_letter(
        self, payload: str, reason: str, goal_id: str | None, event_id: str | None, now: float
    ) -> DeadLetter:
        dead_id = int(await self._r.incr(self._k("deadseq")))
        member = json.dumps([dead_id, reason, payload, goal_id, event_id, now])
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.zadd(self._k("dead"), {member: dead_id})
            if goal_id is not None:
                pipe.zadd(self._k("deadg:", goal_id), {member: dead_id})
            await pipe.execute()
        return DeadLetter(dead_id, reason, loads(payload), goal_id, event_id, now)

    async def _dead_letters(self, goal_id: str | None, limit: int) -> list[DeadLetter]:
        key = self._k("dead") if goal_id is None else self._k("deadg:", goal_id)
        members: list[Any] = await self._r.zrange(key, 0, limit - 1)
        out: list[DeadLetter] = []
        for member in members:
            dead_id, reason, payload, owner, event_id, at = json.loads(member)
            out.append(DeadLetter(dead_id, reason, loads(payload), owner, event_id, at))
        return out
