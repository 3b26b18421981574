"""Validation helpers shared by the drift and progress modules.

Input checks raise :class:`~goalkeeper.errors.InvalidInputError` naming the field; constructor checks
raise :class:`~goalkeeper.errors.ConfigurationError`; snapshot checks raise
:class:`~goalkeeper.errors.SnapshotError`. ``bool`` is never accepted as a number: ``True`` passed as
a token count is a bug in the caller, not the number 1.
"""

from __future__ import annotations

import math

from ..errors import ConfigurationError, InvalidInputError, SnapshotError

__all__ = [
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
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


def check_count(name: str, value: object, minimum: int = 0) -> int:
    """Return ``value`` if it is an integer ``>= minimum``, else raise InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInputError(f"must be an integer >= {minimum}, got {value!r}", field=name)
    return value


def check_now(now: object) -> float | None:
    """Validate an optional ``now`` (finite seconds) and return it as a float or None."""
    if now is None:
        return None
    if not _is_real(now):
        raise InvalidInputError(f"must be a finite number of seconds or None, got {now!r}", field="now")
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
