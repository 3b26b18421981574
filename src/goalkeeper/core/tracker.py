"""GoalTracker: verifies every step of an agent against its goal and recommends what to do next.

The tracker joins the core's detectors into the reference's five-stage ``verify_step``:

1. **loops**: the step goes through :class:`~goalkeeper.core.loops.MultiResolutionLoopDetector`
   (and, in the ``reference`` profile, the reference's coarse state hash: 3 identical hashes);
2. **alignment**: keyword overlap between the step and the goal (plus plan and what the user
   said), see :func:`keyword_alignment`;
3. **LLM re-score**: below 0.7 and with an ``llm_verify_fn``, ``0.3 * heuristic + 0.7 * llm``;
4. **drift and progress**: :class:`~goalkeeper.core.drift.DriftEngine` (rises at once, decays) and plan or
   velocity-based progress, with stall counting;
5. **action** by precedence (see :data:`PRECEDENCE` and ``docs/decisions.md``).

The three goal-alignment metrics (``current_progress``, ``drift_score``, ``loop_risk``) are written
through :meth:`WeightEngine.set_goal_metric <goalkeeper.core.weights.WeightEngine.set_goal_metric>`
with a reason, so every change is auditable (``tracker.weights.get_recent_changes()``).

Two profiles: ``"goalkeeper"`` (default: graded escalation, smoothed signals, progress-aware loop
rules) and ``"reference"`` (the documented corteX behaviour, kept for comparison).
"""

from __future__ import annotations

import inspect
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_count, check_now, check_str, clip01, config_int
from ._snapshot import check_header, header, scalar_fields
from ._tracker_parts import (
    KeywordMemory,
    keyword_alignment,
    llm_prompt,
    parse_llm_score,
    reference_state_hash,
)
from .decision import (
    ABORT_ALIGNMENT,
    ADJUST_ALIGNMENT,
    DRIFT_CARRY,
    DRIFT_SMOOTHING,
    LLM_BLEND_HEURISTIC,
    LLM_BLEND_LLM,
    LLM_VERIFY_BELOW,
    LOOP_THRESHOLD,
    NO_PLAN_EXPECTED_STEPS,
    STATE_HASH_HISTORY,
    VERIFICATION_HISTORY,
    Action,
    decide,
)
from .drift import ENGINE_HISTORY, DriftAssessment, DriftEngine, DriftFlat
from .loop_policy import ESCALATION_OF, ESCALATION_TEXT, EventFlat
from .loops import Escalation, LoopEvent, MultiResolutionLoopDetector
from .routing import DualProcessRouter, ProcessType
from .step_words import StepWordMemo, WordFeatures
from .steps import ContextCompressed, Message, Step, check_message_fields, check_step_fields
from .text import Embedder, KeywordMemo, TextMemo, collapsed_trigrams, joined_trigrams
from .weights import WeightEngine

__all__ = ["GoalState", "GoalTracker", "LLMVerifyFn", "StepVerification"]

#: ``llm_verify_fn``: a prompt in, a reply out (sync or async); the reply holds a score in [0, 1].
LLMVerifyFn = Callable[[str], "str | float | Awaitable[str | float]"]


@dataclass(frozen=True, slots=True)
class GoalState:
    """A snapshot of where the goal stands (the reference's ``GoalState`` plus ``loop_risk``)."""

    original_goal: str
    current_step: int
    total_steps_planned: int
    progress: float
    drift_score: float
    loop_detected: bool
    loop_count: int
    stall_turns: int
    timestamp: float
    loop_risk: float = 0.0


@dataclass(frozen=True, slots=True)
class StepVerification:
    """The verdict on one step.

    The first six fields are the reference's; the rest say why and what goes to the agent.

    Attributes:
        aligned: ``alignment_score >= 0.5``.
        alignment_score: how well the step serves the goal, in [0, 1].
        drift_delta: change of ``drift_score`` caused by this step.
        progress_delta: change of ``progress`` caused by this step.
        reasoning: human-readable account of the decision.
        recommended_action: ``continue``, ``adjust``, ``replan`` or ``abort``.
        step_number: 1-based number of the step.
        progress: ``current_progress`` after the step, in [0, 1].
        drift_score: ``drift_score`` after the step, in [0, 1].
        loop_risk: ``loop_risk`` after the step, in [0, 1].
        escalation: the loop ladder's level (``none``, ``nudge``, ``replan``, ``stop``).
        nudge: text for the agent when the action is not ``continue``, else ``None``.
        process: System 1 or System 2 for the next step (:class:`DualProcessRouter`).
        rule: the precedence rule that chose the action.
        loop_event: the loop detected on this step, if any.
        drift: the DriftEngine's raw assessment of this step.
        llm_score: the LLM's score when it was asked and answered, else ``None``.
    """

    aligned: bool
    alignment_score: float
    drift_delta: float
    progress_delta: float
    reasoning: str
    recommended_action: Action
    step_number: int = 0
    progress: float = 0.0
    drift_score: float = 0.0
    loop_risk: float = 0.0
    escalation: Escalation = Escalation.NONE
    nudge: str | None = None
    process: ProcessType = ProcessType.SYSTEM1
    rule: str = ""
    loop_event: LoopEvent | None = None
    drift: DriftAssessment | None = field(default=None, repr=False)
    llm_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the verdict as a JSON-able dict."""
        data = {k: v for k, v in scalar_fields(self).items() if k not in ("loop_event", "drift")}
        data["escalation"] = self.escalation.value
        data["process"] = self.process.value
        data["loop_event"] = self.loop_event.to_dict() if self.loop_event else None
        data["drift"] = self.drift.to_dict() if self.drift else None
        return data

    def flat(self, drift: DriftFlat | None = None, event: EventFlat | None = None) -> VerdictFlat:
        """The verdict as a tuple of plain values (see :data:`VerdictFlat`); :meth:`unflat` inverts it.

        ``drift`` and ``event`` are ``self.drift.flat()`` and ``self.loop_event.flat()`` when the
        caller already has them (the drift engine's and loop detector's history entries), so the
        histories share one tuple.
        """
        if drift is None and self.drift is not None:
            drift = self.drift.flat()
        if event is None and self.loop_event is not None:
            event = self.loop_event.flat()
        return (
            self.aligned, self.alignment_score, self.drift_delta, self.progress_delta, self.reasoning,
            self.recommended_action, self.step_number, self.progress, self.drift_score, self.loop_risk,
            ESCALATION_TEXT[self.escalation], self.nudge, _PROCESS_TEXT[self.process], self.rule,
            event, drift, self.llm_score,
        )  # fmt: skip

    @classmethod
    def unflat(cls, flat: VerdictFlat) -> StepVerification:
        """Inverse of :meth:`flat`."""
        event, drift = flat[14], flat[15]
        return cls(
            *flat[:10],
            ESCALATION_OF[flat[10]],
            flat[11],
            _PROCESS_OF[flat[12]],
            flat[13],
            None if event is None else LoopEvent.unflat(event),
            None if drift is None else DriftAssessment.unflat(drift),
            flat[16],
        )


#: A :class:`StepVerification` as plain values, in field order: enum members as their values, the
#: loop event and drift assessment as their flat tuples. The tracker's ``verifications`` view keeps
#: this form: the garbage collector stops tracking a tuple of plain values, so a service holding many
#: goals does not traverse their verdicts on every full collection.
VerdictFlat = tuple[
    bool, float, float, float, str, Action, int, float, float, float, str, "str | None", str, str,
    "EventFlat | None", "DriftFlat | None", "float | None",
]  # fmt: skip
_PROCESS_TEXT: dict[ProcessType, str] = {p: p.value for p in ProcessType}
_PROCESS_OF: dict[str, ProcessType] = {p.value: p for p in ProcessType}


@dataclass(slots=True)
class _Pending:
    """Everything computed for a step before the (optional) LLM is asked; no state touched yet."""

    step: Step
    now: float | None
    heuristic: float
    prompt: str | None
    words: WordFeatures


def _drop_oldest(window: deque[str], counts: dict[str, int]) -> None:
    """Make room in a full counted window: the oldest entry leaves it and its count goes down."""
    if len(window) == window.maxlen:
        old = window[0]
        left = counts[old] - 1
        if left:
            counts[old] = left
        else:
            del counts[old]


class GoalTracker:
    """Tracks one goal across an agent's steps and recommends ``continue/adjust/replan/abort``.

    Args:
        goal: the goal in plain words (non-empty).
        plan: optional plan step texts (same as calling :meth:`set_plan`).
        profile: ``"goalkeeper"`` (default) or ``"reference"``.
        llm_verify_fn: default LLM re-scorer for :meth:`verify_step` (sync or async callable).
        embedder: optional :class:`~goalkeeper.core.text.Embedder` for drift relevance.
        weights: the :class:`WeightEngine` to write the goal metrics to (a new one by default).
        token_budget: tokens the task may spend (drift's budget signal).
        drift_history: drift assessments retained (``drift_engine.get_history()``; default 100 as in
            the reference). A session keeps fewer, so that a long-lived goal's snapshot stays small.
        clock: optional ``() -> float`` used when a call gives no ``now`` and the step no ``ts``.
            The core never reads a clock by itself; pass ``time.time`` to stamp steps on receipt.
        verification_history: verdicts kept in the :attr:`verifications` view (>= 1; default 200
            as in the reference). A session keeps fewer: each verdict holds its drift assessment
            and loop event, and a service holding many goals pays for every one of them in memory
            and in the garbage collector's full collections.

    Raises:
        ConfigurationError: empty goal, unknown profile, or a bad argument.
    """

    KIND = "GoalTracker"
    SCHEMA = 1
    PROFILES = ("goalkeeper", "reference")

    def __init__(
        self,
        goal: str,
        *,
        plan: Sequence[str] | None = None,
        profile: Literal["goalkeeper", "reference"] = "goalkeeper",
        llm_verify_fn: LLMVerifyFn | None = None,
        embedder: Embedder[Any] | None = None,
        weights: WeightEngine | None = None,
        token_budget: int = 50_000,
        drift_history: int = ENGINE_HISTORY,
        clock: Callable[[], float] | None = None,
        verification_history: int = VERIFICATION_HISTORY,
    ) -> None:
        if not isinstance(goal, str) or not goal.strip():
            raise ConfigurationError("goal must be a non-empty string")
        if profile not in self.PROFILES:
            raise ConfigurationError(f"unknown profile {profile!r}; known: {', '.join(self.PROFILES)}")
        if llm_verify_fn is not None and not callable(llm_verify_fn):
            raise ConfigurationError("llm_verify_fn must be callable")
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning seconds")
        self.original_goal = goal
        self.profile = profile
        self.llm_verify_fn = llm_verify_fn
        self._embedder = embedder
        self._clock = clock
        self._verification_history = config_int("verification_history", verification_history, 1)
        self.weights = weights if weights is not None else WeightEngine()
        self.router = DualProcessRouter()
        self.loops = MultiResolutionLoopDetector(profile=profile)
        self.drift_engine = DriftEngine(
            goal, token_budget=token_budget, embedder=embedder, max_history=drift_history
        )
        self._vocab = KeywordMemory(goal)
        # Keywords of the words that repeat from step to step: a pure function of the text, so not
        # part of the snapshot.
        self._keywords = KeywordMemo()
        self._words = StepWordMemo()
        self._head_trigrams = TextMemo(collapsed_trigrams, 64, 256)
        self._plan: list[str] = []
        self._reset_counters()
        if plan is not None:
            self.set_plan(plan)

    def _reset_counters(self) -> None:
        self._step = 0
        self._progress = 0.0
        self._drift = 0.0
        self._aligned_steps = 0
        self._stall = 0
        self._loop_detected = False
        self._loop_count = 0
        self._low_align = 0
        self._align_ema = 0.5
        self._replanned_off_track = False
        self._first_ts: float | None = None
        self._last_ts = 0.0
        self._verifications: deque[VerdictFlat] = deque(maxlen=self._verification_history)
        self._align_sum = 0.0
        self._align_n = 0
        self._hashes: deque[str] = deque(maxlen=STATE_HASH_HISTORY)
        self._hash_counts: Counter[str] = Counter()
        self._looped_hashes: deque[str] = deque(maxlen=50)
        self._seen: deque[str] = deque(maxlen=64)
        self._seen_counts: Counter[str] = Counter()
        self._external_progress = False
        self._verified_total = 0

    # -- plan and state ----------------------------------------------------------------------------

    def set_plan(self, steps: Sequence[str]) -> None:
        """Store the plan's step texts and reset the step counter to 0 (reference behaviour).

        The plan's words count as on-topic for alignment and drift. Progress then advances by
        ``1 / len(steps)`` per aligned step (the reference's linear rule).

        Raises:
            InvalidInputError: ``steps`` is not a list of strings.
        """
        if isinstance(steps, str) or not isinstance(steps, Sequence):
            raise InvalidInputError("must be a list of step texts", field="plan")
        plan = [check_str(f"plan[{i}]", s) for i, s in enumerate(steps)]
        self._plan = plan
        self._step = 0
        self._aligned_steps = 0
        self._vocab.set_plan(plan)
        self.drift_engine.set_goal(self.original_goal, plan)

    def set_progress(self, value: float, *, reason: str, now: float | None = None) -> float:
        """Set ``current_progress`` from a better source than step counting.

        Sub-goal completion (a goal tree) or measured metrics know more about progress than the
        tracker's plan or velocity estimate; once this is called, steps stop moving progress by
        themselves and only this method does. Progress that rises ends a stall.

        Returns:
            The change applied.

        Raises:
            InvalidInputError: ``value`` is not a finite number in [0, 1] (``field="progress"``).
        """
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise InvalidInputError(f"must be a number in [0, 1], got {value!r}", field="progress")
        t = self._time(now, None)
        self._last_ts = t
        old = self._progress
        self._external_progress = True
        self._progress = float(value)
        if self._progress > old:
            self._stall = 0
        if self._progress != self.weights.goal_alignment["current_progress"]:
            self.weights.set_goal_metric(
                "current_progress", self._progress, reason=reason or "progress set", timestamp=t
            )
        return self._progress - old

    @property
    def plan(self) -> tuple[str, ...]:
        """The current plan's step texts."""
        return tuple(self._plan)

    def get_state(self) -> GoalState:
        """Return where the goal stands now."""
        return GoalState(
            original_goal=self.original_goal,
            current_step=self._step,
            total_steps_planned=len(self._plan),
            progress=self._progress,
            drift_score=self._drift,
            loop_detected=self._loop_detected,
            loop_count=self._loop_count,
            stall_turns=self._stall,
            timestamp=self._last_ts,
            loop_risk=self.loops.loop_risk,
        )

    @property
    def verification_history(self) -> int:
        """How many verdicts the :attr:`verifications` view keeps (200 unless configured)."""
        return self._verification_history

    @property
    def verifications(self) -> tuple[StepVerification, ...]:
        """The most recent verifications, oldest first (at most :attr:`verification_history`).

        A view for inspection in this process: it is not part of :meth:`snapshot` (the durable step
        log belongs to a store), so a restored tracker starts with an empty view.
        """
        return tuple([StepVerification.unflat(v) for v in self._verifications])

    def get_summary(self) -> dict[str, Any]:
        """The reference's 10-key summary."""
        return {
            "goal": self.original_goal,
            "progress": self._progress,
            "drift": self._drift,
            "steps_completed": self._step,
            "steps_planned": len(self._plan),
            "loops_detected": self._loop_count,
            "stall_turns": self._stall,
            "elapsed_seconds": 0.0 if self._first_ts is None else self._last_ts - self._first_ts,
            "verifications": min(self._verified_total, self.verification_history),
            "avg_alignment": self._align_sum / self._align_n if self._align_n else 0.0,
        }

    def reset_loop_detection(self) -> None:
        """Clear the loop windows and the loop flag (call after replanning).

        Unlike the reference, the tracker remembers what looped: repeating one of those steps is
        flagged at its first repeat and resumes the escalation where it stood, so an agent cannot
        silently re-enter the loop it just left.
        """
        self.loops.reset()
        for h in self._hash_counts:
            if self._hash_counts[h] >= LOOP_THRESHOLD and h not in self._looped_hashes:
                self._looped_hashes.append(h)
        self._hashes.clear()
        self._hash_counts.clear()
        self._loop_detected = False

    # -- the stream --------------------------------------------------------------------------------

    def observe(self, item: Message | ContextCompressed, *, now: float | None = None) -> LoopEvent | None:
        """Record a message or a context compression (steps go through :meth:`verify`).

        User messages add their words to the on-topic vocabulary (the user says what the goal
        involves); every item feeds the loop detector's monologue, empty-response and compression
        rules. Returns the loop event those rules raise, if any.
        """
        if isinstance(item, Message):
            # Checked before anything is recorded: a message built directly is not validated.
            check_message_fields(item)
        elif not isinstance(item, ContextCompressed):
            raise InvalidInputError(
                "must be a Message or ContextCompressed (steps go through verify), "
                f"got {type(item).__name__}",
                field="item",
            )
        t = self._time(now, item.ts)
        if isinstance(item, Message) and item.role == "user":
            self._vocab.add_context(item.content, self._keywords)
            self.drift_engine.observe_context(item.content)
        event = self.loops.observe(item, now=t)
        self._note_loop(event)
        return event

    def verify(
        self, step: Step, *, now: float | None = None, llm_verify_fn: LLMVerifyFn | None = None
    ) -> StepVerification:
        """Verify one step (synchronously) and return the verdict.

        Raises:
            InvalidInputError: ``step`` is not a :class:`Step` or ``now`` is not a finite number.
            ConfigurationError: the LLM function is async; use :meth:`averify` instead.
        """
        pending = self._begin(step, now, llm_verify_fn)
        reply: object = None
        fn = llm_verify_fn or self.llm_verify_fn
        if pending.prompt is not None and fn is not None:
            try:
                reply = fn(pending.prompt)
            except Exception as exc:  # an LLM outage must not take the monitor down with it
                reply = exc
            if inspect.isawaitable(reply):
                close = getattr(reply, "close", None)
                if close is not None:
                    close()
                raise ConfigurationError("llm_verify_fn is async: use averify_step()/averify()")
        return self._finish(pending, reply)

    async def averify(
        self, step: Step, *, now: float | None = None, llm_verify_fn: LLMVerifyFn | None = None
    ) -> StepVerification:
        """Like :meth:`verify`, but awaits an async ``llm_verify_fn`` (sync ones work too)."""
        pending = self._begin(step, now, llm_verify_fn)
        reply: object = None
        fn = llm_verify_fn or self.llm_verify_fn
        if pending.prompt is not None and fn is not None:
            try:
                reply = fn(pending.prompt)
                if inspect.isawaitable(reply):
                    reply = await reply
            except Exception as exc:  # an LLM outage must not take the monitor down with it
                reply = exc
        return self._finish(pending, reply)

    def verify_step(
        self,
        step_description: str,
        step_output: str = "",
        llm_verify_fn: LLMVerifyFn | None = None,
        *,
        tool: str = "",
        args: Mapping[str, Any] | None = None,
        error: str | None = None,
        exit_code: int | None = None,
        tokens: int = 0,
        now: float | None = None,
    ) -> StepVerification:
        """The reference's entry point (sync): verify a step given as description and output."""
        step = Step.of(tool, args, step_description, step_output, error, exit_code, tokens)
        return self.verify(step, now=now, llm_verify_fn=llm_verify_fn)

    async def averify_step(
        self,
        step_description: str,
        step_output: str = "",
        llm_verify_fn: LLMVerifyFn | None = None,
        *,
        tool: str = "",
        args: Mapping[str, Any] | None = None,
        error: str | None = None,
        exit_code: int | None = None,
        tokens: int = 0,
        now: float | None = None,
    ) -> StepVerification:
        """The reference's async ``verify_step``: like :meth:`verify_step`, awaiting the LLM."""
        step = Step.of(tool, args, step_description, step_output, error, exit_code, tokens)
        return await self.averify(step, now=now, llm_verify_fn=llm_verify_fn)

    # -- internals ---------------------------------------------------------------------------------

    def _time(self, now: float | None, ts: float | None) -> float:
        checked = check_now(now)
        if checked is None:
            checked = ts
        if checked is None and self._clock is not None:
            checked = check_now(self._clock())
        return self._last_ts if checked is None else checked

    def _begin(self, step: Step, now: float | None, fn: LLMVerifyFn | None) -> _Pending:
        if not isinstance(step, Step):
            raise InvalidInputError(f"must be a Step, got {type(step).__name__}", field="step")
        now = check_now(now)
        # The step is validated here, once, before any state changes; the detectors are then fed
        # through their trusted entry points.
        check_step_fields(step)
        check_count("tokens", step.tokens)
        if step.ts is not None:
            check_now(step.ts, "ts")
        # Keywords (alignment), tokens and entities (drift) of the step text in one pass.
        words = self._words.of(step.text, step.words)
        heuristic = keyword_alignment(step, self._vocab, self._keywords, words[0])
        wants_llm = heuristic < LLM_VERIFY_BELOW and (fn or self.llm_verify_fn) is not None
        prompt = llm_prompt(self.original_goal, self._plan, step) if wants_llm else None
        return _Pending(step, now, heuristic, prompt, words)

    def _finish(self, pending: _Pending, reply: object) -> StepVerification:
        step = pending.step
        t = self._time(pending.now, step.ts)
        if self._first_ts is None:
            self._first_ts = t
        self._last_ts = t
        self._step += 1
        notes: list[str] = []

        # 1. Loops.
        event = self.loops._observe_step(step, float(t))
        self._note_loop(event)
        if self.profile == "reference":
            # Only the reference profile decides loops by the coarse state hash; the goalkeeper
            # profile's detector keeps its own windows and re-entry memory.
            self._loop_detected = self._reference_hash_check(step)
        novel = self._remember_result(step)

        # 2-3. Alignment, re-scored by the LLM when asked.
        alignment, llm_score = self._rescore(pending.heuristic, reply, notes)
        aligned = alignment >= ADJUST_ALIGNMENT
        self._align_sum += alignment
        self._align_n += 1
        self._align_ema = DRIFT_SMOOTHING * alignment + (1 - DRIFT_SMOOTHING) * self._align_ema

        # 4. Drift and progress.
        trigs = None
        if self.drift_engine._embedder is None:
            # Lexical relevance needs the step's trigrams: its tool and description repeat, so
            # their part comes from a memo and only the trigrams touching the arguments are built.
            text, head = step.text, step.text_head
            rest = text[len(head) + 1 :] if head else text
            trigs = joined_trigrams(head, rest, self._head_trigrams)
        _, toks, ents = pending.words
        assessment = self.drift_engine._assess(
            step.text, step.output, step.tokens, 0.0, step.tool, float(t), step.words, (toks, ents, trigs)
        )
        old_drift, old_progress = self._drift, self._progress
        if self.profile == "reference":
            self._drift = assessment.score
        else:
            # Fast attack, slow release: an off-topic step is flagged on the step itself; the carry
            # only keeps the warning standing for a step or two after the agent comes back.
            score = assessment.score
            self._drift = clip01(max(score, (1 - DRIFT_CARRY) * score + DRIFT_CARRY * self._drift))
        productive = aligned and not step.failed and (novel or self.profile == "reference")
        if self.profile == "goalkeeper" and self.loops.escalation is not Escalation.NONE:
            productive = False
        if aligned:
            self._aligned_steps += 1
            if not step.failed:
                # What an on-topic step finds (ids, names in its result) is on-topic too: the
                # reservations listed by get_user_details are the ones the agent looks up next.
                self._vocab.add_context(step.output, self._keywords)
        self._progress = self._advance_progress(productive, aligned)
        if self.profile == "reference":
            self._stall = 0 if self._progress > old_progress else self._stall + 1
        else:
            self._stall = 0 if productive else self._stall + 1
        low = (self._align_ema if self.profile == "goalkeeper" else alignment) < ABORT_ALIGNMENT
        self._low_align = self._low_align + 1 if low else 0
        if not low:
            self._replanned_off_track = False

        # 5. Action.
        action, rule = self._decide(alignment)
        if action == "replan" and rule.startswith("alignment"):
            self._replanned_off_track = True
        process = self.router._route(goal_drift=self._drift, error_in_last_step=step.failed)
        self._write_metrics(step, t, alignment, event)
        nudge = self._nudge(action, rule, event)
        reasoning = self._reasoning(step, alignment, aligned, rule, action, notes)
        verdict = StepVerification(
            aligned=aligned,
            alignment_score=alignment,
            drift_delta=self._drift - old_drift,
            progress_delta=self._progress - old_progress,
            reasoning=reasoning,
            recommended_action=action,
            step_number=self._step,
            progress=self._progress,
            drift_score=self._drift,
            loop_risk=self.loops.loop_risk,
            escalation=self.loops.escalation,
            nudge=nudge,
            process=process,
            rule=rule,
            loop_event=event,
            drift=assessment,
            llm_score=llm_score,
        )
        # Share the history entries the drift engine and the loop detector just appended.
        shared_event = None if event is None else self.loops._history[-1]
        self._verifications.append(verdict.flat(self.drift_engine._history[-1], shared_event))
        self._verified_total += 1
        return verdict

    def _remember_result(self, step: Step) -> bool:
        """Record the step's (action, result) pair; True if it was not among the recent ones."""
        pair = step.action_key + "\x1f" + step.observation_key
        counts = self._seen_counts
        seen = counts.get(pair, 0)  # get(): Counter's own lookup of a missing key runs Python code
        _drop_oldest(self._seen, counts)
        self._seen.append(pair)
        counts[pair] = counts.get(pair, 0) + 1
        return seen == 0

    @staticmethod
    def _rescore(heuristic: float, reply: object, notes: list[str]) -> tuple[float, float | None]:
        """Blend the LLM's reply into the heuristic alignment (``0.3 h + 0.7 llm``) when it parses."""
        if isinstance(reply, Exception):
            notes.append(f"LLM verification failed ({type(reply).__name__}); heuristic kept")
            return heuristic, None
        if reply is None:
            return heuristic, None
        llm_score = parse_llm_score(reply)
        if llm_score is None:
            notes.append("LLM reply had no score in [0, 1]; heuristic kept")
            return heuristic, None
        return clip01(LLM_BLEND_HEURISTIC * heuristic + LLM_BLEND_LLM * llm_score), llm_score

    def _note_loop(self, event: LoopEvent | None) -> None:
        if event is None:
            if self.profile == "goalkeeper":
                self._loop_detected = self.loops.escalation is not Escalation.NONE
            return
        if event.ordinal == 1:
            self._loop_count += 1
        if self.profile == "goalkeeper":
            self._loop_detected = True

    def _reference_hash_check(self, step: Step) -> bool:
        h = reference_state_hash(step.description or step.text, step.output)
        counts = self._hash_counts
        _drop_oldest(self._hashes, counts)
        self._hashes.append(h)
        count = counts[h] = counts.get(h, 0) + 1
        hit = count >= LOOP_THRESHOLD or h in self._looped_hashes
        if hit and self.profile == "reference" and not self._loop_detected:
            self._loop_count += 1
        return hit

    def _advance_progress(self, productive: bool, aligned: bool) -> float:
        if self._external_progress:
            return self._progress
        if self._plan:
            # Reference rule: linear, 1/total per aligned step. The goalkeeper profile only counts
            # productive steps (aligned, succeeded, new result), so a loop does not "finish" a plan.
            counted = aligned if self.profile == "reference" else productive
            if not counted:
                return self._progress
            return min(1.0, self._progress + 1.0 / len(self._plan))
        if not productive:
            return self._progress
        return self._progress + (1.0 - self._progress) / NO_PLAN_EXPECTED_STEPS

    def _decide(self, alignment: float) -> tuple[Action, str]:
        return decide(
            self.profile,
            escalation=self.loops.escalation,
            loop_detected=self._loop_detected,
            drift=self._drift,
            stall=self._stall,
            alignment=alignment if self.profile == "reference" else self._align_ema,
            low_alignment_turns=self._low_align,
            replanned_off_track=self._replanned_off_track,
        )

    def _write_metrics(self, step: Step, t: float, alignment: float, event: LoopEvent | None) -> None:
        """Write the metrics this step changed to the weight engine, each with its reason."""
        w = self.weights
        # The engine's live goal metrics (read only): goal_alignment would copy the dict every step.
        current = w._goal_metrics
        progress, drift, risk = self._progress, self._drift, self.loops.loop_risk
        # The values are the tracker's own, finite and in [0, 1]: the trusted write skips the
        # validation set_goal_metric does for callers.
        write = w._write_goal_metric
        ts = float(t)
        where = None
        # Reasons are formatted only for the metrics that changed (most steps change one or two).
        if progress != current["current_progress"]:
            where = self._where(step)
            write("current_progress", progress, f"{where}: progress {progress:.3f}", "goal_tracker", ts)
        if drift != current["drift_score"]:
            where = where or self._where(step)
            reason = f"{where}: drift {drift:.3f}, alignment {alignment:.2f}"
            write("drift_score", drift, reason, "goal_tracker", ts)
        if risk != current["loop_risk"]:
            where = where or self._where(step)
            reason = f"{where}: " + (event.message if event else f"loop risk {risk:.3f}")
            write("loop_risk", risk, reason, "goal_tracker", ts)

    def _where(self, step: Step) -> str:
        """The step an audit record is about: ``step 12 (search)``."""
        return f"step {self._step}" + (f" ({step.tool})" if step.tool else "")

    def _nudge(self, action: Action, rule: str, event: LoopEvent | None) -> str | None:
        if action == "continue":
            return None
        if event is not None:
            # The loop message is the most concrete advice there is: it names the call repeated.
            return event.message
        goal = self.original_goal
        if action == "abort":
            return f"Stop: the run is no longer serving the goal ({rule}). Goal: {goal}"
        if action == "replan":
            return f"Step back and make a new plan ({rule}). Goal: {goal}"
        return f"Refocus on the goal ({rule}): {goal}"

    def _reasoning(
        self, step: Step, alignment: float, aligned: bool, rule: str, action: Action, notes: list[str]
    ) -> str:
        loops = self.loops
        text = (
            f"{action}: {rule}; alignment {alignment:.2f} ({'aligned' if aligned else 'not aligned'}), "
            f"drift {self._drift:.2f}, progress {self._progress:.2f}, stall {self._stall}, "
            f"loop risk {loops.loop_risk:.2f} ({ESCALATION_TEXT[loops.escalation]})"
        )
        return text + "; " + "; ".join(notes) if notes else text

    # -- snapshot ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return the whole tracker state as a JSON-able dict (detectors included)."""
        return {
            **header(self.KIND, self.SCHEMA),
            "goal": self.original_goal,
            "profile": self.profile,
            "plan": list(self._plan),
            "step": self._step,
            "progress": self._progress,
            "drift": self._drift,
            "aligned_steps": self._aligned_steps,
            "stall": self._stall,
            "loop_detected": self._loop_detected,
            "loop_count": self._loop_count,
            "low_align": self._low_align,
            "align_ema": self._align_ema,
            "replanned_off_track": self._replanned_off_track,
            "first_ts": self._first_ts,
            "last_ts": self._last_ts,
            "align_sum": self._align_sum,
            "align_n": self._align_n,
            "hashes": list(self._hashes),
            "looped_hashes": list(self._looped_hashes),
            "seen": list(self._seen),
            "external_progress": self._external_progress,
            "verified_total": self._verified_total,
            "vocab": self._vocab.to_dict(),
            "loops": self.loops.snapshot(),
            "drift_engine": self.drift_engine.snapshot(),
            "router": self.router.snapshot(),
            "weights": self.weights.snapshot(),
        }

    @classmethod
    def restore(
        cls,
        data: object,
        *,
        llm_verify_fn: LLMVerifyFn | None = None,
        embedder: Embedder[Any] | None = None,
        clock: Callable[[], float] | None = None,
        verification_history: int = VERIFICATION_HISTORY,
    ) -> Self:
        """Rebuild a tracker from :meth:`snapshot`; callables and the size of the in-process
        :attr:`verifications` view (empty after a restore) are not part of a snapshot.

        Raises:
            SnapshotError: wrong kind, unknown schema version, or a missing or malformed field.
        """
        d = check_header(data, cls.KIND, (cls.SCHEMA,))
        try:
            self = cls(
                d["goal"], profile=d["profile"], llm_verify_fn=llm_verify_fn, clock=clock,
                verification_history=verification_history,
            )  # fmt: skip
            self._embedder = embedder
            self._plan = [str(s) for s in d["plan"]]
            self._vocab = KeywordMemory.from_dict(d["vocab"])
            self.loops = MultiResolutionLoopDetector.restore(d["loops"])
            self.drift_engine = DriftEngine.restore(d["drift_engine"], embedder=embedder)
            self.router = DualProcessRouter.restore(d["router"])
            self.weights = WeightEngine.restore(d["weights"])
            self._step = int(d["step"])
            self._progress = float(d["progress"])
            self._drift = float(d["drift"])
            self._aligned_steps = int(d["aligned_steps"])
            self._stall = int(d["stall"])
            self._loop_detected = bool(d["loop_detected"])
            self._loop_count = int(d["loop_count"])
            self._low_align = int(d["low_align"])
            self._align_ema = float(d["align_ema"])
            self._replanned_off_track = bool(d["replanned_off_track"])
            self._first_ts = None if d["first_ts"] is None else float(d["first_ts"])
            self._last_ts = float(d["last_ts"])
            self._align_sum = float(d["align_sum"])
            self._align_n = int(d["align_n"])
            for h in d["hashes"]:
                self._hashes.append(str(h))
                self._hash_counts[str(h)] += 1
            self._looped_hashes.extend(str(h) for h in d["looped_hashes"])
            for p in d["seen"]:
                self._seen.append(str(p))
                self._seen_counts[str(p)] += 1
            self._external_progress = bool(d["external_progress"])
            self._verified_total = int(d["verified_total"])
        except SnapshotError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"GoalTracker snapshot is malformed: {exc!r}") from exc
        return self
