"""Helpers shared by every ``snapshot()`` / ``restore()`` pair in the core.

A snapshot is a plain JSON-able ``dict`` (str keys; str, int, float, bool, None, list and dict
values only) with two header fields:

* ``"kind"``: the class that wrote it, so a snapshot of one class is never restored as another;
* ``"schema"``: an integer schema version of that class's snapshot layout.

``restore`` accepts only the versions it knows and raises :class:`~goalkeeper.errors.SnapshotError`
naming the problem otherwise. Floats are stored as Python floats: ``json`` round-trips them exactly
(``repr`` is shortest-round-trip), which is what makes "restore and continue" bit-identical to an
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from ..errors import SnapshotError

__all__ = ["check_header", "field", "header", "json_copy", "scalar_fields"]

T = TypeVar("T")


def header(kind: str, schema: int) -> dict[str, Any]:
    """Return the header fields every snapshot starts with."""
    return {"kind": kind, "schema": schema}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def scalar_fields(obj: Any) -> dict[str, Any]:
    """``{name: value}`` for every field of a dataclass instance, in declaration order.

    For a dataclass whose fields hold only immutable scalars (str, int, float, bool, None, enum
    members) this equals ``dataclasses.asdict(obj)``, without its recursive deep copy: several times
    faster, and snapshots build one such dict per history record.
    """
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(obj))
    return {name: getattr(obj, name) for name in names}


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (what ``check_json`` returns and the loop builds from it):
    ``copy.deepcopy`` without its per-object memo and dispatch, several times faster on the
    suggestion path. Dicts, lists and tuples are copied; everything else in such data is immutable."""
    if type(value) is dict:
        return {k: json_copy(v) for k, v in value.items()}
    if type(value) is list:
        return [json_copy(v) for v in value]
    if type(value) is tuple:
        return tuple([json_copy(v) for v in value])
    return value


def check_header(data: object, kind: str, schemas: tuple[int, ...]) -> Mapping[str, Any]:
    """Validate the header of ``data`` and return it as a mapping.

    Raises:
        SnapshotError: ``data`` is not a dict, was written by another class, or has a schema
            version not in ``schemas``.
    """
    if not isinstance(data, Mapping):
        raise SnapshotError(f"{kind} snapshot must be a dict, got {type(data).__name__}")
    got_kind = data.get("kind")
    if got_kind != kind:
        raise SnapshotError(f"expected a {kind} snapshot, got kind={got_kind!r}")
    schema = data.get("schema")
    if schema not in schemas:
        known = ", ".join(str(s) for s in schemas)
        raise SnapshotError(f"{kind} snapshot has schema {schema!r}; this version reads {known}")
    return data


def field(data: Mapping[str, Any], name: str, expected: type[T] | tuple[type, ...], kind: str) -> T:
    """Return ``data[name]`` after checking its type, or raise :class:`SnapshotError`.

    ``bool`` is not accepted where ``int`` or ``float`` is expected, and ``int`` is accepted where
    ``float`` is expected (JSON writes ``1.0`` back as ``1`` in some encoders).
    """
    if name not in data:
        raise SnapshotError(f"{kind} snapshot is missing field {name!r}")
    value = data[name]
    types = expected if isinstance(expected, tuple) else (expected,)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # type: ignore[return-value]
    if isinstance(value, bool) and bool not in types:
        raise SnapshotError(f"{kind} snapshot field {name!r} has type bool")
    if not isinstance(value, types):
        names = "/".join(t.__name__ for t in types)
        raise SnapshotError(f"{kind} snapshot field {name!r} must be {names}, got {type(value).__name__}")
    return value  # type: ignore[return-value]
