"""``GoalStateTracker``: one goal's state document on top of any store, versioned.

The reference system's ``GoalStateTracker`` had ``load()`` / ``save(state)`` over a single JSON
blob with no versioning, so two writers silently overwrote each other. This one keeps the familiar
two calls but every ``save`` is a compare-and-set against the version ``load`` saw: a writer that
lost the race gets :class:`~goalkeeper.errors.ConflictError` instead of erasing someone's update,
and :meth:`GoalStateTracker.update` wraps the load-modify-save-retry loop.

:class:`GoalStateTracker` is the one (async) implementation; :class:`SyncGoalStateTracker` is a
thin shell for scripts that runs it on a private event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..errors import ConfigurationError, ConflictError
from ..ports.store import Commit, StateStore

if TYPE_CHECKING:
    from collections.abc import Coroutine

__all__ = ["GoalStateTracker", "SyncGoalStateTracker"]

Change = Callable[[dict[str, Any]], Mapping[str, Any] | None]


class GoalStateTracker:
    """Load and save one goal's state document with optimistic concurrency.

    Args:
        store: a store object (not closed by the tracker), or a store URL (opened and closed by
            the tracker). Default: ``memory://``, which keeps nothing after the process ends.
        goal_id: the goal whose state this tracker reads and writes.

    Raises:
        ConfigurationError: ``goal_id`` is empty or ``store`` is neither a store nor a URL.
    """

    def __init__(self, store: StateStore | str | None = None, *, goal_id: str = "default") -> None:
        """Remember the store and goal; no I/O until :meth:`open` (or ``async with``)."""
        from . import open_store  # deferred: the stores package imports this module

        if not isinstance(goal_id, str) or not goal_id:
            raise ConfigurationError(f"goal_id must be a non-empty string, got {goal_id!r}")
        if store is None or isinstance(store, str):
            self.store: StateStore = open_store(store or "memory://")
            self._owns_store = True
        elif isinstance(store, StateStore):
            self.store = store
            self._owns_store = False
        else:
            raise ConfigurationError(f"store must be a StateStore or a URL, got {type(store).__name__}")
        self.goal_id = goal_id
        self.version = 0
        """The version the last :meth:`load` or :meth:`save` saw (0: no state yet)."""

    async def open(self) -> None:
        """Open the store (a no-op for a store that is already open)."""
        await self.store.open()

    async def close(self) -> None:
        """Close the store if the tracker opened it from a URL."""
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> Self:
        """Open the store."""
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store if the tracker owns it."""
        await self.close()

    async def load(self) -> dict[str, Any]:
        """Return the stored state (``{}`` if none) and remember its version for :meth:`save`."""
        record = await self.store.load(self.goal_id)
        self.version = record.version if record else 0
        return record.snapshot if record else {}

    async def save(self, state: Mapping[str, Any]) -> int:
        """Store ``state`` if nobody else saved since our last load/save; return the new version.

        Raises:
            ConflictError: another writer saved first; nothing was written. Load again and retry,
                or use :meth:`update`.
            InvalidInputError: ``state`` is not a JSON-able dict.
        """
        result = await self.store.commit(Commit(self.goal_id, self.version, state))
        self.version = result.version
        return self.version

    async def update(self, change: Change, *, attempts: int = 20) -> dict[str, Any]:
        """Apply ``change`` to the latest state and save it, retrying on conflicts.

        Args:
            change: receives a private copy of the state; returns the new state, or None after
                changing the copy in place. It may run several times, so it must not have side
                effects.
            attempts: how many conflicts to tolerate before giving up.

        Returns:
            The state that was saved.

        Raises:
            ConflictError: still conflicting after ``attempts`` tries.
        """
        for _ in range(attempts):
            state = await self.load()
            changed = change(state)  # load() returned a fresh copy, so in-place edits are private
            new_state = dict(state if changed is None else changed)
            try:
                await self.save(new_state)
            except ConflictError:
                continue
            return new_state
        raise ConflictError(f"goal {self.goal_id!r}: update still conflicting after {attempts} attempts")


class SyncGoalStateTracker:
    """The blocking shell of :class:`GoalStateTracker`, for scripts and other synchronous code.

    It runs the async tracker on a private event loop (so connections stay bound to one loop).
    Do not use it inside a running event loop; use :class:`GoalStateTracker` there.

    Args:
        store: as for :class:`GoalStateTracker`.
        goal_id: as for :class:`GoalStateTracker`.
    """

    def __init__(self, store: StateStore | str | None = None, *, goal_id: str = "default") -> None:
        """Open the store (this is the blocking edge, so it connects right away)."""
        self._runner = asyncio.Runner()
        self._closed = False
        self._tracker = GoalStateTracker(store, goal_id=goal_id)
        try:
            self._run(self._tracker.open())
        except BaseException:
            self._runner.close()
            raise

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self._runner.run(coro)

    @property
    def version(self) -> int:
        """The version the last load/save saw."""
        return self._tracker.version

    def load(self) -> dict[str, Any]:
        """See :meth:`GoalStateTracker.load`."""
        state: dict[str, Any] = self._run(self._tracker.load())
        return state

    def save(self, state: Mapping[str, Any]) -> int:
        """See :meth:`GoalStateTracker.save`."""
        version: int = self._run(self._tracker.save(state))
        return version

    def update(self, change: Change, *, attempts: int = 20) -> dict[str, Any]:
        """See :meth:`GoalStateTracker.update`."""
        state: dict[str, Any] = self._run(self._tracker.update(change, attempts=attempts))
        return state

    def close(self) -> None:
        """Close the store (if owned) and the private event loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._tracker.close())
        finally:
            self._runner.close()

    def __enter__(self) -> Self:
        """Return self (the store is already open)."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close."""
        self.close()
