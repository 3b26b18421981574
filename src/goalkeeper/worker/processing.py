"""One batch, start to finish: group by goal, apply in order, commit everything in one store call.

The steps for a batch of deliveries (DESIGN.md, "Delivery guarantees"):

1. **Decode.** Each payload is validated with :func:`goalkeeper.events.parse_event`; one that fails is
   a *poison* event: it becomes a dead letter with the reason and is acked, never blocking others.
2. **Group and order.** Deliveries are grouped by goal and sorted by their position in the
   partition (publish order), so a redelivered event fetched together with newer ones still goes
   first. Repeats of one ``event_id`` inside the batch are dropped.
3. **Apply.** Each goal's session comes from a bounded LRU cache, or is restored from the store's
   snapshot. Events already in the store's inbox are skipped; the rest are applied in order. An
   event the session rejects is poison too; if the session raised something other than a validation
   error it may be half-changed, so it is rebuilt from the store and the events before the poison
   are applied again.
4. **Commit.** Every goal's new snapshot, applied event ids, suggestions and metric points go to
   :meth:`~goalkeeper.ports.store.StateStore.commit_many` in one transaction. A goal that loses its
   compare-and-set (another worker committed first) is reloaded and re-applied, up to
   ``max_commit_retries`` times; then its deliveries are nacked for later.

Nothing here acks, delivers or talks to listeners: :mod:`goalkeeper.worker.runtime` does that, after
this module returns what was committed.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.model import Event
from ..core.session import GoalSession, Outcome
from ..errors import GoalkeeperError, InvalidInputError
from ..events import parse_event, suggestion_to_dict
from ..ports.bus import Delivery
from ..ports.store import Commit, StateStore
from .logs import logger
from .types import GoalUpdate, metric_point

__all__ = ["BatchResult", "GoalProcessor", "LeaseLost", "SessionCache", "position_key"]

SessionFactory = Callable[[str], GoalSession]
SessionRestorer = Callable[[dict[str, Any]], GoalSession]


def position_key(delivery: Delivery) -> tuple[int, ...]:
    """Sort key of a delivery's position in its partition (publish order).

    The backends' ids are a SQLite row id (``"42"``), a Redis stream id (``"1700000000000-3"``) or a
    JetStream sequence (``"42"``): all integers or dash-separated integers.
    """
    try:
        return tuple(int(part) for part in delivery.id.split("-"))
    except ValueError:
        return (0,)


class LeaseLost(GoalkeeperError):
    """This worker's partition leases lapsed mid-batch: it must not commit (another may own them now)."""


class SessionCache:
    """Goal sessions with the store version they correspond to, least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[GoalSession, int]] = OrderedDict()

    def __len__(self) -> int:
        """Sessions held."""
        return len(self._items)

    def get(self, goal_id: str) -> tuple[GoalSession, int] | None:
        """The cached session and its version, marking it recently used."""
        item = self._items.get(goal_id)
        if item is not None:
            self._items.move_to_end(goal_id)
        return item

    def put(self, goal_id: str, session: GoalSession, version: int) -> None:
        """Cache a session at ``version``, evicting the least recently used beyond capacity."""
        self._items[goal_id] = (session, version)
        self._items.move_to_end(goal_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, goal_id: str) -> None:
        """Forget a goal (its session may be ahead of the store)."""
        self._items.pop(goal_id, None)

    def drop_where(self, predicate: Callable[[str], bool]) -> None:
        """Forget every goal the predicate selects (for example those of a released partition)."""
        for goal_id in [g for g in self._items if predicate(g)]:
            del self._items[goal_id]


@dataclass(slots=True)
class _Poison:
    delivery: Delivery
    reason: str


@dataclass(slots=True)
class _GoalWork:
    """One goal's share of a batch, and what applying it produced."""

    goal_id: str
    items: list[tuple[Delivery, Event]]
    version: int = 0
    session: GoalSession | None = None
    applied: list[tuple[Event, Outcome]] = field(default_factory=list)
    skipped: int = 0
    poison: list[_Poison] = field(default_factory=list)


@dataclass(slots=True)
class BatchResult:
    """What processing one batch did; the runtime acks, nacks, notifies and delivers from it."""

    ack: list[Delivery] = field(default_factory=list)
    """Deliveries that are done (applied, duplicate or dead-lettered)."""
    nack: list[Delivery] = field(default_factory=list)
    """Deliveries to retry later (their goal kept losing its compare-and-set)."""
    updates: list[GoalUpdate] = field(default_factory=list)
    """One per committed goal, in commit order."""
    applied: int = 0
    """Events applied and committed."""
    skipped: int = 0
    """Deliveries of events already applied."""
    dead_letters: int = 0
    """Poison events recorded."""
    conflicts: int = 0
    """Compare-and-set conflicts met (and retried)."""
    newest_ts: float | None = None
    """The largest ``ts`` among the applied events."""


class GoalProcessor:
    """Applies batches of deliveries to goal sessions and commits them (see the module docstring).

    Args:
        store: the opened state store.
        cache: the session cache (shared with the runtime, which drops released partitions).
        factory: builds the session of a goal that has no state yet.
        restorer: rebuilds a session from its stored snapshot.
        max_retries: compare-and-set conflicts tolerated per goal and batch.
        with_metrics: pass metric points in the commit (the store supports ``Commit.metrics``).
    """

    def __init__(
        self,
        store: StateStore,
        cache: SessionCache,
        factory: SessionFactory,
        restorer: SessionRestorer,
        *,
        max_retries: int,
        with_metrics: bool,
    ) -> None:
        self.store = store
        self.cache = cache
        self._factory = factory
        self._restorer = restorer
        self._max_retries = max_retries
        self._with_metrics = with_metrics
        self._may_commit: Callable[[], bool] = lambda: True

    async def process(
        self, deliveries: Sequence[Delivery], may_commit: Callable[[set[int]], bool] = lambda parts: True
    ) -> BatchResult:
        """Apply and commit one batch; see the module docstring.

        ``may_commit(partitions)`` is asked right before the commit; if it says no (our leases
        lapsed), nothing is committed and :class:`LeaseLost` is raised. Store errors propagate too.
        In both cases the caller nacks the batch, and the cache holds no session ahead of the store.
        """
        result = BatchResult()
        now = time.time()
        goals: dict[str, _GoalWork] = {}
        poison: list[_Poison] = []
        seen: set[tuple[str, str]] = set()
        for delivery in sorted(deliveries, key=lambda d: (d.partition, position_key(d))):
            key = (delivery.goal_id, delivery.event_id)
            if key in seen:  # the same event twice in one batch (a redelivery next to the original)
                result.ack.append(delivery)
                result.skipped += 1
                continue
            seen.add(key)
            try:
                event = parse_event(delivery.payload, received_at=now)
            except InvalidInputError as exc:
                poison.append(_Poison(delivery, f"invalid event: {exc}"))
                continue
            work = goals.get(event.goal_id)
            if work is None:
                work = goals[event.goal_id] = _GoalWork(event.goal_id, [])
            work.items.append((delivery, event))
        self._may_commit = lambda: may_commit({d.partition for d in deliveries})
        try:
            await self._run(list(goals.values()), result)
        except BaseException:
            for goal_id in goals:  # sessions may hold uncommitted events: reload them next time
                self.cache.drop(goal_id)
            raise
        for work in goals.values():
            poison.extend(work.poison)
        for item in poison:
            await self.store.add_dead_letter(
                item.delivery.payload,
                item.reason,
                goal_id=item.delivery.goal_id or None,
                event_id=item.delivery.event_id or None,
            )
            logger.warning(
                "event dead-lettered",
                extra={"goal_id": item.delivery.goal_id, "event_id": item.delivery.event_id,
                       "partition": item.delivery.partition, "reason": item.reason},
            )  # fmt: skip
            result.ack.append(item.delivery)
        result.dead_letters = len(poison)
        return result

    async def _run(self, pending: list[_GoalWork], result: BatchResult) -> None:
        """Prepare and commit the goals, retrying those that lose their compare-and-set."""
        attempt = 0
        while pending:
            commits: list[tuple[_GoalWork, Commit, list[dict[str, Any]], list[dict[str, Any]]]] = []
            await self._prepare_all(pending)
            for work in pending:
                if not work.applied:  # all duplicates or poison: nothing to commit, keep the cache
                    self._finish_unchanged(work, result)
                    continue
                assert work.session is not None
                suggestions = [suggestion_to_dict(s) for _, o in work.applied for s in o.suggestions]
                points = [metric_point(o, e.ts) for e, o in work.applied]
                commit = Commit(
                    work.goal_id,
                    work.version,
                    work.session.snapshot(),
                    event_ids=[e.event_id for e, _ in work.applied],
                    suggestions=suggestions,
                    **({"metrics": points} if self._with_metrics else {}),
                )
                commits.append((work, commit, suggestions, points))
            if not commits:
                return
            if not self._may_commit():
                raise LeaseLost("partition leases lapsed before the commit; the batch will be redelivered")
            outcomes = await self.store.commit_many([c for _, c, _, _ in commits])
            retry: list[_GoalWork] = []
            for (work, _, suggestions, points), res in zip(commits, outcomes, strict=True):
                if res.conflict:
                    result.conflicts += 1
                    self.cache.drop(work.goal_id)
                    logger.info(
                        "commit conflict; reloading goal",
                        extra={"goal_id": work.goal_id, "expected": work.version, "stored": res.version},
                    )
                    retry.append(work)
                    continue
                assert work.session is not None
                if res.duplicate_event_ids:
                    # Impossible with the inbox check and CAS; worth shouting about if it happens.
                    logger.error(
                        "store reported already-applied events in a commit",
                        extra={"goal_id": work.goal_id, "event_ids": list(res.duplicate_event_ids)},
                    )
                self.cache.put(work.goal_id, work.session, res.version)
                events = tuple(e for e, _ in work.applied)
                result.updates.append(
                    GoalUpdate(work.goal_id, res.version, events, tuple(o for _, o in work.applied),
                               tuple(suggestions), tuple(points), time.time())
                )  # fmt: skip
                result.applied += len(events)
                result.skipped += work.skipped
                result.ack.extend(_clean(work))
                for event in events:
                    if event.ts is not None and (result.newest_ts is None or event.ts > result.newest_ts):
                        result.newest_ts = event.ts
            attempt += 1
            if retry and attempt > self._max_retries:
                for work in retry:
                    logger.warning(
                        "goal keeps losing its compare-and-set; retrying its events later",
                        extra={"goal_id": work.goal_id, "attempts": attempt},
                    )
                    result.nack.extend(d for d, _ in work.items)
                    work.poison = []  # they come back with the rest of the goal's events
                return
            pending = retry

    def _finish_unchanged(self, work: _GoalWork, result: BatchResult) -> None:
        assert work.session is not None
        self.cache.put(work.goal_id, work.session, work.version)  # unchanged: still the stored state
        result.skipped += work.skipped
        result.ack.extend(_clean(work))

    async def _load(self, goal_id: str) -> tuple[GoalSession, int]:
        """The goal's session at its stored version (a fresh one if it has no state)."""
        record = await self.store.load(goal_id)
        if record is None:
            return self._factory(goal_id), 0
        return self._restorer(record.snapshot), record.version

    async def _inboxes(self, pending: list[_GoalWork]) -> dict[str, set[str]]:
        """Which events of each goal are already applied: one store call for the whole batch when the
        store offers ``applied_event_ids_many`` (every built-in store does), else one per goal."""
        wanted = {work.goal_id: [e.event_id for _, e in work.items] for work in pending}
        many = getattr(self.store, "applied_event_ids_many", None)
        if many is None:
            return {
                goal_id: await self.store.applied_event_ids(goal_id, ids) for goal_id, ids in wanted.items()
            }
        found: dict[str, set[str]] = await many(wanted)
        return found

    async def _prepare_all(self, pending: list[_GoalWork]) -> None:
        """Apply every goal's events (from scratch: this may be a retry)."""
        # Sessions first, then the inboxes: an event in a loaded snapshot is then always in the inbox
        # read (they are committed together), and one committed after the load makes our commit lose
        # its compare-and-set.
        for work in pending:
            await self._checkout(work)
        inboxes = await self._inboxes(pending)
        for work in pending:
            await self._prepare(work, inboxes[work.goal_id])

    async def _checkout(self, work: _GoalWork) -> None:
        """The goal's session and version, from the cache or the store (from scratch on a retry)."""
        work.applied, work.skipped, work.poison = [], 0, []
        cached = self.cache.get(work.goal_id)
        work.session, work.version = await self._load(work.goal_id) if cached is None else cached

    async def _prepare(self, work: _GoalWork, done: set[str]) -> None:
        """Apply the goal's events to its checked-out session; ``done`` are the ids of its events the
        store's inbox held after the checkout."""
        session = work.session
        assert session is not None
        for delivery, event in work.items:
            if event.event_id in done:
                work.skipped += 1
                continue
            try:
                outcome = session.apply(event)
            except Exception as exc:  # a poison event must never stop the goal or the worker
                work.poison.append(_Poison(delivery, f"rejected by the session: {type(exc).__name__}: {exc}"))
                if not isinstance(exc, InvalidInputError):
                    # Only validation errors are guaranteed to leave the session untouched.
                    session, _ = await self._load(work.goal_id)
                    for earlier, _ in work.applied:
                        session.apply(earlier)
                continue
            if outcome.duplicate:  # the session's own window knew the id
                work.skipped += 1
                continue
            work.applied.append((event, outcome))
        work.session = session
        # The session may now be ahead of the store; it goes back into the cache only after commit.
        self.cache.drop(work.goal_id)


def _clean(work: _GoalWork) -> list[Delivery]:
    """The goal's deliveries minus its poison ones (those are acked after their dead letter)."""
    poisoned = {id(p.delivery) for p in work.poison}
    return [d for d, _ in work.items if id(d) not in poisoned]
