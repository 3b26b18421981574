"""Loop detection: the detectors of :mod:`~goalkeeper.core.loop_rules` and
:mod:`~goalkeeper.core.loop_peers` fused into one verdict.

:class:`MultiResolutionLoopDetector` is corteX's detector (``check(action_type, description, output,
error)``) grown into what users of peer frameworks ask for:

* **Profiles** (:class:`LoopPolicy`): ``"reference"`` keeps corteX's documented semantics;
  ``"goalkeeper"`` (the default) keys steps on volatile-insensitive action and observation keys, is
  progress-aware (a repeated call whose *result changes* is work, not a loop) and adds the peer
  rules of OpenHands and Gemini CLI.
* **Fusion**: every firing detector contributes a :class:`LoopSignal`; they become one
  :class:`LoopEvent` with ``combined_confidence = min(1, mean + 0.1 * (n - 1))`` and the reference's
  ``recommended_action``.
* **Graded escalation** (:class:`Escalation`): the first event of an episode is a NUDGE with a
  concrete message for the agent, a loop that continues gets REPLAN, one that continues after that
  gets STOP. Never a stop on the first sign.
* **loop_risk** in [0, 1]: rises with evidence (above 0.7 from REPLAN on, the Goal Tracking page's
  "break the loop" level), decays when the agent behaves.
* **Re-entry memory**: ``reset()`` after a replan forgets the windows but not the loops: repeating a
  remembered looping step is flagged at once and resumes the ladder where it was.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from typing import Any, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from . import _snapshot
from .loop_keys import StepFacts, reference_facts, step_facts
from .loop_policy import (
    PARTIAL_RISK_CAP,
    PROFILES,
    REENTRY_CONFIDENCE,
    RISK_BANDS,
    TRIED_APPROACHES,
    Escalation,
    EventFlat,
    Keying,
    LoopAction,
    LoopEvent,
    LoopPolicy,
    combined_confidence,
    loop_message,
    recommend_action,
)
from .loop_rules import Detector, LoopSignal, LoopType
from .steps import ContextCompressed, Message, Step, check_step_fields
from .text import collapse_ws, mask_volatile, stable_hash

# The detector, and (re-exported, so imports from here keep working) the names of the modules it
# was split into.
__all__ = [
    "PARTIAL_RISK_CAP",
    "PROFILES",
    "REENTRY_CONFIDENCE",
    "RISK_BANDS",
    "TRIED_APPROACHES",
    "Escalation",
    "Keying",
    "LoopAction",
    "LoopEvent",
    "LoopPolicy",
    "LoopSignal",
    "LoopType",
    "MultiResolutionLoopDetector",
    "combined_confidence",
    "recommend_action",
]

_DIGIT = re.compile(r"\d")


class MultiResolutionLoopDetector:
    """Detects loops in an agent's stream of steps and messages and escalates gradually.

    Args:
        exact_threshold: overrides the profile's ``exact_threshold`` (default 3).
        jaccard_threshold: overrides ``jaccard_threshold`` (default 0.65).
        oscillation_min_cycles: overrides ``oscillation_min_cycles`` (default 2).
        dead_end_threshold: overrides ``dead_end_threshold`` (default 3).
        profile: a profile name from :data:`PROFILES` (default ``"goalkeeper"``) or a :class:`LoopPolicy`.

    Raises:
        ConfigurationError: unknown profile or invalid threshold.
    """

    KIND = "MultiResolutionLoopDetector"
    #: 2: ``history`` entries are :data:`~goalkeeper.core.loop_policy.EventFlat` arrays (1: objects,
    #: still restored).
    SCHEMA = 2

    def __init__(
        self,
        exact_threshold: int | None = None,
        jaccard_threshold: float | None = None,
        oscillation_min_cycles: int | None = None,
        dead_end_threshold: int | None = None,
        *,
        profile: str | LoopPolicy = "goalkeeper",
    ) -> None:
        policy = profile if isinstance(profile, LoopPolicy) else LoopPolicy.named(profile)
        overrides: dict[str, Any] = {
            "exact_threshold": exact_threshold,
            "jaccard_threshold": jaccard_threshold,
            "oscillation_min_cycles": oscillation_min_cycles,
            "dead_end_threshold": dead_end_threshold,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        self.policy: LoopPolicy = dataclasses.replace(policy, **overrides) if overrides else policy
        self._use(self.policy.detectors())
        self._step_number = 0
        self._total_loops = 0
        self._history: deque[EventFlat] = deque(maxlen=self.policy.history_size)
        self._time = 0.0
        self._risk = 0.0
        self._level = Escalation.NONE
        self._ordinal = 0  # events in the open episode; 0 = no episode
        self._clean = 0  # clean steps since the episode's last event
        self._turn_break = False  # a user turn came after the open episode's last event
        self._memory: dict[str, int] = {}  # looping step fingerprint -> highest ordinal reached
        self._armed = False  # reset() was called: remembered loops are flagged at once
        self._approaches: list[str] = []
        self._own: deque[str] = deque(maxlen=8)  # hashes of our recent messages, not user input

    # -- properties -------------------------------------------------------------------------------

    @property
    def loop_risk(self) -> float:
        """Probability-like risk that the agent is looping, in [0, 1]; above 0.7 means "break the loop"."""
        return self._risk

    @property
    def escalation(self) -> Escalation:
        """The open episode's escalation level (NONE when no loop episode is open)."""
        return self._level

    @property
    def step_number(self) -> int:
        """How many steps have been observed."""
        return self._step_number

    @property
    def loop_history(self) -> tuple[LoopEvent, ...]:
        """The most recent loop events, oldest first (at most ``policy.history_size``)."""
        return tuple([LoopEvent.unflat(e) for e in self._history])

    @property
    def tried_approaches(self) -> tuple[str, ...]:
        """The most recent distinct approaches (actions) seen, oldest first."""
        return tuple(self._approaches)

    # -- input ------------------------------------------------------------------------------------

    def check(
        self,
        action_type: str,
        description: str,
        output: str,
        error: str | None = None,
        *,
        now: float | None = None,
    ) -> LoopEvent | None:
        """The reference entry point: record one step and return a :class:`LoopEvent` if it loops.

        In the goalkeeper keying the step becomes ``Step(tool=action_type, args={"description":
        description}, output=output, error=error)``, so the description identifies the action.

        Raises:
            InvalidInputError: an argument has the wrong type (``.field`` names it), or ``now`` is not
                a finite number.
        """
        for name, value in (("action_type", action_type), ("description", description), ("output", output)):
            if not isinstance(value, str):
                raise InvalidInputError(f"must be a string, got {type(value).__name__}", field=name)
        if error is not None and not isinstance(error, str):
            raise InvalidInputError(f"must be a string or None, got {type(error).__name__}", field="error")
        if self.policy.keying is Keying.GOALKEEPER:
            args = {"description": description} if description else {}
            return self.observe(Step(action_type, args, "", output, error or None), now=now)
        t = self._clock(now, None)
        if action_type in self.policy.exempt_tools:
            return self._conclude_step(None, t)
        return self._conclude_step(reference_facts(action_type, description, output, error or None), t)

    def observe(
        self, item: Step | Message | ContextCompressed, *, now: float | None = None
    ) -> LoopEvent | None:
        """Record one item of the agent's stream and return a :class:`LoopEvent` if it loops.

        Raises:
            InvalidInputError: ``item`` is not a Step, Message or ContextCompressed, one of its fields
                has the wrong type (``.field`` names it), or ``now`` is not a finite number.
        """
        if isinstance(item, Step):
            check_step_fields(item)
            return self._observe_step(item, self._clock(now, item.ts))
        if isinstance(item, Message):
            if item.role not in ("user", "assistant", "system"):
                raise InvalidInputError(f"must be user, assistant or system, got {item.role!r}", field="role")
            if not isinstance(item.content, str):
                raise InvalidInputError(
                    f"must be a string, got {type(item.content).__name__}", field="content"
                )
            return self._message(item.role, item.content, self._clock(now, item.ts))
        if isinstance(item, ContextCompressed):
            t = self._clock(now, item.ts)
            self._messages_pending = True
            return self._conclude([d.on_compressed(t) for d in self._detectors], None, "compressed", t, None)
        raise InvalidInputError(
            f"must be a Step, Message or ContextCompressed, got {type(item).__name__}", field="item"
        )

    def _use(self, detectors: list[Detector]) -> None:
        self._detectors = detectors
        # Message rules only reset themselves on a step; once reset they stay idle until the next
        # message or compression, so steps skip them until then (a third of the detector calls).
        self._step_watchers = [d for d in detectors if not d.watches_messages]
        self._messages_pending = True

    def _observe_step(self, step: Step, t: float) -> LoopEvent | None:
        """:meth:`observe` for a step whose fields were checked (``check_step_fields``) at time ``t``;
        GoalTracker validates a step once and calls this."""
        self._time = t
        if step.tool in self.policy.exempt_tools:
            return self._conclude_step(None, t)
        if self.policy.keying is Keying.GOALKEEPER:
            return self._conclude_step(step_facts(step), t)
        return self._conclude_step(reference_facts(step.tool, step.text, step.output, step.error), t)

    def reset(self) -> None:
        """Forget the windows and close the episode (call after a successful replan).

        Unlike the reference, the fingerprints of the loops seen are kept: repeating one of those
        steps is flagged at its first repeat and resumes the ladder where that loop left it.
        """
        for d in self._detectors:
            d.clear()
        self._risk = 0.0
        self._level = Escalation.NONE
        self._ordinal = self._clean = 0
        self._turn_break = False
        self._armed = True

    def get_stats(self) -> dict[str, Any]:
        """The reference's statistics: step number, loops detected, history size, recent loop types."""
        return {
            "step_number": self._step_number,
            "total_loops_detected": self._total_loops,
            "loop_history_size": len(self._history),
            "recent_loop_types": [e[0] for e in list(self._history)[-5:]],
        }

    # -- internals --------------------------------------------------------------------------------

    def _clock(self, now: object, ts: object) -> float:
        for name, value in (("now", now), ("ts", ts)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInputError("must be a finite number of seconds or None", field=name)
            self._time = float(value)
            break
        return self._time

    def _conclude_step(self, facts: StepFacts | None, t: float) -> LoopEvent | None:
        """Run the detectors on one step (``None``: an exempt tool, which only counts as clean)."""
        self._step_number += 1
        if facts is None:
            return self._conclude((), None, "", t, 0.0)
        if facts.approach not in self._approaches:
            self._approaches.append(facts.approach)
            del self._approaches[:-TRIED_APPROACHES]
        if self._messages_pending:
            detectors, self._messages_pending = self._detectors, False
        else:
            detectors = self._step_watchers
        found = [d.on_step(facts, t) for d in detectors]
        if self._armed and facts.pair in self._memory:
            evidence = "repeats a step of a loop seen before the reset"
            found.append(LoopSignal("ReentryMemory", REENTRY_CONFIDENCE, evidence, LoopType.REENTRY, 1, t))
        # Idle message rules have pressure 0.0, which never wins the max.
        pressure = max([d.pressure for d in detectors])
        return self._conclude(found, facts, facts.pair, t, pressure)

    def _message(self, role: str, content: str, t: float) -> LoopEvent | None:
        self._messages_pending = True
        if role != "assistant" and stable_hash(content) in self._own:
            return None  # our own nudge fed back to the agent is not a new user turn
        if role == "system":
            return None
        empty = not content.strip()
        key = ""
        if role == "assistant" and not empty and self.policy.peer_rules:
            # Every volatile pattern contains a digit: skip the costly masking when there is none.
            key = stable_hash(mask_volatile(content) if _DIGIT.search(content) else collapse_ws(content))
        if role == "user" and self._ordinal:
            self._turn_break = True
        if role == "user" and self.policy.user_turn_resets:
            for d in self._detectors:
                if d.turn_scoped:
                    d.clear()
        found = [d.on_message(role, key, empty, t) for d in self._detectors]
        if role != "assistant":
            return self._conclude(found, None, "", t, None)
        # Only the message rules saw this message, so only their pressure is current.
        pressure = max((d.pressure for d in self._detectors if d.watches_messages), default=0.0)
        return self._conclude(found, None, f"message:{key}", t, pressure)

    def _conclude(
        self,
        found: list[LoopSignal | None] | tuple[()],
        facts: StepFacts | None,
        fingerprint: str,
        t: float,
        pressure: float | None,
    ) -> LoopEvent | None:
        """Turn the signals of one item into an event, or (``pressure`` not ``None``: the agent acted
        and did not loop) let the evidence fade."""
        signals = [s for s in found if s is not None]
        if signals:
            return self._event(tuple(signals), facts, fingerprint)
        if pressure is not None:
            self._risk = max(self._risk * self.policy.risk_decay, PARTIAL_RISK_CAP * min(1.0, pressure))
            self._clean += 1
            if self._ordinal and self._clean >= self.policy.episode_close_after:
                self._ordinal = 0
                self._level = Escalation.NONE
                self._turn_break = False
        return None

    def _event(self, signals: tuple[LoopSignal, ...], facts: StepFacts | None, fingerprint: str) -> LoopEvent:
        policy = self.policy
        primary = max(signals, key=lambda s: s.confidence)  # max() keeps the first of equals
        combined = combined_confidence(signals)
        repeats = max(s.repeat_count for s in signals)
        ordinal = self._ordinal + 1
        if self._turn_break and self._ordinal and not policy.escalate_across_turns:
            # The user spoke since the last nudge: this repeat answers the user, not the nudge, so it
            # is nudged again at the same level. The ladder climbs only when the agent repeats after
            # a nudge on its own (docs/decisions/loops.md, "No escalation across a user turn").
            ordinal = self._ordinal
        self._turn_break = False
        if facts is not None:
            if any(s.loop_type is LoopType.REENTRY for s in signals):
                ordinal = max(ordinal, self._memory[fingerprint] + 1)
            self._memory[fingerprint] = max(ordinal, self._memory.pop(fingerprint, 0))
            while len(self._memory) > policy.memory_size:
                del self._memory[next(iter(self._memory))]
        level = (
            Escalation.STOP
            if ordinal >= policy.stop_at
            else Escalation.REPLAN
            if ordinal >= policy.replan_at
            else Escalation.NUDGE
        )
        self._ordinal, self._level, self._clean = ordinal, level, 0
        low, high = RISK_BANDS[level]
        self._risk = max(self._risk, low + (high - low) * combined)
        message = loop_message(signals, facts.label if facts is not None else "step", level)
        self._own.append(stable_hash(message))
        event = LoopEvent(
            primary.loop_type,
            signals,
            combined,
            tuple(self._approaches),
            recommend_action(primary.loop_type, combined, repeats),
            self._step_number,
            level,
            message,
            fingerprint,
            ordinal,
            self._risk,
        )
        self._history.append(event.flat())
        self._total_loops += 1
        return event

    # -- snapshot ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state as a JSON-able dict (see :meth:`restore`)."""
        data = _snapshot.header(self.KIND, self.SCHEMA)
        data.update(
            policy=self.policy.to_dict(),
            step_number=self._step_number,
            total_loops=self._total_loops,
            history=[[e[0], list(e[1]), e[2], list(e[3]), *e[4:]] for e in self._history],
            time=self._time,
            risk=self._risk,
            level=self._level.value,
            ordinal=self._ordinal,
            clean=self._clean,
            turn_break=self._turn_break,
            memory=[[k, v] for k, v in self._memory.items()],
            armed=self._armed,
            approaches=list(self._approaches),
            own=list(self._own),
            detectors=[d.snapshot() for d in self._detectors],
        )
        return data

    @classmethod
    def restore(cls, data: object) -> Self:
        """Rebuild a detector from :meth:`snapshot`; continuing it gives the same results as the
        original would have.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        kind = cls.KIND
        snap = _snapshot.check_header(data, kind, (1, cls.SCHEMA))
        get = _snapshot.field
        try:
            policy = LoopPolicy.from_dict(get(snap, "policy", dict, kind))
        except ConfigurationError as exc:
            raise SnapshotError(f"{kind} snapshot has an invalid policy: {exc}") from exc
        obj = cls(profile=policy)
        detectors = get(snap, "detectors", list, kind)
        if len(detectors) != len(obj._detectors):
            raise SnapshotError(
                f"{kind} snapshot has {len(detectors)} detectors, the policy needs {len(obj._detectors)}"
            )
        obj._use([type(d).restore(s) for d, s in zip(obj._detectors, detectors, strict=True)])
        compact = snap["schema"] == cls.SCHEMA
        for e in get(snap, "history", list, kind):
            if compact:  # validated as the object form is
                e = LoopEvent.compact_dict(e)
            obj._history.append(LoopEvent.from_dict(e).flat())
        obj._step_number = get(snap, "step_number", int, kind)
        obj._total_loops = get(snap, "total_loops", int, kind)
        obj._time = get(snap, "time", float, kind)
        obj._risk = get(snap, "risk", float, kind)
        obj._ordinal = get(snap, "ordinal", int, kind)
        obj._clean = get(snap, "clean", int, kind)
        # Absent from snapshots written before the rule existed: no user turn was pending then.
        obj._turn_break = get(snap, "turn_break", bool, kind) if "turn_break" in snap else False
        obj._armed = get(snap, "armed", bool, kind)
        try:
            obj._level = Escalation(get(snap, "level", str, kind))
            obj._memory = {str(k): int(v) for k, v in get(snap, "memory", list, kind)}
            obj._approaches = [str(a) for a in get(snap, "approaches", list, kind)]
            obj._own.extend(str(h) for h in get(snap, "own", list, kind))
        except (ValueError, TypeError) as exc:
            raise SnapshotError(f"{kind} snapshot is malformed: {exc}") from exc
        return obj
