"""GoalSession: one goal's whole state, changed only by :meth:`GoalSession.apply`.

A session folds the events of one goal (DESIGN.md, wire schema v1: ``goal``, ``step``, ``message``,
``metrics``, ``subgoal``, ``feedback``, ``context_compressed``) into a
:class:`~goalkeeper.core.tracker.GoalTracker` (loops, drift, alignment, routing, weights), a
:class:`~goalkeeper.core.feedback.GoalDrivenFeedbackLoop` (numeric targets and nudges), a
:class:`~goalkeeper.core.goal_tree.GoalTree` (sub-goals), an optional
:class:`~goalkeeper.core.budget.AdaptiveBudget`, a :class:`~goalkeeper.core.progress.ProgressEstimator`
and a :class:`~goalkeeper.core.context.TaskState`, and answers every event with an :class:`Outcome`.

Rules in brief (``docs/session.md`` and ``docs/decisions/session.md`` have the whole story):

* **Before a goal** (no ``goal`` event with a description or plan yet) steps feed loop detection and
  routing only; drift and alignment stay neutral, because there is nothing to drift from.
* **current_progress** comes from the goal's metric targets if it has any, else from sub-goals if
  there are any, else from the tracker's own estimate; it is pushed into the tracker
  (``set_progress``) when it comes from metrics or sub-goals.
* **Suggestions are emitted on transitions only**: a new recommended action/rule or a higher loop
  escalation; a budget turning STUCK or HARD_CAP; the :data:`SYSTEM2_ESCALATE_AFTER`-th System 2
  routing in a row; a changed feedback-loop nudge; the goal becoming reached. An unchanged state
  never repeats a suggestion. Ids are ``stable_hash(f"{goal_id}|{version}|{rule}")`` (feedback-loop
  nudges keep the loop's own deterministic id, so feedback on them reaches the loop).
* **Exactly once**: a state ``version`` counts applied events; an ``event_id`` seen within the last
  :data:`DEDUP_WINDOW` events is a duplicate and changes nothing. A bad event raises
  :class:`~goalkeeper.errors.InvalidInputError` naming the field, before anything changes.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from ..errors import ConfigurationError, InvalidInputError, SnapshotError
from ._checks import check_str, config_int
from ._session_parts import (
    AUDIT_HISTORY,
    DEDUP_WINDOW,
    ERROR_TEXT_LIMIT,
    ESTIMATOR_WINDOW,
    LOOP_RULES,
    MAX_SUBGOALS,
    METRIC_HISTORY,
    SYSTEM2_ESCALATE_AFTER,
    UNLIMITED_STEPS,
    UNLIMITED_TOKENS,
    Announcer,
    EventIdWindow,
    GoalChange,
    MetricReadings,
    Outcome,
    Pending,
    ProgressSource,
    SessionMetrics,
    SubgoalChange,
    check_event,
    check_feedback,
    check_goal,
    check_subgoal,
)
from ._snapshot import check_header, field, header
from .budget import AdaptiveBudget, BudgetDecision
from .context import TaskState
from .decision import Action, decide
from .failure_risk import FailureRisk
from .feedback import GoalDrivenFeedbackLoop
from .feedback_strategies import GoalFeedbackStrategy, GoalSpec, GoalTarget, SimpleGoalFeedbackStrategy
from .goal_tree import GoalTree, NodeStatus
from .loops import Escalation
from .model import (
    ContextCompressedEvent,
    Event,
    EventType,
    FeedbackEvent,
    FeedbackOutcome,
    GoalEvent,
    MessageEvent,
    MetricsEvent,
    StepEvent,
    SubgoalEvent,
    SubGoalStatus,
    Suggestion,
    SuggestionKind,
)
from .progress import ProgressEstimate, ProgressEstimator
from .routing import EscalationContext, ProcessType
from .steps import ContextCompressed, Message, Step
from .text import Embedder, stable_hash
from .tracker import GoalTracker, LLMVerifyFn, StepVerification
from .weights import WeightEngine

__all__ = [
    "DEDUP_WINDOW",
    "LOOP_RULES",
    "METRIC_HISTORY",
    "SYSTEM2_ESCALATE_AFTER",
    "GoalSession",
    "Outcome",
    "ProgressSource",
    "SessionMetrics",
]

_WIRE_STATUS = {
    NodeStatus.PENDING: SubGoalStatus.PENDING,
    NodeStatus.ACTIVE: SubGoalStatus.IN_PROGRESS,
    NodeStatus.COMPLETE: SubGoalStatus.DONE,
    NodeStatus.BLOCKED: SubGoalStatus.BLOCKED,
    NodeStatus.FAILED: SubGoalStatus.FAILED,
    NodeStatus.SKIPPED: SubGoalStatus.SKIPPED,
}


class GoalSession:
    """One goal's state as a single state machine: ``apply(event) -> Outcome``.

    Args:
        goal_id: the goal's id (non-empty); events of other goals are refused.
        profile: ``"goalkeeper"`` (default) or ``"reference"`` (see :class:`GoalTracker`).
        strategy: the feedback loop's strategy (default :class:`SimpleGoalFeedbackStrategy`). Give
            each session its own instance: a learning strategy learns per goal.
        embedder: optional :class:`~goalkeeper.core.text.Embedder` for drift relevance.
        llm_verify_fn: optional synchronous LLM re-scorer for step alignment (see GoalTracker).
        dedup_window: event ids remembered for duplicate detection (>= 0; default 64).
        metric_history: measurements the feedback loop retains (>= 2; default 32).
        audit_history: metric changes, drift assessments and step verdicts retained for
            inspection (``tracker.weights.get_recent_changes()``,
            ``tracker.drift_engine.get_history()``, ``tracker.verifications``; >= 1; default 24):
            the tail a snapshot carries (the verdicts stay in this process). Decisions never depend
            on it.

    Raises:
        ConfigurationError: a bad argument.
    """

    KIND = "GoalSession"
    SCHEMA = 1

    def __init__(
        self,
        goal_id: str,
        *,
        profile: Literal["goalkeeper", "reference"] = "goalkeeper",
        strategy: GoalFeedbackStrategy | None = None,
        embedder: Embedder[Any] | None = None,
        llm_verify_fn: LLMVerifyFn | None = None,
        dedup_window: int = DEDUP_WINDOW,
        metric_history: int = METRIC_HISTORY,
        audit_history: int = AUDIT_HISTORY,
    ) -> None:
        if not isinstance(goal_id, str) or not goal_id.strip():
            raise ConfigurationError("goal_id must be a non-empty string")
        self.goal_id = goal_id
        self._embedder = embedder
        # Until a goal event arrives the tracker's goal is the id: it is never used to judge a step.
        audit = config_int("audit_history", audit_history, 1)
        self._tracker = GoalTracker(
            goal_id, profile=profile, llm_verify_fn=llm_verify_fn, embedder=embedder,
            weights=WeightEngine(max_history=audit), drift_history=audit, verification_history=audit,
        )  # fmt: skip
        self._loop = GoalDrivenFeedbackLoop(
            strategy if strategy is not None else SimpleGoalFeedbackStrategy(),
            goal_id=goal_id,
            retention_limit=config_int("metric_history", metric_history, 2),
        )
        self._seen = EventIdWindow(config_int("dedup_window", dedup_window, 0))
        self._tree: GoalTree | None = None
        self._subgoals: dict[str, str] = {}
        self._budget: AdaptiveBudget | None = None
        self._budget_spec: tuple[int | None, int | None] | None = None
        self._estimator = ProgressEstimator(velocity_window=ESTIMATOR_WINDOW, max_history=1)
        self._task = TaskState()
        self._readings = MetricReadings()
        self._say = Announcer()
        self._anchored = False
        self._version = 0
        self._last_ts = 0.0
        self._progress = 0.0
        self._step_progress = 0.0  # progress at the last step: the estimator's per-step delta
        self._external = False  # the tracker's progress is being set from metrics or sub-goals
        self._drift = 0.0
        self._loop_risk = 0.0
        self._stall = 0
        self._action: Action = "continue"
        self._routing = ProcessType.SYSTEM1
        self._budget_decision: BudgetDecision | None = None
        self._nudged_version = 0
        self._failure = FailureRisk()  # the goal's failure_risk: complexity prior and peak evidence

    # -- read-only views --------------------------------------------------------------------------

    @property
    def profile(self) -> str:
        """The tracker profile."""
        return self._tracker.profile

    @property
    def version(self) -> int:
        """State version: the number of events applied (duplicates and refused events excluded)."""
        return self._version

    @property
    def goal(self) -> str | None:
        """The goal text, or ``None`` before a goal event gave a description or plan."""
        return self._tracker.original_goal if self._anchored else None

    @property
    def tracker(self) -> GoalTracker:
        """The tracker (for inspection: change state through :meth:`apply` only)."""
        return self._tracker

    @property
    def feedback_loop(self) -> GoalDrivenFeedbackLoop:
        """The feedback loop (for inspection)."""
        return self._loop

    @property
    def tree(self) -> GoalTree | None:
        """The sub-goal tree, or ``None`` before the first sub-goal event (for inspection)."""
        return self._tree

    @property
    def budget(self) -> AdaptiveBudget | None:
        """The budget, or ``None`` when the goal has none (for inspection)."""
        return self._budget

    @property
    def recommended_action(self) -> Action:
        """The standing advice: ``continue``, ``adjust``, ``replan`` or ``abort``."""
        return self._action

    @property
    def routing(self) -> ProcessType:
        """System 1 or System 2 for the next step."""
        return self._routing

    @property
    def metrics(self) -> SessionMetrics:
        """Where the goal stands now."""
        return SessionMetrics(
            current_progress=self._progress,
            drift_score=self._drift,
            loop_risk=self._loop_risk,
            progress_percentage=self._task.progress_percentage,
            stall_turns=self._stall,
            steps=self._task.total_steps,
            tokens=self._task.total_tokens_spent,
            velocity=self._estimator.velocity,
            escalation=self._tracker.loops.escalation,
            progress_source=self._source(),
            budget=self._budget_decision,
            failure_risk=self._failure.value,
        )

    def task_state(self) -> TaskState:
        """A copy of the structured task record (goal, sub-goals, errors, tool usage, progress)."""
        return TaskState.from_dict(self._task.to_dict())

    def context_string(self) -> str:
        """The task record as a compact block for the agent's prompt."""
        return self._task.to_context_string()

    def estimate(self) -> ProgressEstimate:
        """Velocity, trend and steps to completion at the current progress (against the budget)."""
        steps, tokens = self._budget_spec or (None, None)
        return self._estimator.estimate(self._progress, steps or UNLIMITED_STEPS, tokens or UNLIMITED_TOKENS)

    # -- the state machine ------------------------------------------------------------------------

    def apply(self, event: Event) -> Outcome:
        """Apply one event and return what it did.

        Raises:
            InvalidInputError: the event is not a core event, belongs to another goal, or has a bad
                field (``.field`` names it); the session is unchanged.
            ConfigurationError: the session's ``llm_verify_fn`` is async (use a sync one here).
        """
        etype = check_event(event, self.goal_id)
        digest = EventIdWindow.digest(event.event_id) if event.event_id and self._seen.size else None
        if digest is not None and digest in self._seen:
            return self._outcome(event, etype, (), None, applied=False)
        now = self._last_ts if event.ts is None else float(event.ts)
        out: list[Pending] = []
        verification = None
        if isinstance(event, StepEvent):
            step = Step.of(event.tool, event.args, event.description, event.output, event.error,
                           event.exit_code, event.tokens, event.thought, event.ts)  # fmt: skip
            verification = self._on_step(step, now, out)
        elif isinstance(event, MessageEvent):
            # Message.of tests ``role in`` a set, which raises TypeError for an unhashable role.
            role = check_str("role", event.role)
            self._on_stream(Message.of(role, event.content, event.ts), now, out)
        elif isinstance(event, ContextCompressedEvent):
            self._on_stream(event.to_marker(), now, out)
        elif isinstance(event, MetricsEvent):
            self._on_metrics(event.values, now, out)
        elif isinstance(event, GoalEvent):
            self._on_goal(event, now, out)
        elif isinstance(event, SubgoalEvent):
            self._on_subgoal(check_subgoal(event), now, out)
        elif isinstance(event, FeedbackEvent):
            self._on_feedback(*check_feedback(event), now, out)
        if self._anchored:
            self._failure.observe(self._drift, self._loop_risk)
        self._version += 1
        self._last_ts = now
        if digest is not None:
            self._seen.add(digest)
        metrics = self.metrics
        suggestions = tuple(self._suggestion(p, metrics) for p in out)
        return self._outcome(event, etype, suggestions, verification, applied=True, metrics=metrics)

    def _outcome(
        self,
        event: Event,
        etype: EventType,
        suggestions: tuple[Suggestion, ...],
        verification: StepVerification | None,
        *,
        applied: bool,
        metrics: SessionMetrics | None = None,
    ) -> Outcome:
        return Outcome(
            self.goal_id, event.event_id, etype, self._version, applied, not applied, metrics or self.metrics,
            self._action, self._routing, suggestions, verification,
        )  # fmt: skip

    def _suggestion(self, pending: Pending, metrics: SessionMetrics) -> Suggestion:
        kind, rule, message, actions, loop_id = pending
        sid = loop_id or stable_hash(f"{self.goal_id}|{self._version}|{rule}")
        if kind is SuggestionKind.REPLAN:
            self._say.replans.append(sid)
        return Suggestion(sid, self.goal_id, kind, message, actions, metrics.alignment(), rule, self._version)

    # -- steps and the stream ---------------------------------------------------------------------

    def _on_step(self, step: Step, now: float, out: list[Pending]) -> StepVerification | None:
        t = self._tracker
        verdict: StepVerification | None = None
        if self._anchored:
            verdict = t.verify(step, now=now)
            self._drift = verdict.drift_score
            self._stall = t._stall  # get_state() would build a whole GoalState for this one number
            action, rule, nudge = verdict.recommended_action, verdict.rule, verdict.nudge
            routing = verdict.process
            self._loop_risk = verdict.loop_risk  # written by verify()
            if not self._external:
                self._set_progress(verdict.progress)
        else:
            event = t.loops.observe(step, now=now)
            action, rule = self._loop_decision()
            nudge = event.message if event is not None else None
            routing = t.router.route(EscalationContext(error_in_last_step=step.failed))
        self._note_loop_risk(now)
        self._action, self._routing = action, routing
        _add(out, self._say.advise(action, rule, t.loops.escalation, nudge))
        self._task.record_tool_use(step.tool, not step.failed, tokens=step.tokens)
        if step.failed:
            text = step.error if step.error is not None else f"exit code {step.exit_code}"
            self._task.record_error(text[:ERROR_TEXT_LIMIT])
        self._estimator.record_step(self._task.total_steps, self._progress - self._step_progress, step.tokens)
        self._step_progress = self._progress
        if self._budget is not None:
            state = self._budget.update(self._progress, step.tokens, now=now)
            self._budget_decision = state.decision
            _add(out, self._say.budget(state))
        _add(out, self._say.routed(routing, t.router.last_escalation_reasons))
        return verdict

    def _on_stream(self, item: Message | ContextCompressed, now: float, out: list[Pending]) -> None:
        event = self._tracker.observe(item, now=now)
        self._note_loop_risk(now)
        if event is not None:
            self._action, rule = self._loop_decision()
            _add(out, self._say.advise(self._action, rule, self._tracker.loops.escalation, event.message))

    def _loop_decision(self) -> tuple[Action, str]:
        """The action the loop ladder alone calls for (drift and alignment neutral)."""
        esc = self._tracker.loops.escalation
        return decide(
            self._tracker.profile, escalation=esc, loop_detected=esc is not Escalation.NONE, drift=0.0,
            stall=0, alignment=1.0, low_alignment_turns=0, replanned_off_track=False,
        )  # fmt: skip

    def _note_loop_risk(self, now: float) -> None:
        risk = self._tracker.loops.loop_risk
        # verify() writes the metric itself; other paths (messages, steps before a goal) write it here,
        # so the weight engine's audit trail sees every change. The engine holds the last value seen.
        if risk != self._loop_risk:
            reason = f"loop risk {risk:.3f}"
            self._tracker.weights.set_goal_metric("loop_risk", risk, reason=reason, source="goal_session",
                                                  timestamp=now)  # fmt: skip
            self._loop_risk = risk

    # -- goal, metrics, sub-goals, feedback -------------------------------------------------------

    def _on_goal(self, event: GoalEvent, now: float, out: list[Pending]) -> None:
        change: GoalChange = check_goal(event)
        spec = GoalSpec.parse(event.goal_state, event.directions) if change.targets_given else None
        old = self._tracker
        if change.budget is not None and change.budget != self._budget_spec:
            steps, tokens = change.budget
            self._budget_spec = None if change.budget == (None, None) else change.budget
            self._budget = None if self._budget_spec is None else AdaptiveBudget(
                steps or UNLIMITED_STEPS, tokens or UNLIMITED_TOKENS
            )  # fmt: skip
            self._budget_decision = self._say.budget_alert = None
        if change.description is not None and (not self._anchored or change.description != old.original_goal):
            # Re-anchor: a new goal text means fresh drift, alignment and progress; what the agent
            # repeats (loops), how it was routed and the audit trail of the metrics carry over.
            plan = change.plan if change.plan is not None else list(old.plan)
            tokens = self._budget_spec[1] if self._budget_spec and self._budget_spec[1] else None
            self._tracker = GoalTracker(
                change.description, plan=plan, profile=old.profile, llm_verify_fn=old.llm_verify_fn,
                embedder=self._embedder, weights=old.weights, token_budget=tokens or 50_000,
                drift_history=old.drift_engine.max_history, verification_history=old.verification_history,
            )  # fmt: skip
            self._tracker.loops, self._tracker.router = old.loops, old.router
            self._external = False
            self._drift, self._stall = 0.0, 0
            self._say.reset_advice()
            self._failure = FailureRisk.for_goal(change.description, plan)
        elif change.plan is not None and change.plan != list(old.plan):
            old.set_plan(change.plan)
            self._failure.complexity = FailureRisk.for_goal(old.original_goal, change.plan).complexity
        if change.description is not None or change.plan is not None:
            self._anchored = True
            self._task.current_goal = self._tracker.original_goal
        if spec is not None:
            self._loop.set_goal_state(spec)
            targets = _targets(self._loop)
            if targets != self._readings.targets:
                self._readings.retarget(targets, self._loop.last_analysis)
        self._refresh_progress(now, "goal changed", out)
        self._nudge(now, out)

    def _on_metrics(self, values: Any, now: float, out: list[Pending]) -> None:
        self._loop.record_metrics(values, now=now)  # validates first; the loop's goal_reached is ours
        self._readings.record(values)
        self._refresh_progress(now, "metrics", out)
        self._nudge(now, out)

    def _on_subgoal(self, change: SubgoalChange, now: float, out: list[Pending]) -> None:
        node_id = self._subgoals.get(change.key)
        if node_id is None and len(self._subgoals) >= MAX_SUBGOALS:
            raise InvalidInputError(f"a goal tracks at most {MAX_SUBGOALS} sub-goals", field="id")
        if self._tree is None:
            self._tree = GoalTree(self._tracker.original_goal)
        tree = self._tree
        if node_id is None:
            node_id = self._subgoals[change.key] = tree.add_subgoal(change.label, now=now)
        status = change.status
        if status is SubGoalStatus.IN_PROGRESS:
            tree.activate_node(node_id, now=now)
        elif status is SubGoalStatus.DONE:
            tree.complete_node(node_id, now=now)
        elif status is SubGoalStatus.FAILED:
            tree.fail_node(node_id, now=now)
        elif status is SubGoalStatus.SKIPPED:
            tree.skip_node(node_id, now=now)
        node = tree.get_node(node_id)
        assert node is not None
        if status not in (SubGoalStatus.PENDING, SubGoalStatus.BLOCKED) or node.is_terminal:
            status = _WIRE_STATUS[node.status]
        self._task.set_sub_goal(node.description, status)
        self._refresh_progress(now, f"sub-goal {change.key!r} {status.value}", out)

    def _on_feedback(self, sid: str, outcome: FeedbackOutcome, now: float, out: list[Pending]) -> None:
        self._loop.record_feedback(sid, outcome)
        if sid in self._say.replans and outcome in (FeedbackOutcome.ACCEPTED, FeedbackOutcome.HELPED):
            # The agent replanned: the loop windows start afresh (the tracker still remembers what
            # looped), and a problem that persists after the replan is announced again.
            self._say.replans.remove(sid)
            self._tracker.reset_loop_detection()
            self._note_loop_risk(now)
            self._say.reset_advice()
        self._nudge(now, out)

    # -- progress and nudges ----------------------------------------------------------------------

    def _source(self) -> ProgressSource:
        if self._readings.targets:
            return ProgressSource.METRICS
        if self._subgoals:
            return ProgressSource.SUBGOALS
        return ProgressSource.STEPS

    def _set_progress(self, value: float) -> None:
        if value != self._progress:
            self._progress = value
            self._task.update_from_metrics(value)

    def _refresh_progress(self, now: float, reason: str, out: list[Pending]) -> None:
        """Recompute progress from its best source; announce the goal reached on the rising edge."""
        source = self._source()
        if source is ProgressSource.STEPS:
            if not self._external:
                self._set_progress(self._tracker.get_state().progress)
            return
        if source is ProgressSource.METRICS:
            value = self._readings.progress()
        else:
            tree = self._tree
            assert tree is not None
            kids = tree.root.children
            # The mean over the sub-goals, not the root's progress: the tree completes the root once
            # all its sub-goals are done and a sub-goal added later would not reopen it.
            value = sum(n.progress for c in kids if (n := tree.get_node(c)) is not None) / len(kids)
        if value != self._progress or not self._external:
            self._tracker.set_progress(value, reason=f"{source.value}: {reason}", now=now)
            self._external = True
        self._set_progress(value)
        _add(out, self._say.progress(value, source))

    def _nudge(self, now: float, out: list[Pending]) -> None:
        """Ask the feedback loop for a nudge when its state changed; emit it if it moves something new."""
        loop = self._loop
        if loop.version == self._nudged_version:
            return
        self._nudged_version = loop.version
        if not self._readings.targets:
            return
        for suggestion in loop.suggest(None, [{}], now=now):
            _add(out, self._say.nudge(suggestion))

    # -- persistence ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole session as a JSON-able dict (no callables: pass them again to :meth:`restore`)."""
        task = self._task.to_dict()
        del task["current_goal"], task["progress_percentage"]  # derived: goal text and progress
        return {
            **header(self.KIND, self.SCHEMA),
            "goal_id": self.goal_id,
            **{name: getattr(self, f"_{name}") for name, _ in _SCALARS},
            "action": self._action,
            "routing": self._routing.value,
            "budget_decision": None if self._budget_decision is None else self._budget_decision.value,
            "tracker": self._tracker.snapshot(),
            "loop": self._loop.snapshot(),
            "tree": None if self._tree is None else self._tree.snapshot(),
            "subgoals": dict(self._subgoals),
            "budget": None if self._budget is None else self._budget.snapshot(),
            "budget_spec": None if self._budget_spec is None else list(self._budget_spec),
            "estimator": self._estimator.snapshot(),
            "task": task,
            "readings": self._readings.to_dict(),
            "seen": [self._seen.size, self._seen.to_str()],
            "announcer": self._say.to_dict(),
            "failure_risk": self._failure.to_dict(),
        }

    @classmethod
    def restore(
        cls,
        data: object,
        *,
        strategy: GoalFeedbackStrategy | None = None,
        embedder: Embedder[Any] | None = None,
        llm_verify_fn: LLMVerifyFn | None = None,
    ) -> Self:
        """Rebuild a session from :meth:`snapshot` (after a JSON round trip is fine).

        Continuing the restored session gives exactly the outcomes, suggestion ids and final state of
        a session that never stopped.

        Args:
            data: the snapshot.
            strategy: a custom feedback strategy to use (built-in ones are rebuilt from the snapshot).
            embedder: the embedder the session used, if any.
            llm_verify_fn: the LLM re-scorer, if any.

        Raises:
            SnapshotError: wrong kind or schema, or a missing or malformed field.
        """
        k = cls.KIND
        d = check_header(data, k, (cls.SCHEMA,))
        self = cls.__new__(cls)
        try:
            self.goal_id = field(d, "goal_id", str, k)
            self._embedder = embedder
            for name, types in _SCALARS:
                setattr(self, f"_{name}", field(d, name, types, k))
            action = field(d, "action", str, k)
            if action not in ("continue", "adjust", "replan", "abort"):
                raise SnapshotError(f"{k} snapshot has an unknown action {action!r}")
            self._action = action  # type: ignore[assignment]
            self._routing = ProcessType(field(d, "routing", str, k))
            decision: str | None = field(d, "budget_decision", (str, type(None)), k)
            self._budget_decision = None if decision is None else BudgetDecision(decision)
            tracker: dict[str, Any] = field(d, "tracker", dict, k)
            # The verdict view is as long as the audit trail the session was built with (a malformed
            # value fails the tracker's restore with a SnapshotError).
            weights = tracker.get("weights")
            audit = weights.get("max_history", AUDIT_HISTORY) if isinstance(weights, dict) else AUDIT_HISTORY
            self._tracker = GoalTracker.restore(tracker, llm_verify_fn=llm_verify_fn, embedder=embedder,
                                                verification_history=audit)  # fmt: skip
            self._loop = GoalDrivenFeedbackLoop.restore(field(d, "loop", dict, k), strategy=strategy)
            tree: dict[str, Any] | None = field(d, "tree", (dict, type(None)), k)
            self._tree = None if tree is None else GoalTree.restore(tree)
            self._subgoals = {str(a): str(b) for a, b in field(d, "subgoals", dict, k).items()}
            budget: dict[str, Any] | None = field(d, "budget", (dict, type(None)), k)
            self._budget = None if budget is None else AdaptiveBudget.restore(budget)
            spec: list[Any] | None = field(d, "budget_spec", (list, type(None)), k)
            self._budget_spec = None if spec is None else _budget_spec(spec)
            self._estimator = ProgressEstimator.restore(field(d, "estimator", dict, k))
            size, ids = field(d, "seen", list, k)
            self._seen = EventIdWindow.from_str(config_int("seen", size, 0), ids)
            self._readings = MetricReadings.from_dict(_targets(self._loop), field(d, "readings", dict, k))
            self._say = Announcer.from_dict(field(d, "announcer", dict, k))
            # Snapshots written before failure_risk existed: the goal's prior, the evidence from now on.
            failure = d.get("failure_risk")
            if failure is None:
                goal = self._tracker.original_goal if self._anchored else ""
                self._failure = FailureRisk.for_goal(goal, self._tracker.plan) if goal else FailureRisk()
            else:
                self._failure = FailureRisk.from_dict(field(d, "failure_risk", dict, k))
            task = dict(field(d, "task", dict, k))
            task["current_goal"] = self._tracker.original_goal if self._anchored else ""
            task["progress_percentage"] = 100.0 * self._progress
            self._task = TaskState.from_dict(task)
        except SnapshotError:
            raise
        except (InvalidInputError, ConfigurationError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{k} snapshot is malformed: {exc}") from exc
        if not 0.0 <= self._progress <= 1.0 or self._version < 0:
            raise SnapshotError(f"{k} snapshot has progress or version out of range")
        return self


#: The session's scalar fields as ``(snapshot key, type)``; the attribute is ``_<key>``.
_SCALARS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("version", int), ("last_ts", float), ("anchored", bool), ("progress", float),
    ("step_progress", float), ("external", bool), ("drift", float), ("loop_risk", float),
    ("stall", int), ("nudged_version", int),
)  # fmt: skip


def _targets(loop: GoalDrivenFeedbackLoop) -> dict[str, GoalTarget]:
    return {t.metric: t for t in loop.goal_spec.targets}


def _add(out: list[Pending], pending: Pending | None) -> None:
    if pending is not None:
        out.append(pending)


def _budget_spec(spec: list[Any]) -> tuple[int | None, int | None]:
    steps, tokens = spec
    for value in (steps, tokens):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise SnapshotError(f"GoalSession snapshot has a malformed budget_spec {spec!r}")
    return steps, tokens
