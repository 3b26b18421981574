"""Helpers shared by the drift, goal-tree, progress and budget modules: validation and window sums.

Input checks raise :class:`~goalkeeper.errors.InvalidInputError` naming the field; constructor checks
raise :class:`~goalkeeper.errors.ConfigurationError`; snapshot checks raise
:class:`~goalkeeper.errors.SnapshotError`. ``bool`` is never accepted as a number: ``True`` passed as
a token count is a bug in the caller, not the number 1.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError, InvalidInputError, SnapshotError

__all__ = [
    "WindowSum",
    "check_count",
    "check_now",
    "check_number",
    "check_str",
    "clip01",
    "config_int",
    "config_number",
    "snapshot_number",
]


def _is_real(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float is no usable number either
        return False


def clip01(x: float) -> float:
    """Clip ``x`` to [0, 1]."""
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def check_str(name: str, value: object) -> str:
    """Return ``value`` if it is a string, else raise InvalidInputError naming ``name``."""
    if not isinstance(value, str):
        raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=name)
    return value


def check_number(name: str, value: object, lo: float = -math.inf, hi: float = math.inf) -> float:
    """Return ``value`` as a float if it is a finite number in ``[lo, hi]``, else raise InvalidInputError."""
    if not _is_real(value):
        raise InvalidInputError(f"must be a finite number, got {value!r}", field=name)
    if not lo <= value <= hi:  # type: ignore[operator]
        raise InvalidInputError(f"must be in [{lo}, {hi}], got {value!r}", field=name)
    return float(value)  # type: ignore[arg-type]


def check_count(name: str, value: object, minimum: int | None = 0) -> int:
    """Return ``value`` if it is an integer ``>= minimum`` (any integer when ``minimum`` is None),
    else raise InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise InvalidInputError(f"must be an integer{bound}, got {value!r}", field=name)
    return value


def check_now(now: object, name: str = "now") -> float | None:
    """Validate an optional time (finite seconds) and return it as a float or None; an error names
    the field ``name``."""
    if now is None:
        return None
    if not _is_real(now):
        raise InvalidInputError(f"must be a finite number of seconds or None, got {now!r}", field=name)
    return float(now)  # type: ignore[arg-type]


def config_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def config_number(name: str, value: object, lo: float, hi: float, *, open_low: bool = False) -> float:
    """Return ``value`` as a float if it is finite and in ``[lo, hi]`` (``(lo, hi]`` with ``open_low``),
    else raise ConfigurationError."""
    ok = _is_real(value) and (lo < value if open_low else lo <= value) and value <= hi  # type: ignore[operator]
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigurationError(f"{name} must be a number in {bracket}{lo}, {hi}], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def snapshot_number(value: object) -> float:
    """Return a finite number read from a snapshot as a float, else raise SnapshotError."""
    if not _is_real(value):
        raise SnapshotError(f"expected a finite number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


class WindowSum:
    """The sum of the last ``size`` numbers pushed, kept in O(1) per push.

    A running float sum drifts by rounding as values enter and leave; every ``size`` pushes the sum
    is recomputed exactly with :func:`math.fsum`, so the error never accumulates and the cost stays
    O(1) amortized. The snapshot carries the running sum itself, so a restored window continues
    bit-identically.
    """

    def __init__(self, size: int, values: Iterable[float] = (), total: float | None = None, pushes: int = 0):
        self._values: deque[float] = deque(values, maxlen=size)
        self._total = math.fsum(self._values) if total is None else total
        self._pushes = pushes

    def push(self, x: float) -> None:
        """Add ``x``, dropping the oldest value when the window is full."""
        if len(self._values) == self._values.maxlen:
            self._total -= self._values[0]
        self._values.append(x)
        self._total += x
        self._pushes += 1
        if self._pushes % (self._values.maxlen or 1) == 0:
            self._total = math.fsum(self._values)

    @property
    def total(self) -> float:
        """The sum of the values in the window."""
        return self._total

    def __len__(self) -> int:
        return len(self._values)

    def values(self) -> list[float]:
        """The values in the window, oldest first."""
        return list(self._values)

    def mean(self) -> float:
        """Mean of the window; 0.0 when empty."""
        return self._total / len(self._values) if self._values else 0.0

    def clear(self) -> None:
        """Empty the window."""
        self._values.clear()
        self._total = 0.0
        self._pushes = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"values": list(self._values), "total": self._total, "pushes": self._pushes}

    @classmethod
    def from_dict(cls, size: int, data: Mapping[str, Any]) -> WindowSum:
        """Inverse of :meth:`to_dict`; raises SnapshotError on malformed data."""
        if not isinstance(data, Mapping) or not isinstance(data.get("values"), list):
            raise SnapshotError("window must be a dict with a list of values")
        pushes = data.get("pushes")
        if isinstance(pushes, bool) or not isinstance(pushes, int) or pushes < 0:
            raise SnapshotError("window pushes must be a non-negative integer")
        values = [snapshot_number(v) for v in data["values"]]
        return cls(size, values, snapshot_number(data.get("total")), pushes)
