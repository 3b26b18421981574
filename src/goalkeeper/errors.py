"""Every exception goalkeeper raises, in one tree.

::

    GoalkeeperError                 base of everything below; catch this to catch all
    ├── ConfigurationError          bad constructor argument, unknown profile/scheme, missing extra
    ├── InvalidInputError           a value passed to the engine is malformed (names the field)
    │   └── ValidationError         an event or record fails the wire schema (names the field)
    ├── SnapshotError               a snapshot cannot be restored (wrong kind, unknown schema
    │                               version, missing or malformed field)
    ├── GoalError
    │   └── GoalNotFound            no goal with that id
    ├── ConflictError               a compare-and-set lost: someone else committed first
    └── BackendError                a store or bus failed; the driver error is kept as __cause__
        ├── StoreError
        └── BusError

Misuse errors (:class:`ConfigurationError`, :class:`InvalidInputError`) are kept apart from runtime
failures (:class:`BackendError`): the first mean "fix the call", the second "retry or alert".
Every error that concerns one input field carries it as ``.field``.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BusError",
    "ConfigurationError",
    "ConflictError",
    "GoalError",
    "GoalNotFound",
    "GoalkeeperError",
    "InvalidInputError",
    "SnapshotError",
    "StoreError",
    "ValidationError",
]


class GoalkeeperError(Exception):
    """Base class of every exception raised by goalkeeper."""


class ConfigurationError(GoalkeeperError, ValueError):
    """A constructor argument, profile, URL scheme or optional extra is wrong or missing.

    Raised at construction time, never in the middle of processing a stream.
    """


class InvalidInputError(GoalkeeperError, ValueError):
    """A value handed to the engine is malformed.

    Attributes:
        field: dotted name of the offending field (for example ``"args"`` or ``"values.progress"``),
            or ``None`` when the whole value is wrong.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class ValidationError(InvalidInputError):
    """An event, suggestion or record fails the wire schema; ``.field`` names the bad field."""


class SnapshotError(GoalkeeperError, ValueError):
    """A snapshot cannot be restored.

    Raised for a snapshot of another class, an unknown schema version, or a missing or malformed
    field. Nothing is half-restored: the error is raised before any object is returned.
    """


class GoalError(GoalkeeperError):
    """Something is wrong with a goal as a whole."""


class GoalNotFound(GoalError, KeyError):
    """No goal with the given id exists (or it is not visible to the caller)."""

    def __init__(self, goal_id: str) -> None:
        super().__init__(goal_id)
        self.goal_id = goal_id

    def __str__(self) -> str:
        return f"no goal with id {self.goal_id!r}"


class ConflictError(GoalkeeperError):
    """A compare-and-set failed: the stored version moved on since it was read. Nothing was written."""


class BackendError(GoalkeeperError):
    """A backend (store or bus) failed. The driver's exception is kept as ``__cause__``."""


class StoreError(BackendError):
    """A state store failed."""


class BusError(BackendError):
    """An event transport failed."""
