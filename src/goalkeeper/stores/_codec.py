"""Encoding shared by the store backends: strict JSON, and validated, encoded commits and events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from ..ports.store import AppendResult, Commit, CommitResult, StoredEvent

__all__ = [
    "EncodedCommit",
    "EncodedEvent",
    "append_result",
    "dedup",
    "dumps",
    "loads",
    "split_events",
    "stored_event",
]


# One encoder for every call: json.dumps with non-default options builds a new JSONEncoder per call,
# which costs about as much as encoding a small dict (it matters for one metric point per event).
# The encoder holds only its (fixed) options, so sharing it is safe across threads.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def dumps(value: object, field: str) -> str:
    """Encode ``value`` as compact, strict JSON (no NaN/inf).

    Raises:
        InvalidInputError: ``value`` is not JSON-able; ``.field`` is ``field``.
    """
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"must be JSON-able with finite numbers: {exc}", field=field) from None


def loads(text: str | bytes) -> Any:
    """Decode JSON written by :func:`dumps`."""
    return json.loads(text)


def dedup(ids: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split ``ids`` into (first occurrences in order, repeats in order)."""
    seen: set[str] = set()
    unique: list[str] = []
    repeated: list[str] = []
    for item in ids:
        (repeated if item in seen else unique).append(item)
        seen.add(item)
    return tuple(unique), tuple(repeated)


@dataclass(frozen=True, slots=True)
class EncodedCommit:
    """A validated :class:`Commit` with its JSON already encoded and in-commit repeats removed."""

    goal_id: str
    expected_version: int
    snapshot: str
    event_ids: tuple[str, ...]
    repeated_event_ids: tuple[str, ...]
    suggestions: tuple[tuple[str, str], ...]
    """(suggestion_id, JSON) pairs, unique by id, in input order."""
    repeated_suggestion_ids: tuple[str, ...]
    metrics: tuple[str, ...] = ()
    """The metric points as JSON, in order (the store numbers them)."""

    @classmethod
    def of(cls, commit: Commit, index: int) -> EncodedCommit:
        """Encode ``commit`` (``index`` is its position in the batch, for error messages)."""
        if not isinstance(commit, Commit):
            raise InvalidInputError(
                f"must be a Commit, got {type(commit).__name__}", field=f"commits[{index}]"
            )
        event_ids, repeated_events = dedup(commit.event_ids)
        suggestions: list[tuple[str, str]] = []
        seen: set[str] = set()
        repeated_suggestions: list[str] = []
        for i, suggestion in enumerate(commit.suggestions):
            sid = str(suggestion["suggestion_id"])
            if sid in seen:
                repeated_suggestions.append(sid)
                continue
            seen.add(sid)
            suggestions.append((sid, dumps(dict(suggestion), f"commits[{index}].suggestions[{i}]")))
        metrics = tuple(
            # A plain dict is encoded as is (no copy); any other Mapping is turned into one.
            dumps(point if type(point) is dict else dict(point), f"commits[{index}].metrics[{i}]")
            for i, point in enumerate(commit.metrics)
        )
        return cls(
            goal_id=commit.goal_id,
            expected_version=commit.expected_version,
            snapshot=dumps(dict(commit.snapshot), f"commits[{index}].snapshot"),
            event_ids=event_ids,
            repeated_event_ids=repeated_events,
            suggestions=tuple(suggestions),
            repeated_suggestion_ids=tuple(repeated_suggestions),
            metrics=metrics,
        )

    def committed(
        self,
        version: int,
        duplicate_events: Iterable[str] = (),
        duplicate_suggestions: Iterable[str] = (),
        last_metric_seq: int = 0,
    ) -> CommitResult:
        """The result of a successful commit; the store's duplicates plus the in-commit repeats.

        ``last_metric_seq`` is the goal's history counter after this commit: the commit's points
        got the ``len(self.metrics)`` numbers ending there.
        """
        events = set(duplicate_events)
        suggestions = set(duplicate_suggestions)
        return CommitResult(
            goal_id=self.goal_id,
            committed=True,
            version=version,
            duplicate_event_ids=tuple(e for e in self.event_ids if e in events) + self.repeated_event_ids,
            duplicate_suggestion_ids=tuple(s for s, _ in self.suggestions if s in suggestions)
            + self.repeated_suggestion_ids,
            metric_seqs=tuple(range(last_metric_seq - len(self.metrics) + 1, last_metric_seq + 1)),
        )

    def conflict(self, stored_version: int) -> CommitResult:
        """The result of a lost compare-and-set: nothing written."""
        return CommitResult(goal_id=self.goal_id, committed=False, version=stored_version)


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A validated event for the log, with its JSON encoded."""

    goal_id: str
    event_id: str
    payload: str


def split_events(events: Sequence[EncodedEvent]) -> tuple[list[EncodedEvent], list[str]]:
    """Drop events repeated within one append call: (first occurrences, repeated event ids)."""
    seen: set[tuple[str, str]] = set()
    unique: list[EncodedEvent] = []
    repeated: list[str] = []
    for event in events:
        key = (event.goal_id, event.event_id)
        if key in seen:
            repeated.append(event.event_id)
        else:
            seen.add(key)
            unique.append(event)
    return unique, repeated


def stored_event(event: EncodedEvent, seq: int, now: float) -> StoredEvent:
    """The :class:`StoredEvent` for ``event`` appended at ``seq``."""
    return StoredEvent(event.goal_id, seq, event.event_id, loads(event.payload), now)


def append_result(
    events: Sequence[EncodedEvent], seqs: Mapping[tuple[str, str], int], now: float
) -> AppendResult:
    """The :class:`AppendResult` of ``events`` given the sequence numbers of those that were new."""
    appended = tuple(
        stored_event(e, seqs[(e.goal_id, e.event_id)], now) for e in events if (e.goal_id, e.event_id) in seqs
    )
    duplicates = tuple(e.event_id for e in events if (e.goal_id, e.event_id) not in seqs)
    return AppendResult(appended, duplicates)
