"""Per-turn goal reminders whose verbosity falls as the conversation grows.

:class:`GoalReminderInjector` builds a short reminder of the goal for the system prompt of every
turn: FULL for turns 1-5 (~80-120 tokens), COMPACT for 6-15 (~40-60), ULTRA_COMPACT from 16 on
(~20-30). A drift warning is added when the drift score is above 0.3 or drift is flagged active.
:mod:`goalkeeper.core.context` re-exports everything here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

from ..errors import InvalidInputError, SnapshotError
from ._checks import check_count, check_now, check_number, check_str, config_int, config_number
from ._snapshot import check_header, header, scalar_fields
from ._snapshot import field as snap_field
from .text import collapse_ws

__all__ = [
    "TRUNCATION",
    "GoalProgress",
    "GoalReminder",
    "GoalReminderInjector",
    "ReminderContext",
    "ReminderMode",
    "render_reminder",
]


def _str_list(value: object, name: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise InvalidInputError("must be a list of strings", field=name)
    return [check_str(f"{name}[{i}]", v) for i, v in enumerate(value)]


class ReminderMode(str):
    """Verbosity of a reminder: a plain ``str`` subclass with three constants (as in the reference).

    ``FULL`` ("full", turns 1-5, ~80-120 tokens), ``COMPACT`` ("compact", turns 6-15, ~40-60) and
    ``ULTRA_COMPACT`` ("ultra_compact", turn 16 on, ~20-30). Compares equal to its string value.
    """

    __slots__ = ()
    FULL: ClassVar[ReminderMode]
    COMPACT: ClassVar[ReminderMode]
    ULTRA_COMPACT: ClassVar[ReminderMode]

    def __new__(cls, value: object) -> ReminderMode:
        """Return the mode named ``value``; raises :class:`InvalidInputError` for any other string."""
        if not isinstance(value, str) or value not in _MODES:
            raise InvalidInputError(f"must be one of {', '.join(_MODES)}, got {value!r}", field="mode")
        return super().__new__(cls, value)


_MODES: Final = ("full", "compact", "ultra_compact")
ReminderMode.FULL = ReminderMode("full")
ReminderMode.COMPACT = ReminderMode("compact")
ReminderMode.ULTRA_COMPACT = ReminderMode("ultra_compact")

#: Longest goal text and longest list item, in characters, per mode; longer text is cut with "...".
#: They keep each mode inside its token budget (4 characters per token).
TRUNCATION: Final[Mapping[str, tuple[int, int]]] = {
    "full": (200, 80),
    "compact": (100, 60),
    "ultra_compact": (60, 0),
}


@dataclass(frozen=True, slots=True)
class GoalProgress:
    """Where the task stands, for a reminder.

    Attributes:
        current_step: steps done (>= 0).
        total_steps: steps planned; 0 means unknown, and the reminder shows only the percentage.
        progress_pct: fraction done, in [0, 1] (shown as a whole percentage).
        summary: one line on what was achieved.
        current_sub_goal: what to focus on now.
    """

    current_step: int = 0
    total_steps: int = 0
    progress_pct: float = 0.0
    summary: str = ""
    current_sub_goal: str = ""

    def __post_init__(self) -> None:
        check_count("current_step", self.current_step)
        check_count("total_steps", self.total_steps)
        object.__setattr__(self, "progress_pct", check_number("progress_pct", self.progress_pct, 0.0, 1.0))
        check_str("summary", self.summary)
        check_str("current_sub_goal", self.current_sub_goal)


@dataclass(frozen=True, slots=True)
class ReminderContext:
    """Everything a reminder is built from, for :meth:`GoalReminderInjector.build_from_context`.

    Attributes:
        original_goal: the goal ("" gives an empty reminder).
        progress: where the task stands, or None to leave progress out.
        drift_score: in [0, 1]; above the injector's threshold it adds a drift warning.
        known_pitfalls: things to avoid, oldest first (the last ``max_pitfalls`` are shown).
        tried_approaches: approaches already tried, oldest first (the last ``max_tried`` are shown).
        turn_number: the turn (>= 0) that picks the mode.
        is_drift_active: force the drift warning (a detector says the agent is drifting).

    Raises:
        InvalidInputError: a field is malformed; ``.field`` names it.
    """

    original_goal: str
    progress: GoalProgress | None = None
    drift_score: float = 0.0
    known_pitfalls: tuple[str, ...] = ()
    tried_approaches: tuple[str, ...] = ()
    turn_number: int = 0
    is_drift_active: bool = False

    def __post_init__(self) -> None:
        check_str("original_goal", self.original_goal)
        if self.progress is not None and not isinstance(self.progress, GoalProgress):
            raise InvalidInputError("must be a GoalProgress or None", field="progress")
        object.__setattr__(self, "drift_score", check_number("drift_score", self.drift_score, 0.0, 1.0))
        object.__setattr__(self, "known_pitfalls", tuple(_str_list(self.known_pitfalls, "known_pitfalls")))
        object.__setattr__(
            self, "tried_approaches", tuple(_str_list(self.tried_approaches, "tried_approaches"))
        )
        check_count("turn_number", self.turn_number)
        if not isinstance(self.is_drift_active, bool):
            raise InvalidInputError("must be a bool", field="is_drift_active")


@dataclass(frozen=True, slots=True)
class GoalReminder:
    """A built reminder.

    Attributes:
        text: the reminder ("" when no goal is set).
        mode: its :class:`ReminderMode`.
        token_estimate: ``len(text) // 4``.
        turn_number: the turn it was built for.
        includes_drift_warning: whether it carries a drift warning.
        timestamp: when it was built (the ``now`` passed in, else the last known time, else 0.0).
    """

    text: str
    mode: ReminderMode
    token_estimate: int
    turn_number: int
    includes_drift_warning: bool
    timestamp: float


def _cut(text: str, limit: int) -> str:
    text = collapse_ws(text)
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def render_reminder(
    mode: ReminderMode,
    goal: str,
    progress: GoalProgress | None,
    drift_score: float,
    drift_warning: bool,
    pitfalls: Iterable[str] = (),
    tried: Iterable[str] = (),
) -> str:
    """Render a reminder in ``mode`` (the pure formatting behind :class:`GoalReminderInjector`).

    FULL: ``[GOAL: g] [PROGRESS: 3/10 - 30% complete - summary] [FOCUS: f] [AVOID: a; b] [TRIED: t]
    [DRIFT WARNING: 0.35 - refocus on the goal]``; COMPACT: ``[GOAL: g] [PROGRESS: 3/10 - 30%]
    [FOCUS: f] [AVOID: latest] [DRIFT: 0.35 - refocus]``; ULTRA_COMPACT: ``[GOAL: g] [PROGRESS: 30%]
    [DRIFT: 0.35!]``. Parts without content (and blank list items) are left out.
    """
    mode = ReminderMode(mode)
    goal_limit, item_limit = TRUNCATION[mode]
    parts = [f"[GOAL: {_cut(goal, goal_limit)}]"]
    pct = f"{progress.progress_pct * 100:.0f}%" if progress else ""
    steps = f"{progress.current_step}/{progress.total_steps} - " if progress and progress.total_steps else ""
    if mode == ReminderMode.ULTRA_COMPACT:
        parts += [f"[PROGRESS: {pct}]"] if progress else []
        parts += [f"[DRIFT: {drift_score:.2f}!]"] if drift_warning else []
        return " ".join(parts)
    items = [c for c in (_cut(p, item_limit) for p in pitfalls) if c]
    focus = _cut(progress.current_sub_goal, item_limit) if progress else ""
    if mode == ReminderMode.COMPACT:
        parts += [f"[PROGRESS: {steps}{pct}]"] if progress else []
        parts += [f"[FOCUS: {focus}]"] if focus else []
        parts += [f"[AVOID: {items[-1]}]"] if items else []
        parts += [f"[DRIFT: {drift_score:.2f} - refocus]"] if drift_warning else []
        return " ".join(parts)
    if progress:
        summary = f" - {_cut(progress.summary, item_limit)}" if progress.summary.strip() else ""
        parts.append(f"[PROGRESS: {steps}{pct} complete{summary}]")
    parts += [f"[FOCUS: {focus}]"] if focus else []
    parts += [f"[AVOID: {'; '.join(items)}]"] if items else []
    tried_items = [c for c in (_cut(t, item_limit) for t in tried) if c]
    parts += [f"[TRIED: {'; '.join(tried_items)}]"] if tried_items else []
    parts += [f"[DRIFT WARNING: {drift_score:.2f} - refocus on the goal]"] if drift_warning else []
    return " ".join(parts)


class GoalReminderInjector:
    """Builds per-turn goal reminders whose verbosity falls as the conversation grows.

    Args:
        full_cutoff: last turn of FULL reminders (turns 0..full_cutoff).
        compact_cutoff: last turn of COMPACT reminders; later turns are ULTRA_COMPACT.
        max_pitfalls: how many recent pitfalls a reminder lists (the list is pruned at twice this).
        max_tried: how many recent tried approaches a reminder lists (pruned at twice this).
        drift_warning_threshold: a drift score above this adds a drift warning.

    Raises:
        ConfigurationError: an argument is out of range (``compact_cutoff < full_cutoff`` included).
    """

    HISTORY_SIZE: ClassVar[int] = 50
    _KIND: ClassVar[str] = "GoalReminderInjector"
    _SCHEMA: ClassVar[int] = 1

    def __init__(
        self,
        full_cutoff: int = 5,
        compact_cutoff: int = 15,
        max_pitfalls: int = 5,
        max_tried: int = 5,
        drift_warning_threshold: float = 0.3,
    ) -> None:
        self.full_cutoff = config_int("full_cutoff", full_cutoff, 0)
        self.compact_cutoff = config_int("compact_cutoff", compact_cutoff, self.full_cutoff)
        self.max_pitfalls = config_int("max_pitfalls", max_pitfalls, 1)
        self.max_tried = config_int("max_tried", max_tried, 1)
        self.drift_warning_threshold = config_number(
            "drift_warning_threshold", drift_warning_threshold, 0.0, 1.0
        )
        self._goal = ""
        self._pitfalls: list[str] = []
        self._tried: list[str] = []
        self._history: deque[GoalReminder] = deque(maxlen=self.HISTORY_SIZE)
        self._total = 0
        self._by_mode = dict.fromkeys(_MODES, 0)
        self._drift_warnings = 0
        self._last_now = 0.0

    @property
    def goal(self) -> str:
        """The goal reminders are about ("" when none is set)."""
        return self._goal

    @property
    def pitfalls(self) -> list[str]:
        """The recorded pitfalls, oldest first (a copy)."""
        return list(self._pitfalls)

    @property
    def tried_approaches(self) -> list[str]:
        """The recorded tried approaches, oldest first (a copy)."""
        return list(self._tried)

    @property
    def total_reminders(self) -> int:
        """How many non-empty reminders were built over the injector's life."""
        return self._total

    @property
    def history(self) -> list[GoalReminder]:
        """The last 50 reminders, oldest first (a copy)."""
        return list(self._history)

    def set_goal(self, goal: str) -> None:
        """Set a new goal; pitfalls, tried approaches and the reminder history are cleared."""
        self._goal = collapse_ws(check_str("goal", goal))
        self._pitfalls.clear()
        self._tried.clear()
        self._history.clear()

    def record_pitfall(self, pitfall: str) -> bool:
        """Remember something to avoid; returns False for a blank text or a duplicate."""
        return self._remember(self._pitfalls, check_str("pitfall", pitfall), self.max_pitfalls)

    def record_tried_approach(self, approach: str) -> bool:
        """Remember an approach already tried; returns False for a blank text or a duplicate."""
        return self._remember(self._tried, check_str("approach", approach), self.max_tried)

    @staticmethod
    def _remember(items: list[str], text: str, limit: int) -> bool:
        text = collapse_ws(text)
        key = text.casefold()
        if not text or any(i.casefold() == key for i in items):
            return False
        items.append(text)
        if len(items) >= 2 * limit:
            # Pruning in batches (not on every append) keeps the cost amortised O(1).
            del items[:-limit]
        return True

    def get_mode(self, turn: int) -> ReminderMode:
        """FULL up to ``full_cutoff``, COMPACT up to ``compact_cutoff``, then ULTRA_COMPACT."""
        turn = check_count("turn", turn)
        if turn <= self.full_cutoff:
            return ReminderMode.FULL
        return ReminderMode.COMPACT if turn <= self.compact_cutoff else ReminderMode.ULTRA_COMPACT

    def build_reminder(
        self,
        progress: GoalProgress | None = None,
        drift_score: float = 0.0,
        turn_number: int = 0,
        is_drift_active: bool = False,
        *,
        now: float | None = None,
    ) -> GoalReminder:
        """Build the reminder for a turn from the injector's goal, pitfalls and tried approaches.

        Returns an empty reminder (text "", not recorded) when no goal is set.
        """
        ctx = ReminderContext(
            self._goal,
            progress,
            drift_score,
            tuple(self._pitfalls),
            tuple(self._tried),
            turn_number,
            is_drift_active,
        )
        return self.build_from_context(ctx, now=now)

    def build_from_context(self, ctx: ReminderContext, *, now: float | None = None) -> GoalReminder:
        """Build a reminder from an explicit :class:`ReminderContext` (the injector's lists are unused)."""
        if not isinstance(ctx, ReminderContext):
            raise InvalidInputError("must be a ReminderContext", field="ctx")
        checked = check_now(now)
        if checked is not None:
            self._last_now = checked
        mode = self.get_mode(ctx.turn_number)
        warn = ctx.drift_score > self.drift_warning_threshold or ctx.is_drift_active
        if not ctx.original_goal.strip():
            return GoalReminder("", mode, 0, ctx.turn_number, False, self._last_now)
        text = render_reminder(
            mode,
            ctx.original_goal,
            ctx.progress,
            ctx.drift_score,
            warn,
            ctx.known_pitfalls[-self.max_pitfalls :],
            ctx.tried_approaches[-self.max_tried :],
        )
        reminder = GoalReminder(text, mode, len(text) // 4, ctx.turn_number, warn, self._last_now)
        self._history.append(reminder)
        self._total += 1
        self._by_mode[mode] += 1
        self._drift_warnings += warn
        return reminder

    def get_stats(self) -> dict[str, Any]:
        """Counters: ``has_goal, total_reminders, history_size, reminders_by_mode, drift_warnings,
        pitfall_count, tried_count, avg_token_estimate`` (the average over the history window)."""
        n = len(self._history)
        return {
            "has_goal": bool(self._goal),
            "total_reminders": self._total,
            "history_size": n,
            "reminders_by_mode": dict(self._by_mode),
            "drift_warnings": self._drift_warnings,
            "pitfall_count": len(self._pitfalls),
            "tried_count": len(self._tried),
            "avg_token_estimate": sum(r.token_estimate for r in self._history) / n if n else 0.0,
        }

    def snapshot(self) -> dict[str, Any]:
        """Configuration, goal, lists, history and counters as a JSON-able dict."""
        return {
            **header(self._KIND, self._SCHEMA),
            "config": {
                "full_cutoff": self.full_cutoff,
                "compact_cutoff": self.compact_cutoff,
                "max_pitfalls": self.max_pitfalls,
                "max_tried": self.max_tried,
                "drift_warning_threshold": self.drift_warning_threshold,
            },
            "goal": self._goal,
            "pitfalls": list(self._pitfalls),
            "tried": list(self._tried),
            "history": [scalar_fields(r) for r in self._history],
            "total": self._total,
            "by_mode": dict(self._by_mode),
            "drift_warnings": self._drift_warnings,
            "last_now": self._last_now,
        }

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild from :meth:`snapshot`; raises :class:`SnapshotError` when it is malformed."""
        k = cls._KIND
        data = check_header(data, k, (cls._SCHEMA,))
        try:
            inj = cls(**snap_field(data, "config", dict, k))
            inj._goal = check_str("goal", snap_field(data, "goal", str, k))
            inj._pitfalls = _str_list(snap_field(data, "pitfalls", list, k), "pitfalls")
            inj._tried = _str_list(snap_field(data, "tried", list, k), "tried")
            for r in snap_field(data, "history", list, k)[-cls.HISTORY_SIZE :]:
                inj._history.append(
                    GoalReminder(
                        check_str("text", r["text"]),
                        ReminderMode(r["mode"]),
                        check_count("token_estimate", r["token_estimate"]),
                        check_count("turn_number", r["turn_number"]),
                        bool(r["includes_drift_warning"]),
                        check_number("timestamp", r["timestamp"]),
                    )
                )
            inj._total = check_count("total", snap_field(data, "total", int, k))
            by_mode = snap_field(data, "by_mode", dict, k)
            inj._by_mode = {m: check_count(f"by_mode.{m}", by_mode[m]) for m in _MODES}
            inj._drift_warnings = check_count("drift_warnings", snap_field(data, "drift_warnings", int, k))
            inj._last_now = check_number("last_now", snap_field(data, "last_now", float, k))
        except SnapshotError:
            raise
        except (InvalidInputError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc!r}") from exc
        return inj
