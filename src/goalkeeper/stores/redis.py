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
    GoalStatus,
    GoalSummary,
    MetricPoint,
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
from ._redis_scripts import (
    APPEND_SCRIPT,
    COMMIT_SCRIPT,
    MARK_SCRIPT,
    MIGRATE_STATUS_SCRIPT,
    STATUS_SCRIPT,
    TRIM_SCRIPT,
)
from ._sql import prefix_end

__all__ = ["RedisStore"]

# Key layout under the prefix P (documented in docs/stores.md):
#   P schema                 schema version
#   P g:{goal}               hash v (version), s (snapshot), t (updated_at), n (inbox counter),
#                            m (metrics counter), st (status; schema 2)
#   P goals                  zset of goal ids (score 0: ordered by id for list_goals)
#   P gst:{status}           zset of the goal ids with that status (score 0, by id)
#   P mx:{goal}              zset "seq created_at point" by seq: the metrics history
#   P outg:{goal}            zset "pos|sid" (pos zero-padded) by version: the goal's suggestions
#   P in:{goal}              zset event_id -> inbox seq (the newest inbox_keep are kept)
#   P out:{sid}              hash g (goal), v (version), p (payload), t (created_at), d (delivered)
#   P pending, P pendg:{goal} zsets of undelivered suggestion ids by outbox position (P outpos)
#   P log:{goal}             zset event_id -> seq; P logp:{goal} hash event_id -> "time payload"
#   P loghead:{goal}         last seq; P dead (+ P deadg:{goal}) zsets of dead letters by id;
#   P deadx                  hash ["goal","event"] -> dead-letter id (one dead letter per event)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    # SCAN MATCH patterns are globs: a prefix containing * ? [ ] or \ must match literally.
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _stored_suggestion(sid: str, row: list[Any]) -> StoredSuggestion | None:
    goal_id, version, payload, created_at, delivered = row
    if goal_id is None:
        return None
    return StoredSuggestion(
        sid, _text(goal_id), int(version), loads(payload), float(created_at), _text(delivered) != "0"
    )


class RedisStore(BaseStore):
    """The Redis :class:`~goalkeeper.ports.store.StateStore` (``redis://...``, ``rediss://...``).

    Args:
        redis_url: the server URL (without goalkeeper's own options).
        prefix: prefix of every key this store uses.
        connect_timeout: seconds to wait for the server before failing.
        inbox_keep: applied event ids kept per goal.
        metrics_retention: metric points kept per goal.
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
        metrics_retention: int | None = None,
        url: str | None = None,
    ) -> None:
        """Remember the configuration; :meth:`open` connects."""
        super().__init__(url or redis_url, inbox_keep=inbox_keep, metrics_retention=metrics_retention)
        self.redis_url = redis_url
        self.prefix = prefix
        self.connect_timeout = connect_timeout
        self._client: aioredis.Redis | None = None

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Build from ``redis://host:port/db?prefix=...``.

        Options: ``prefix``, ``connect_timeout`` (seconds), ``inbox_keep``, ``metrics_retention``;
        other query options go to redis-py.
        """
        redis_url, options = split_options(
            url,
            {
                "prefix": str,
                "connect_timeout": positive_float,
                "inbox_keep": positive_int,
                "metrics_retention": positive_int,
            },
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
        self._commit = client.register_script(COMMIT_SCRIPT)
        self._append_script = client.register_script(APPEND_SCRIPT)
        self._trim = client.register_script(TRIM_SCRIPT)
        self._mark = client.register_script(MARK_SCRIPT)
        self._status = client.register_script(STATUS_SCRIPT)
        self._migrate_status = client.register_script(MIGRATE_STATUS_SCRIPT)

    async def _close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def _schema_version(self) -> int:
        return int(await self._r.get(self._k("schema")) or 0)

    async def _migrate(self, target: int = SCHEMA_VERSION) -> int:
        current = await self._schema_version()
        check_schema(current, self.backend)
        if current >= target:
            return current
        # Version 1 needs no data changes; recording it is the whole migration. Version 2 indexes
        # what version 1 wrote. Each step is idempotent and the version is recorded after it, so
        # an interrupted migration (or two processes migrating at once) just redoes the work.
        if current < 2 <= target:
            await self._migrate_to_2()
        await self._r.set(self._k("schema"), target)
        return target

    async def _migrate_to_2(self) -> None:
        """Index schema-1 data: every goal gets status ``active``; suggestions get per-goal zsets."""
        # Goals are never removed from the sorted set, so paging by rank sees each of them. One
        # script per page makes "status, or active if none" and its index entry atomic with any
        # concurrent set_goal_status (another process may already run the new code).
        start = 0
        while page := [_text(g) for g in await self._r.zrange(self._k("goals"), start, start + 499)]:
            await self._migrate_status(args=[self.prefix, *page])
            start += len(page)
        # Schema 1 kept no outbox position for delivered suggestions: those sort by id within
        # their version (pending ones keep their position).
        pattern = _glob_escape(self._k("out:")) + "*"
        keys = [_text(k) async for k in self._r.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sids = [key[len(self._k("out:")) :] for key in chunk]
            async with self._r.pipeline(transaction=False) as pipe:
                for key, sid in zip(chunk, sids, strict=True):
                    pipe.hmget(key, ["g", "v"])
                    pipe.zscore(self._k("pending"), sid)
                rows = await pipe.execute()
            async with self._r.pipeline(transaction=False) as pipe:
                for i, sid in enumerate(sids):
                    (goal_id, version), pos = rows[2 * i], rows[2 * i + 1]
                    if goal_id is None:
                        continue
                    member = f"{int(pos or 0):016d}|{sid}"
                    pipe.zadd(self._k("outg:", _text(goal_id)), {member: int(version)})
                await pipe.execute()

    async def _load(self, goal_id: str) -> GoalRecord | None:
        row: list[Any] = await self._r.hmget(self._k("g:", goal_id), ["v", "s", "t", "st"])
        version, snapshot, updated_at, status = row
        if version is None:
            return None
        return GoalRecord(
            goal_id, int(version), loads(snapshot), float(updated_at), GoalStatus(status or "active")
        )

    async def _commit_many(self, commits: list[EncodedCommit]) -> list[CommitResult]:
        header = [
            [c.goal_id, c.expected_version, list(c.event_ids), [s for s, _ in c.suggestions], len(c.metrics)]
            for c in commits
        ]
        args: list[str] = [
            self.prefix,
            repr(self.now()),
            str(self.inbox_keep),
            str(self.metrics_retention),
            json.dumps(header),
        ]
        for c in commits:
            args.append(c.snapshot)
            args.extend(text for _, text in c.suggestions)
            args.extend(c.metrics)
        rows = await self._commit(args=args)
        results: list[CommitResult] = []
        for c, (committed, version, dup_events, dup_sids, metrics_n) in zip(commits, rows, strict=True):
            dups_e, dups_s = map(_text, dup_events), map(_text, dup_sids)
            results.append(
                c.committed(int(version), dups_e, dups_s, int(metrics_n))
                if committed
                else c.conflict(int(version))
            )
        return results

    async def _applied(self, goal_id: str, event_ids: list[str]) -> set[str]:
        return (await self._applied_many({goal_id: event_ids}))[goal_id]

    async def _applied_many(self, wanted: dict[str, list[str]]) -> dict[str, set[str]]:
        async with self._r.pipeline(transaction=False) as pipe:
            for goal_id, ids in wanted.items():
                pipe.zmscore(self._k("in:", goal_id), ids)
            replies = await pipe.execute()
        return {
            goal_id: {e for e, score in zip(ids, scores, strict=True) if score is not None}
            for (goal_id, ids), scores in zip(wanted.items(), replies, strict=True)
        }

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

    async def _list_goals(
        self, prefix: str, after: str | None, limit: int, status: GoalStatus | None
    ) -> list[GoalSummary]:
        low = f"({after}" if after is not None and after >= prefix else f"[{prefix}"
        end = prefix_end(prefix)
        high = f"({end}" if end is not None else "+"
        key = self._k("goals") if status is None else self._k("gst:", status.value)
        ids = [_text(g) for g in await self._r.zrangebylex(key, low, high, 0, limit)]
        async with self._r.pipeline(transaction=False) as pipe:
            for goal_id in ids:
                pipe.hmget(self._k("g:", goal_id), ["v", "t", "st"])
            rows = await pipe.execute()
        return [
            GoalSummary(g, int(v), float(t), GoalStatus(st or "active"))
            for g, (v, t, st) in zip(ids, rows, strict=True)
        ]

    async def _suggestion_rows(self, sids: list[str]) -> list[StoredSuggestion]:
        async with self._r.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hmget(self._k("out:", sid), ["g", "v", "p", "t", "d"])
            rows = await pipe.execute()
        found = (_stored_suggestion(sid, row) for sid, row in zip(sids, rows, strict=True))
        return [s for s in found if s is not None]

    async def _suggestions(self, goal_id: str, after_version: int, limit: int) -> list[StoredSuggestion]:
        members = await self._r.zrangebyscore(
            self._k("outg:", goal_id), f"({after_version}", "+inf", 0, limit
        )
        return await self._suggestion_rows([_text(m).split("|", 1)[1] for m in members])

    async def _get_suggestion(self, suggestion_id: str) -> StoredSuggestion | None:
        row: list[Any] = await self._r.hmget(self._k("out:", suggestion_id), ["g", "v", "p", "t", "d"])
        return _stored_suggestion(suggestion_id, row)

    async def _metrics_history(self, goal_id: str, after_seq: int, limit: int) -> list[MetricPoint]:
        members = await self._r.zrangebyscore(self._k("mx:", goal_id), f"({after_seq}", "+inf", 0, limit)
        out: list[MetricPoint] = []
        for member in members:
            seq, created_at, point = _text(member).split(" ", 2)
            out.append(MetricPoint(goal_id, int(seq), loads(point), float(created_at)))
        return out

    async def _set_status(self, goal_id: str, status: GoalStatus) -> bool:
        return bool(await self._status(args=[self.prefix, goal_id, status.value]))

    async def _add_dead_letter(
        self, payload: str, reason: str, goal_id: str | None, event_id: str | None, now: float
    ) -> DeadLetter:
        dead_id = int(await self._r.incr(self._k("deadseq")))
        if goal_id is not None and event_id is not None:
            # One dead letter per (goal, event): the first writer's id claims the pair.
            pair = json.dumps([goal_id, event_id])
            if not await self._r.hsetnx(self._k("deadx"), pair, dead_id):
                claimed = await self._r.hget(self._k("deadx"), pair)
                first = dead_id if claimed is None else int(claimed)
                found: list[Any] = await self._r.zrangebyscore(self._k("dead"), first, first)
                if found:
                    _, first_reason, first_payload, _, _, at = json.loads(found[0])
                    return DeadLetter(first, first_reason, loads(first_payload), goal_id, event_id, at)
                # The claimer died before writing its record: write ours under its id.
                dead_id = first
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
