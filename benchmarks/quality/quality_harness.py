"""The machinery of the quality benchmark: statistics, runs, injections and the goalkeeper detector.

Everything here is deterministic: randomness comes from a ``random.Random(seed)`` passed in, and
the tracker itself never reads a clock. ``run.py`` wires it to the tau-bench data and prints the
table; ``tests/quality/`` checks the pieces on tiny inputs.

Definitions (``docs/quality.md`` explains them for readers):

* A run's *events* are the events after its ``goal`` event (messages and tool steps); a *prefix*
  of p% is its first ``ceil(p * n)`` events.
* A detector is anything with ``feed(event) -> bool`` (fired on this event). For goalkeeper, the
  :class:`Goalkeeper` wrapper feeds a :class:`~goalkeeper.GoalSession` and keeps every outcome;
  "fired" means a loop event (nudge or higher) on that step.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from goalkeeper.core.decision import DRIFT_WARNING
from goalkeeper.core.failure_risk import count_requests, goal_complexity
from goalkeeper.core.model import Event, GoalEvent, MessageEvent, StepEvent
from goalkeeper.core.session import GoalSession, Outcome
from goalkeeper.importers._base import Trajectory

__all__ = [
    "AFFIRMATIVE_WORDS",
    "APOLOGY_WORDS",
    "CONDITION_WORDS",
    "CORRECTION_WORDS",
    "POLL_STATES",
    "READ_VERBS",
    "Goalkeeper",
    "Injected",
    "Run",
    "activity_signals",
    "auroc",
    "conversation_signals",
    "drift_detected",
    "failure_features",
    "first",
    "fused_v1",
    "inject_drift",
    "inject_loop",
    "inject_polling",
    "median",
    "performed_fraction",
    "prefix_length",
    "ranks",
    "relabel",
    "run_detector",
    "run_goalkeeper",
    "spearman",
    "steps_until",
    "volatile_variant",
    "within_group_auroc",
]

Profile = Literal["goalkeeper", "reference"]

# --- statistics ----------------------------------------------------------------------------------


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks with ties given their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` (True = positive); ties count half.

    Computed as the Mann-Whitney U statistic over average ranks. ``nan`` when one class is empty.
    """
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    pos = sum(1 for label in labels if label)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return math.nan
    r = ranks(scores)
    rank_sum = sum(rk for rk, label in zip(r, labels, strict=True) if label)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def within_group_auroc(scores: Sequence[float], labels: Sequence[bool], groups: Sequence[Any]) -> float:
    """AUROC over the (positive, negative) pairs that share a group only; ties count half.

    With groups = tasks this asks "among runs of the *same* task, does the score rank the failed ones
    higher?", which a property of the task (its difficulty) cannot answer. ``nan`` without such pairs.
    """
    if not len(scores) == len(labels) == len(groups):
        raise ValueError("scores, labels and groups differ in length")
    by: dict[Any, list[tuple[float, bool]]] = {}
    for s, y, g in zip(scores, labels, groups, strict=True):
        by.setdefault(g, []).append((s, y))
    wins = pairs = 0.0
    for members in by.values():
        for a, ya in members:
            for b, yb in members:
                if ya and not yb:
                    pairs += 1
                    wins += 1.0 if a > b else 0.5 if a == b else 0.0
    return wins / pairs if pairs else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); ``nan`` if either side is constant."""
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def median(values: Iterable[float]) -> float:
    """Median, ``nan`` for no values (``inf`` entries count as 'never')."""
    data = sorted(values)
    return statistics.median(data) if data else math.nan


# --- runs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One trajectory ready for the benchmark: its goal event and the events after it."""

    id: str
    goal: GoalEvent
    events: tuple[Event, ...]
    reward: float | None = None
    task_id: Any = None
    expected_actions: tuple[Mapping[str, Any], ...] = ()
    user_id: str | None = None

    @classmethod
    def of(cls, trajectory: Trajectory) -> Run:
        """Split an imported trajectory into its goal event and the rest."""
        goal, *rest = trajectory.events
        if not isinstance(goal, GoalEvent):
            raise ValueError(f"{trajectory.id}: the first event is not a goal")
        meta = trajectory.metadata
        return cls(
            trajectory.id,
            goal,
            tuple(rest),
            meta.get("reward"),
            meta.get("task_id"),
            tuple(meta.get("expected_actions", ())),
            meta.get("user_id"),
        )

    @property
    def steps(self) -> list[int]:
        """Indices (into :attr:`events`) of the tool steps."""
        return [i for i, e in enumerate(self.events) if isinstance(e, StepEvent)]

    @property
    def failed(self) -> bool:
        """The run did not earn its reward (reward < 1)."""
        return (self.reward if self.reward is not None else 1.0) < 1.0

    @property
    def user(self) -> str:
        """The user the task is about (tau-bench ``user_id``; else the task id, else the run id)."""
        if self.user_id:
            return self.user_id
        return str(self.task_id) if self.task_id is not None else self.id


def relabel(events: Iterable[Event], goal_id: str, tag: str) -> list[Event]:
    """Copies of ``events`` for goal ``goal_id`` with fresh, unique event ids."""
    return [replace(e, goal_id=goal_id, event_id=f"{goal_id}:{tag}{i}") for i, e in enumerate(events)]


# --- goalkeeper as a detector ----------------------------------------------------------------------


@dataclass
class Goalkeeper:
    """A :class:`GoalSession` that remembers every outcome; ``feed`` is True on a loop event."""

    run_id: str
    goal: GoalEvent
    profile: Profile = "goalkeeper"
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.session = GoalSession(self.run_id, profile=self.profile)
        self.session.apply(replace(self.goal, goal_id=self.run_id))

    def feed(self, event: Event) -> bool:
        """Apply ``event``; True when the tracker reported a loop event on it."""
        outcome = self.session.apply(event)
        self.outcomes.append(outcome)
        v = outcome.verification
        return v is not None and v.loop_event is not None

    @staticmethod
    def alarm(outcome: Outcome) -> bool:
        """The outcome tells the agent to replan or stop."""
        return outcome.recommended_action in ("replan", "abort")


def run_detector(factory: Callable[[], Any], events: Sequence[Event]) -> list[bool]:
    """Feed ``events`` to a fresh detector; per event, whether it fired."""
    detector = factory()
    return [bool(detector.feed(e)) for e in events]


def run_goalkeeper(
    run: Run, events: Sequence[Event] | None = None, profile: Profile = "goalkeeper"
) -> Goalkeeper:
    """Feed a run's events (or ``events``) through a fresh goalkeeper session."""
    gk = Goalkeeper(run.id, run.goal, profile)
    for event in run.events if events is None else events:
        gk.feed(event)
    return gk


# --- injections ------------------------------------------------------------------------------------

LoopKind = Literal["exact", "volatile", "alternation", "narrated"]
#: States a polled job or record moves through (the "legitimate repetition" injection).
POLL_STATES = ("queued", "processing", "confirmed", "ticketed", "completed", "archived")


@dataclass(frozen=True)
class Injected:
    """A run with injected steps: the events and the half-open index range of the injected block."""

    events: tuple[Event, ...]
    start: int
    end: int


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def volatile_variant(step: StepEvent, rng: random.Random, n: int) -> StepEvent:
    """The same call with volatile details changed, as a retrying agent or runtime produces them:
    a fresh request id in the arguments, a fresh request id and timestamp in the result, and the
    agent's thought reworded with the attempt number (OpenHands#15087: varying thought text)."""
    uuid = f"{_hex(rng, 8)}-{_hex(rng, 4)}-4{_hex(rng, 3)}-a{_hex(rng, 3)}-{_hex(rng, 12)}"
    stamp = f"2024-05-15T15:{(7 * n) % 60:02d}:{rng.randrange(60):02d}Z"
    args = {**step.args, "request_id": uuid}
    output = (
        f"{step.output}\n[request {uuid} served at {stamp}]"
        if step.output
        else f"[request {uuid} at {stamp}]"
    )
    error = None if step.error is None else f"{step.error} (request {uuid} at {stamp})"
    thought = f"Calling {step.tool} for the request (attempt {n + 1})."
    return replace(step, args=args, output=output if error is None else error, error=error, thought=thought)


def inject_loop(run: Run, kind: LoopKind, rng: random.Random, occurrences: int = 6) -> Injected | None:
    """Make a real step of ``run`` loop: it occurs ``occurrences`` times in a row.

    ``exact``: the step is followed by identical copies. ``volatile``: the step and its copies each
    carry a fresh request id and timestamp (:func:`volatile_variant`), as every retry of a real call
    would. ``narrated``: identical copies, each preceded by a short assistant message ("Let me try
    that again."), as chat agents narrate their retries. ``alternation``: two real steps A, B that
    follow each other directly (no message between) and differ, continued as A B A B ... until
    ``occurrences`` A/B steps (counting the originals).
    Returns ``None`` when the run has no suitable step. The injected block is the added steps; the
    original step(s) stay where they were (a ``volatile`` original is replaced by its variant).
    """
    steps = run.steps
    events = list(run.events)
    if kind == "alternation":
        pairs = [(a, a + 1) for a in steps if a + 1 in steps and _call(events[a]) != _call(events[a + 1])]
        if not pairs:
            return None
        a, b = rng.choice(pairs)
        extra = [events[a] if k % 2 == 0 else events[b] for k in range(occurrences - 2)]
        cut = b + 1
    else:
        if not steps:
            return None
        a = rng.choice(steps)
        original = events[a]
        assert isinstance(original, StepEvent)
        if kind == "exact":
            extra = [original] * (occurrences - 1)
        elif kind == "narrated":
            extra = []
            for n in range(1, occurrences):
                say = f"That did not work as expected; let me try {original.tool} again (attempt {n + 1})."
                extra += [MessageEvent(goal_id=run.id, role="assistant", content=say), original]
        else:
            events[a] = volatile_variant(original, rng, 0)
            extra = [volatile_variant(original, rng, n) for n in range(1, occurrences)]
        cut = a + 1
    block = relabel(extra, run.id, "loop")
    return Injected((*events[:cut], *block, *events[cut:]), cut, cut + len(block))


def inject_polling(run: Run, rng: random.Random, occurrences: int = 5) -> Injected | None:
    """Legitimate repetition: a real step repeated ``occurrences`` times in a row (counting the
    original) whose result changes every time, as when an agent polls a job or re-reads a record it
    is changing. The result gains a status line that moves through :data:`POLL_STATES`. A detector
    that flags this is raising a false alarm (OpenHands#5355, Gemini#5873). ``None`` without steps."""
    steps = [i for i in run.steps if getattr(run.events[i], "error", None) is None]
    if not steps:
        return None
    events = list(run.events)
    a = rng.choice(steps)
    original = events[a]
    assert isinstance(original, StepEvent)

    def polled(n: int) -> StepEvent:
        return replace(original, output=f"{original.output}\nstatus: {POLL_STATES[n % len(POLL_STATES)]}")

    events[a] = polled(0)
    block = relabel([polled(n) for n in range(1, occurrences)], run.id, "poll")
    cut = a + 1
    return Injected((*events[:cut], *block, *events[cut:]), cut, cut + len(block))


def steps_until(events: Sequence[Event], start: int, index: int) -> int:
    """Tool steps in ``events[start : start + index + 1]`` (the loop steps seen up to a detection)."""
    return sum(1 for e in events[start : start + index + 1] if isinstance(e, StepEvent))


def _call(event: Event) -> str:
    assert isinstance(event, StepEvent)
    return event.tool + json.dumps(event.args, sort_keys=True, default=str)


def inject_drift(run: Run, donor: Run, rng: random.Random, length: int = 3) -> Injected | None:
    """Splice ``length`` consecutive tool steps of ``donor`` (another task) into ``run`` before a
    random one of its steps (never before the first, so the run has started). ``None`` when the
    run has fewer than 2 steps or the donor fewer than ``length``."""
    steps, donor_steps = run.steps, donor.steps
    if len(steps) < 2 or len(donor_steps) < length:
        return None
    at = rng.choice(steps[1:])
    begin = rng.randrange(len(donor_steps) - length + 1)
    block = relabel([donor.events[i] for i in donor_steps[begin : begin + length]], run.id, "drift")
    events = (*run.events[:at], *block, *run.events[at:])
    return Injected(tuple(events), at, at + length)


# --- ground-truth progress -------------------------------------------------------------------------


def performed_fraction(expected: Sequence[Mapping[str, Any]], events: Sequence[Event]) -> list[float]:
    """Per event, the fraction of ``expected`` actions (``{"name", "kwargs"}``) performed so far.

    An expected action is performed by a tool step with the same name and the same arguments
    (compared as sorted-key JSON); each step performs at most one expected action.
    """
    if not expected:
        return [math.nan] * len(events)
    todo = [a["name"] + json.dumps(a["kwargs"], sort_keys=True, default=str) for a in expected]
    done, out = 0, []
    for event in events:
        if isinstance(event, StepEvent):
            key = _call(event)
            if key in todo:
                todo.remove(key)
                done += 1
        out.append(done / len(expected))
    return out


# --- failure-prediction features -------------------------------------------------------------------


def prefix_length(n: int, fraction: float) -> int:
    """Events in the ``fraction`` prefix of ``n`` events (at least 1 when there are any)."""
    return min(n, max(1 if n else 0, math.ceil(fraction * n)))


def failure_features(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """The tracker's signals after a prefix, each oriented so that higher means 'more likely failing'.

    ``risk`` is the session's own ``failure_risk`` metric after the prefix's last event (the core's
    score, :mod:`goalkeeper.core.failure_risk`); ``fused_v1`` is the harness's former fixed fusion,
    kept for comparison."""
    if not outcomes:
        return {
            "loop_risk": 0.0, "drift": 0.0, "stall": 0.0, "no_progress": 1.0, "alarm": 0.0,
            "risk": 0.0, "fused_v1": 0.0,
        }  # fmt: skip
    last = outcomes[-1].metrics
    peak_loop = max(o.metrics.loop_risk for o in outcomes)
    peak_drift = max(o.metrics.drift_score for o in outcomes)
    alarms = sum(1 for o in outcomes if o.recommended_action != "continue")
    return {
        "loop_risk": peak_loop,
        "drift": peak_drift,
        "stall": float(last.stall_turns),
        "no_progress": 1.0 - last.current_progress,
        "alarm": alarms / len(outcomes),
        "risk": last.failure_risk,
        "fused_v1": fused_v1(outcomes),
    }


#: Words with which a user corrects or pushes back (generic English, chosen before looking at runs).
CORRECTION_WORDS = frozenset(
    {
        "no",
        "not",
        "actually",
        "instead",
        "wrong",
        "again",
        "still",
        "misunderstanding",
        "mistake",
        "incorrect",
    }
)
#: Words with which an agent apologises or retracts (generic English, chosen before looking at runs).
APOLOGY_WORDS = frozenset({"sorry", "apologize", "apologise", "apologies", "mistake", "confusion"})
_WORDS = re.compile(r"[a-z0-9']+")


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 0.0


def conversation_signals(goal: str, events: Sequence[Event]) -> dict[str, float]:
    """Candidate run-time failure signals a tracker could compute in any chat-agent domain, over
    ``events`` (a prefix), each oriented so that higher should mean 'more likely failing':

    * ``goal_complexity``: the core's prior from the goal text (:func:`goal_complexity`);
    * ``user_repeat``: the highest token Jaccard of a user message with an earlier one (the user
      having to repeat or rephrase a request);
    * ``user_correction``: share of user messages containing a :data:`CORRECTION_WORDS` word;
    * ``agent_apology``: share of assistant messages containing an :data:`APOLOGY_WORDS` word;
    * ``tool_errors``: share of tool steps that failed; ``error_streak``: the longest run of
      consecutive failed steps.
    """
    users: list[frozenset[str]] = []
    repeat = corrections = apologies = assistant = steps = errors = streak = longest = 0.0
    for e in events:
        if isinstance(e, MessageEvent) and e.role in ("user", "assistant"):
            words = frozenset(_WORDS.findall(e.content.lower()))
            if e.role == "user":
                repeat = max([repeat, *(_jaccard(words, u) for u in users)])
                corrections += bool(words & CORRECTION_WORDS)
                users.append(words)
            else:
                assistant += 1
                apologies += bool(words & APOLOGY_WORDS)
        elif isinstance(e, StepEvent):
            steps += 1
            failed = e.error is not None
            errors += failed
            streak = streak + 1 if failed else 0
            longest = max(longest, streak)
    return {
        "goal_complexity": goal_complexity(goal),
        "user_repeat": repeat,
        "user_correction": corrections / max(1, len(users)),
        "agent_apology": apologies / max(1.0, assistant),
        "tool_errors": errors / max(1.0, steps),
        "error_streak": longest,
    }


#: Leading verbs of tool names that only read (generic API naming, not this data set's tools): any
#: other tool is counted as a write, i.e. a call that may change state.
READ_VERBS = (
    "get", "list", "search", "find", "fetch", "read", "lookup", "query", "check", "view", "show",
    "describe", "calculate", "think",
)  # fmt: skip
#: Words with which a user agrees to a proposed action (generic English).
AFFIRMATIVE_WORDS = frozenset(
    {"yes", "yeah", "confirm", "confirmed", "proceed", "sure", "ok", "okay", "correct"}
)
#: Words that make a request conditional (generic English).
CONDITION_WORDS = frozenset({"if", "unless", "otherwise"})
_STOP = frozenset(
    "the a an and or to of in on for with you your is are be it that this at by from as if not no do "
    "don't will would want have has but so".split()
)
_UNSURE = re.compile(r"\b(not sure|don't (remember|know|have)|do not (remember|know|have)|can't|cannot)\b")
_UNABLE = re.compile(r"\b(unable|can't|cannot|unfortunately|not possible|not able)\b")


def _is_read(tool: str) -> bool:
    return tool.lower().startswith(READ_VERBS)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORDS.findall(text.lower()) if len(w) > 3 and w not in _STOP}


def activity_signals(goal: str, events: Sequence[Event]) -> dict[str, float]:
    """More candidate run-time failure signals, from the goal text and the events of a prefix, with
    no knowledge of the domain (each is a count or a share, higher = 'more likely failing' is the
    hypothesis, not a finding):

    * ``events``, ``steps``, ``user_turns``: how much happened (a 50% prefix of a long run is long,
      so these also carry the run's length: see the fixed-cutoff rows);
    * ``steps_per_request``: tool steps per request of the goal (:func:`count_requests`);
    * ``repeated_calls``: steps that repeat an earlier call exactly; ``repeated_tools``: steps that
      reuse an earlier step's tool; ``distinct_tools``;
    * ``writes``: steps whose tool name does not start with a :data:`READ_VERBS` verb;
      ``unconfirmed_writes``: writes not preceded by a user message with an :data:`AFFIRMATIVE_WORDS`
      word since the last assistant message; ``writes_before_read``: writes before the first read;
    * ``agent_questions``, ``agent_cannot``, ``user_unsure``: shares of assistant messages with a
      question mark, of assistant messages saying it cannot do something, of user messages saying
      they do not know or have something;
    * ``talk_only``: share of assistant messages not preceded by a tool step since the previous one;
    * ``goal_words``, ``goal_conditions``: the goal's length and its conditional words
      (:data:`CONDITION_WORDS`);
    * ``goal_unmentioned``: share of the goal's content words the assistant has not said yet;
    * ``entities``: distinct scalar argument values the steps used.
    """
    goal_words = _WORDS.findall(goal.lower())
    goal_content = _content_words(goal)
    said: set[str] = set()
    calls: set[str] = set()
    tools: set[str] = set()
    entities: set[str] = set()
    n_events = steps = users = assistants = questions = cannot = unsure = 0
    repeated_calls = repeated_tools = writes = unconfirmed = before_read = talk_only = 0
    agreed = acted = read_seen = False
    for e in events:
        n_events += 1
        if isinstance(e, MessageEvent) and e.role in ("user", "assistant"):
            text = e.content.lower()
            if e.role == "user":
                users += 1
                unsure += bool(_UNSURE.search(text))
                agreed = bool(set(_WORDS.findall(text)) & AFFIRMATIVE_WORDS)
            else:
                assistants += 1
                questions += "?" in text
                cannot += bool(_UNABLE.search(text))
                talk_only += not acted
                acted = agreed = False
                said |= _content_words(text)
        elif isinstance(e, StepEvent):
            steps += 1
            acted = True
            call = _call(e)
            repeated_calls += call in calls
            repeated_tools += e.tool in tools
            calls.add(call)
            tools.add(e.tool)
            entities.update(str(v) for v in e.args.values() if isinstance(v, (str, int, float)))
            if _is_read(e.tool):
                read_seen = True
            else:
                writes += 1
                unconfirmed += not agreed
                before_read += not read_seen
    return {
        "events": float(n_events),
        "steps": float(steps),
        "user_turns": float(users),
        "steps_per_request": steps / max(1, count_requests(goal)),
        "repeated_calls": float(repeated_calls),
        "repeated_tools": repeated_tools / max(1, steps),
        "distinct_tools": float(len(tools)),
        "writes": float(writes),
        "unconfirmed_writes": float(unconfirmed),
        "writes_before_read": float(before_read),
        "agent_questions": questions / max(1, assistants),
        "agent_cannot": cannot / max(1, assistants),
        "user_unsure": unsure / max(1, users),
        "talk_only": talk_only / max(1, assistants),
        "goal_words": float(len(goal_words)),
        "goal_conditions": float(sum(1 for w in goal_words if w in CONDITION_WORDS)),
        "goal_unmentioned": len(goal_content - said) / max(1, len(goal_content)),
        "entities": float(len(entities)),
    }


def fused_v1(outcomes: Sequence[Outcome]) -> float:
    """The harness's former fused score: the mean over the prefix's steps of
    ``max(loop_risk, drift_score)``, plus the share of steps that ended without progress.

    Fixed weights, not fitted: both terms are in [0, 1] and the tracker's own thresholds give them
    meaning (loop and drift are 'how wrong', stall is 'how unproductive')."""
    steps = [o for o in outcomes if o.verification is not None]
    if not steps:
        return 0.0
    wrong = statistics.fmean(max(o.metrics.loop_risk, o.metrics.drift_score) for o in steps)
    stalled = sum(1 for o in steps if o.verification is not None and o.verification.progress_delta <= 0)
    return wrong + stalled / len(steps)


def first(flags: Sequence[bool], start: int = 0, end: int | None = None) -> int | None:
    """Index of the first True in ``flags[start:end]`` (relative to ``start``), else None."""
    for i, flag in enumerate(flags[start:end]):
        if flag:
            return i
    return None


def drift_detected(outcome: Outcome) -> bool:
    """The drift score reached the tracker's warning threshold (it recommends at least 'adjust')."""
    return outcome.metrics.drift_score >= DRIFT_WARNING
