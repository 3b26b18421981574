"""Detection quality on real agent runs: goalkeeper against two peers, in one table (issue 8).

Usage::

    python benchmarks/quality/run.py                     # the table in docs/quality.md
    python benchmarks/quality/run.py --seed 1 --trials 5 # other injections
    python benchmarks/quality/run.py --json out.json     # every number, machine-readable
    python benchmarks/quality/run.py --data FILE         # another OpenAI-chat / tau-bench file

Data: the 200 tau-bench airline runs of GPT-4o in ``../shared/data/`` (reward 0/1 and each task's
ground-truth actions; MIT). Nothing is hand-labelled: failure labels are the rewards, progress
labels the ground-truth actions, and drift and loop labels come from injections made here with a
seeded generator. Columns: goalkeeper's default profile, its ``reference`` profile (the documented
corteX behaviour), OpenHands' ``StuckDetector`` (openhands-ai 0.9.8, run unmodified over its own
event classes; needs ``pip install "openhands-ai==0.9.8" --no-deps termcolor``, else the column
reads "not installed") and the plain "3 identical calls in the last 5" rule. Rows and definitions
are explained in ``docs/quality.md``. Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_ceiling as C
import quality_harness as H
import quality_peers as P

from goalkeeper.core.model import StepEvent
from goalkeeper.importers import openai_chat

DEFAULT_DATA = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "tau-bench-airline" / "gpt-4o-airline.json"
)
PREFIXES = (0.25, 0.5, 0.75)
#: Occurrences of the looping step (or of A/B steps) in an injected loop: enough for every rule.
LOOP_OCCURRENCES = 6
#: Steps spliced in from another task's run.
DRIFT_BLOCK = 3
#: The fewest loop steps each rule needs before it can fire (exact/volatile, alternation).
MIN_REPEATS = {
    "goalkeeper": {"exact": 3, "volatile": 3, "narrated": 3, "alternation": 4},
    "reference": {"exact": 3, "volatile": 3, "narrated": 3, "alternation": 4},
    "openhands": {"exact": 4, "volatile": 4, "narrated": 4, "alternation": 6},
    "three_in_five": {"exact": 3, "volatile": 3, "narrated": 3, "alternation": 5},
}
COLUMNS = ("goalkeeper", "reference", "openhands", "three_in_five")
PROFILES: tuple[H.Profile, ...] = ("goalkeeper", "reference")
TITLES = {
    "goalkeeper": "goalkeeper",
    "reference": "goalkeeper (reference profile)",
    "openhands": "OpenHands StuckDetector",
    "three_in_five": "3 identical in last 5",
}
FAILURE_SIGNALS = ("loop_risk", "drift", "stall", "no_progress")
#: Every failure signal of the second table: the core's failure_risk, the former fused score, the
#: tracker's signals, and candidate run-time signals computed from the events (quality_harness).
SIGNALS = (
    "risk",
    "fused_v1",
    *FAILURE_SIGNALS,
    *H.conversation_signals("", ()).keys(),
    *H.activity_signals("", ()).keys(),
)
SIGNAL_TITLES = {
    "risk": "failure_risk (core metric)",
    "fused_v1": "former fused score (mean max(loop, drift) + stall share)",
    "loop_risk": "peak loop_risk",
    "drift": "peak drift_score",
    "stall": "stall_turns",
    "no_progress": "1 - current_progress",
    "goal_complexity": "goal complexity (prior alone)",
    "user_repeat": "user repeats a request (max Jaccard)",
    "user_correction": "user correction turns (share)",
    "agent_apology": "agent apologies (share)",
    "tool_errors": "tool error rate",
    "error_streak": "longest run of failed steps",
    "events": "events so far",
    "steps": "tool steps so far",
    "user_turns": "user messages so far",
    "steps_per_request": "tool steps per goal request",
    "repeated_calls": "repeated identical calls",
    "repeated_tools": "steps reusing an earlier tool (share)",
    "distinct_tools": "distinct tools",
    "writes": "writes (tool not named get/list/search...)",
    "unconfirmed_writes": "writes without a user yes before them",
    "writes_before_read": "writes before the first read",
    "agent_questions": "agent messages asking a question (share)",
    "agent_cannot": "agent says it cannot (share)",
    "user_unsure": "user does not know / have (share)",
    "talk_only": "agent turns without a tool step (share)",
    "goal_words": "goal length (words)",
    "goal_conditions": "goal's if/unless/otherwise",
    "goal_unmentioned": "goal words the agent has not said (share)",
    "entities": "distinct argument values",
}
#: The ceiling: an L2 logistic regression over every signal of the second table (CEILING_LAMBDA the
#: default penalty; the others are shown for leave-one-task-out CV so the choice is visible).
CEILING_LAMBDAS = (1.0, 10.0, 100.0)
CEILING_LAMBDA = 10.0
#: Random fold assignments averaged for the grouped 5-fold CV.
CEILING_SPLITS = 10
#: The tracker's own signals and the goal prior: the subset a logistic regression could replace
#: failure_risk's formula with, without the candidate signals.
TRACKER_SIGNALS = ("loop_risk", "drift", "stall", "no_progress", "goal_complexity")
#: Absolute event cutoffs: the score after the first k events of the runs longer than k, so the
#: prefix says nothing about the run's length (a share of a run is long when the run is long).
FIXED_CUTOFFS = (6, 10, 14)


def half(run: H.Run) -> str:
    """``"even"`` or ``"odd"``: the half of the tasks a run belongs to. failure_risk's two constants
    were chosen on the even half; the odd half is held out."""
    if isinstance(run.task_id, int):
        key = run.task_id
    else:  # any other task id: a stable hash of it (not Python's salted hash())
        key = int(hashlib.sha256(str(run.task_id).encode()).hexdigest(), 16)
    return "even" if key % 2 == 0 else "odd"


class Detectors:
    """Factories of the four columns' detectors for one run (None when unavailable)."""

    def __init__(self, openhands: bool) -> None:
        self.openhands = openhands

    def fires(self, column: str, run: H.Run, events: Sequence[Any]) -> list[bool] | None:
        """Per event, whether the column's detector fired (goalkeeper: a loop event)."""
        for profile in PROFILES:
            if column == profile:
                gk = H.Goalkeeper(run.id, run.goal, profile)
                return [gk.feed(e) for e in events]
        if column == "openhands":
            return H.run_detector(P.OpenHandsStuck, events) if self.openhands else None
        return H.run_detector(P.ThreeInFiveRule, events)


def load(path: Path) -> list[H.Run]:
    """The runs of an OpenAI-chat / tau-bench file."""
    return [H.Run.of(t) for t in openai_chat.read(path)]


# --- measures --------------------------------------------------------------------------------------


def _split_aurocs(
    out: dict[str, float], key: str, runs: Sequence[H.Run], scores: Sequence[float], labels: Sequence[bool]
) -> None:
    """AUROC of ``scores`` on each half of the tasks and within tasks, as ``key.even`` etc."""
    for name in ("even", "odd"):
        idx = [i for i, r in enumerate(runs) if half(r) == name]
        out[f"{key}.{name}"] = H.auroc([scores[i] for i in idx], [labels[i] for i in idx])
    out[f"{key}.within"] = H.within_group_auroc(scores, labels, [str(r.task_id) for r in runs])


def prefix_signals(run: H.Run, session: H.Goalkeeper, n: int) -> dict[str, float]:
    """Every failure signal (tracker, conversation, activity) after the first ``n`` events."""
    goal, events = run.goal.description, run.events[:n]
    return (
        H.failure_features(session.outcomes[:n])
        | H.conversation_signals(goal, events)
        | H.activity_signals(goal, events)
    )


def failure_prediction(
    runs: Sequence[H.Run], det: Detectors, signals: dict[float, list[dict[str, float]]] | None = None
) -> dict[str, dict[str, float]]:
    """AUROC for 'the run failed' from each prefix: the core's failure_risk, each tracker signal and
    candidate run-time signal, and for the peers 'fired within the prefix'. At 50% also per half of
    the tasks and within tasks; and after fixed absolute event cutoffs. The goalkeeper profile's
    signals per prefix are stored in ``signals`` (for :func:`ceiling`) when given."""
    out: dict[str, dict[str, float]] = {c: {} for c in COLUMNS}
    labels = [r.failed for r in runs]
    for profile in PROFILES:
        sessions = [H.run_goalkeeper(r, profile=profile) for r in runs]
        for p in PREFIXES:
            feats = [
                prefix_signals(r, g, H.prefix_length(len(r.events), p))
                for r, g in zip(runs, sessions, strict=True)
            ]
            if signals is not None and profile == "goalkeeper":
                signals[p] = feats
            for name in SIGNALS:
                scores = [f[name] for f in feats]
                out[profile][f"{name}@{p}"] = H.auroc(scores, labels)
                if p == 0.5:
                    _split_aurocs(out[profile], f"{name}@{p}", runs, scores, labels)
        for k in FIXED_CUTOFFS:
            idx = [i for i, r in enumerate(runs) if len(r.events) > k]
            scores = [H.failure_features(sessions[i].outcomes[:k])["risk"] for i in idx]
            out[profile][f"risk#{k}"] = H.auroc(scores, [labels[i] for i in idx])
            out[profile][f"runs#{k}"] = float(len(idx))
    # Not a detector: how much the prefix's length alone says (failed runs are longer, and a prefix
    # is a share of the run's own length). Printed under the table as a yardstick.
    for p in PREFIXES:
        lengths = [float(H.prefix_length(len(r.events), p)) for r in runs]
        out["goalkeeper"][f"length@{p}"] = H.auroc(lengths, labels)
    for column in ("openhands", "three_in_five"):
        fired = [det.fires(column, r, r.events) for r in runs]
        if any(f is None for f in fired):
            continue
        for p in PREFIXES:
            scores = [
                float(any((f or [])[: H.prefix_length(len(r.events), p)]))
                for r, f in zip(runs, fired, strict=True)
            ]
            out[column][f"risk@{p}"] = H.auroc(scores, labels)
            if p == 0.5:
                _split_aurocs(out[column], f"risk@{p}", runs, scores, labels)
        for k in FIXED_CUTOFFS:
            idx = [i for i, r in enumerate(runs) if len(r.events) > k]
            scores = [float(any((fired[i] or [])[:k])) for i in idx]
            out[column][f"risk#{k}"] = H.auroc(scores, [labels[i] for i in idx])
    return out


def ceiling(runs: Sequence[H.Run], signals: dict[float, list[dict[str, float]]]) -> dict[str, float]:
    """The best we found: a logistic regression over every signal (quality_ceiling), scored only on
    tasks it was not fitted on, per prefix; plus the optimistic in-sample fit, the tracker-only
    subset, and the bound from the other runs of the same task (not a tracker signal)."""
    labels = [r.failed for r in runs]
    tasks = [str(r.task_id) for r in runs]
    even = [half(r) == "even" for r in runs]
    out: dict[str, float] = {}
    if len(set(tasks)) < 2 or len(set(labels)) < 2:
        return out
    for p in PREFIXES:
        x = C.matrix(signals[p], SIGNALS)
        for lam in CEILING_LAMBDAS:
            out[f"loto.{lam:g}@{p}"] = C.cv_auroc(x, labels, tasks, lam, None)
        scores = C.grouped_cv_scores(x, labels, tasks, CEILING_LAMBDA)
        out[f"loto.within@{p}"] = H.within_group_auroc(scores, labels, tasks)
        if len(set(tasks)) >= 5:
            out[f"cv5@{p}"] = C.cv_auroc(x, labels, tasks, CEILING_LAMBDA, 5, CEILING_SPLITS)
        for train, test in (("even", "odd"), ("odd", "even")):
            fit_idx = [i for i, e in enumerate(even) if e == (train == "even")]
            test_idx = [i for i, e in enumerate(even) if e != (train == "even")]
            if len({labels[i] for i in fit_idx}) == 2:
                model = C.fit_logistic(x[fit_idx], [labels[i] for i in fit_idx], CEILING_LAMBDA)
                out[f"{train}->{test}@{p}"] = H.auroc(
                    model.score(x[test_idx]).tolist(), [labels[i] for i in test_idx]
                )
        model = C.fit_logistic(x, labels, CEILING_LAMBDA)
        out[f"in_sample@{p}"] = H.auroc(model.score(x).tolist(), labels)
        out[f"tracker.loto@{p}"] = C.cv_auroc(
            C.matrix(signals[p], TRACKER_SIGNALS), labels, tasks, CEILING_LAMBDA, None
        )
    rate = C.other_trials_rate(labels, tasks)
    known = [i for i, v in enumerate(rate) if not math.isnan(v)]
    out["other_trials"] = H.auroc([rate[i] for i in known], [labels[i] for i in known])
    out["signals"] = float(len(SIGNALS))
    return out


def progress_correlation(runs: Sequence[H.Run]) -> dict[str, dict[str, float]]:
    """Spearman between estimated progress and the fraction of ground-truth actions done, pooled
    over every step of every run that has ground-truth actions."""
    out: dict[str, dict[str, float]] = {}
    for profile in PROFILES:
        est: list[float] = []
        truth: list[float] = []
        per_run: list[float] = []
        for r in runs:
            if not r.expected_actions:
                continue
            gk = H.run_goalkeeper(r, profile=profile)
            done = H.performed_fraction(r.expected_actions, r.events)
            pairs = [
                (o.metrics.current_progress, d)
                for e, o, d in zip(r.events, gk.outcomes, done, strict=True)
                if isinstance(e, StepEvent)
            ]
            est.extend(p for p, _ in pairs)
            truth.extend(d for _, d in pairs)
            rho = H.spearman([p for p, _ in pairs], [d for _, d in pairs])
            if not math.isnan(rho):  # constant on one side (no action done, or no progress): no ranking
                per_run.append(rho)
        out[profile] = {
            "spearman": H.spearman(est, truth),
            "per_run": statistics.fmean(per_run) if per_run else math.nan,
            "runs_ranked": float(len(per_run)),
            "points": float(len(est)),
        }
    return out


def drift_injection(runs: Sequence[H.Run], seed: int, trials: int) -> dict[str, dict[str, float]]:
    """Splice 3 steps of another user's run into each run; score every step by drift_score."""
    out: dict[str, dict[str, float]] = {}
    for profile in PROFILES:
        rng = random.Random(seed)
        scores: list[float] = []
        labels: list[bool] = []
        delays: list[float] = []
        flagged_original = 0
        originals = 0
        for _ in range(trials):
            for r in runs:
                donors = [d for d in runs if d.user != r.user and len(d.steps) >= DRIFT_BLOCK]
                inj = H.inject_drift(r, rng.choice(donors), rng, DRIFT_BLOCK) if donors else None
                if inj is None:
                    continue
                gk = H.run_goalkeeper(r, inj.events, profile)
                hit: float = math.inf
                n_in_block = 0
                for i, (e, o) in enumerate(zip(inj.events, gk.outcomes, strict=True)):
                    if not isinstance(e, StepEvent):
                        continue
                    injected = inj.start <= i < inj.end
                    scores.append(o.metrics.drift_score)
                    labels.append(injected)
                    if injected:
                        n_in_block += 1
                        if hit == math.inf and H.drift_detected(o):
                            hit = n_in_block
                    else:
                        originals += 1
                        flagged_original += H.drift_detected(o)
                delays.append(hit)
        out[profile] = {
            "auroc": H.auroc(scores, labels),
            "median_steps": H.median(delays),
            "recall": sum(1 for d in delays if d != math.inf) / len(delays) if delays else math.nan,
            "false_flag_rate": flagged_original / max(1, originals),
            "runs": float(len(delays)),
        }
    return out


def loop_injection(
    runs: Sequence[H.Run], det: Detectors, seed: int, trials: int
) -> dict[str, dict[str, float]]:
    """Inject exact, volatile and A/B loops into real runs; recall and loop steps until detection."""
    out: dict[str, dict[str, float]] = {c: {} for c in COLUMNS}
    for kind in ("exact", "volatile", "narrated", "alternation"):
        rng = random.Random(f"{seed}-{kind}")
        cases = [
            (r, inj)
            for _ in range(trials)
            for r in runs
            if (inj := H.inject_loop(r, kind, rng, LOOP_OCCURRENCES))
        ]
        # Loop steps already seen when the block starts: the original (A, or A and B) occurrences.
        seen_before = 2 if kind == "alternation" else 1
        for column in COLUMNS:
            delays: list[float] = []
            for r, inj in cases:
                flags = det.fires(column, r, inj.events)
                if flags is None:
                    break
                idx = H.first(flags, inj.start, inj.end)
                delays.append(
                    math.inf if idx is None else H.steps_until(inj.events, inj.start, idx) + seen_before
                )
            if not delays:
                continue
            found = [d for d in delays if d != math.inf]
            need = MIN_REPEATS[column][kind]
            out[column][f"{kind}.recall"] = len(found) / len(delays)
            out[column][f"{kind}.median_steps"] = H.median(delays)
            out[column][f"{kind}.at_minimum"] = sum(1 for d in found if d <= need) / len(delays)
            out[column][f"{kind}.cases"] = float(len(delays))
    return out


def legitimate_repetition(
    runs: Sequence[H.Run], det: Detectors, seed: int, trials: int
) -> dict[str, dict[str, float]]:
    """Inject polling (the same call, a new result each time) and count the runs where a detector
    fires inside the block: every such firing is a false alarm."""
    rng = random.Random(f"{seed}-polling")
    cases = [(r, inj) for _ in range(trials) for r in runs if (inj := H.inject_polling(r, rng))]
    out: dict[str, dict[str, float]] = {c: {} for c in COLUMNS}
    for column in COLUMNS:
        hits = []
        for r, inj in cases:
            flags = det.fires(column, r, inj.events)
            if flags is None:
                break
            hits.append(H.first(flags, inj.start, inj.end) is not None)
        if hits:
            out[column]["flagged"] = sum(hits) / len(hits)
            out[column]["cases"] = float(len(hits))
    return out


def false_alarms(runs: Sequence[H.Run], det: Detectors) -> dict[str, dict[str, float]]:
    """Share of unmodified runs with a replan/stop (goalkeeper) or any firing (peers)."""
    out: dict[str, dict[str, float]] = {c: {} for c in COLUMNS}
    for label, group in (
        ("success", [r for r in runs if not r.failed]),
        ("failed", [r for r in runs if r.failed]),
    ):
        if not group:
            continue
        for profile in PROFILES:
            sessions = [H.run_goalkeeper(r, profile=profile) for r in group]
            out[profile][f"{label}.alarm"] = sum(
                any(map(H.Goalkeeper.alarm, g.outcomes)) for g in sessions
            ) / len(group)
            out[profile][f"{label}.nudge"] = sum(
                any(o.verification is not None and o.verification.loop_event is not None for o in g.outcomes)
                for g in sessions
            ) / len(group)
        for column in ("openhands", "three_in_five"):
            fired = [det.fires(column, r, r.events) for r in group]
            if fired and fired[0] is not None:
                out[column][f"{label}.alarm"] = sum(any(f) for f in fired if f is not None) / len(group)
        out["goalkeeper"][f"{label}.runs"] = float(len(group))
    return out


# --- the table -------------------------------------------------------------------------------------


def fmt(value: float | None, kind: str = "num") -> str:
    """A table cell."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if value == math.inf:
        return "never"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return f"{value:g}"
    return f"{value:.3f}"


def _cell(section: dict[str, dict[str, float]], key: str) -> Callable[[str], float | None]:
    """Reads ``section[column][key]`` for a column (``None`` when absent)."""

    def get(column: str) -> float | None:
        return section.get(column, {}).get(key)

    return get


def table(results: dict[str, Any], openhands: bool) -> list[tuple[str, str, list[str]]]:
    """Rows of (measure, target, cells per column)."""
    fp, pc, di, li, fa, po = (
        results[k] for k in ("failure", "progress", "drift", "loops", "false_alarms", "polling")
    )
    rows: list[tuple[str, str, list[str]]] = []

    def row(name: str, target: str, get: Callable[[str], float | None], kind: str = "num") -> None:
        cells = []
        for c in COLUMNS:
            if c == "openhands" and not openhands:
                cells.append("not installed")
                continue
            cells.append(fmt(get(c), kind))
        rows.append((name, target, cells))

    for p in PREFIXES:
        target = ">= 0.75" if p == 0.5 else ""
        row(f"failure AUROC, first {int(100 * p)}% (failure_risk)", target, _cell(fp, f"risk@{p}"))
    row("  first 50%, held-out tasks (odd ids)", "", _cell(fp, "risk@0.5.odd"))
    row("  first 50%, tasks the constants were chosen on (even)", "", _cell(fp, "risk@0.5.even"))
    row("  first 50%, within tasks (same-task pairs only)", "", _cell(fp, "risk@0.5.within"))
    for k in FIXED_CUTOFFS:
        row(f"  after the first {k} events (runs longer than {k})", "", _cell(fp, f"risk#{k}"))
    for name in FAILURE_SIGNALS:
        row(f"  failure AUROC, first 50%, signal {name}", "", _cell(fp, f"{name}@0.5"))
    row("progress: Spearman vs ground-truth actions done (pooled)", "", _cell(pc, "spearman"))
    row("  progress: mean per-run Spearman", "", _cell(pc, "per_run"))
    row("drift injection: AUROC of drift_score", ">= 0.90", _cell(di, "auroc"))
    row("drift injection: median steps to drift >= 0.3", "<= 2", _cell(di, "median_steps"), "int")
    row("drift injection: detected within the 3 steps", "", _cell(di, "recall"), "pct")
    row("drift: original steps with drift >= 0.3", "", _cell(di, "false_flag_rate"), "pct")
    for kind, label in (
        ("exact", "exact repeat"),
        ("volatile", "volatile details"),
        ("narrated", "narrated retries"),
        ("alternation", "A/B alternation"),
    ):
        row(f"loop recall: {label}", ">= 0.95", _cell(li, f"{kind}.recall"), "pct")
        row(
            f"  median loop steps to detection ({label})",
            "rule min",
            _cell(li, f"{kind}.median_steps"),
            "int",
        )
        row(f"  detected at the rule's minimum ({label})", "", _cell(li, f"{kind}.at_minimum"), "pct")
    row("false alarms: polling injected (same call, new result)", "", _cell(po, "flagged"), "pct")
    row("false alarms: successful runs with replan/stop", "<= 1%", _cell(fa, "success.alarm"), "pct")
    row("  successful runs nudged (loop event)", "", _cell(fa, "success.nudge"), "pct")
    row("  failed runs with replan/stop (for contrast)", "", _cell(fa, "failed.alarm"), "pct")
    return rows


def signal_table(fp: dict[str, dict[str, float]]) -> str:
    """The second table: every failure signal's AUROC (goalkeeper profile) per prefix, per half of
    the tasks and within tasks."""
    g = fp["goalkeeper"]
    header = ["failure signal (goalkeeper profile)", "25%", "50%", "75%", "50% even", "50% odd", "50% within"]
    lines = [header, ["---"] * len(header)]
    for name in SIGNALS:
        keys = [f"{name}@{p}" for p in PREFIXES] + [f"{name}@0.5.{h}" for h in ("even", "odd", "within")]
        lines.append([SIGNAL_TITLES[name], *(fmt(g.get(k)) for k in keys)])
    return _markdown(lines)


def ceiling_table(c: dict[str, float]) -> str:
    """The third table: how far a fitted model over every signal gets, per prefix."""
    lam = f"{CEILING_LAMBDA:g}"
    header = [
        f"logistic regression over all {int(c.get('signals', len(SIGNALS)))} signals",
        "25%",
        "50%",
        "75%",
    ]
    spec = [
        *((f"leave-one-task-out CV, lambda {x:g}", f"loto.{x:g}") for x in CEILING_LAMBDAS),
        (f"  lambda {lam}: within tasks (same out-of-fold scores)", "loto.within"),
        (f"  lambda {lam}: grouped 5-fold CV, mean of {CEILING_SPLITS} splits", "cv5"),
        (f"  lambda {lam}: fitted on even tasks, scored on odd", "even->odd"),
        (f"  lambda {lam}: fitted on odd tasks, scored on even", "odd->even"),
        (f"  lambda {lam}: in-sample (fitted and scored on all runs)", "in_sample"),
        (f"tracker signals + goal complexity only, leave-one-task-out, lambda {lam}", "tracker.loto"),
    ]
    lines = [header, ["---"] * len(header)]
    for title, key in spec:
        lines.append([title, *(fmt(c.get(f"{key}@{p}")) for p in PREFIXES)])
    other = fmt(c.get("other_trials"))
    lines.append(["not a tracker signal: failure rate of the task's other runs", other, other, other])
    return _markdown(lines)


def render(rows: list[tuple[str, str, list[str]]]) -> str:
    """The table as Markdown (readable in a terminal too)."""
    header = ["measure", "target", *(TITLES[c] for c in COLUMNS)]
    return _markdown(
        [header, ["---"] * len(header)] + [[name, target, *cells] for name, target, cells in rows]
    )


def _markdown(lines: list[list[str]]) -> str:
    header = lines[0]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measure and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="OpenAI-chat / tau-bench JSON file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the injections (default 0)")
    parser.add_argument("--trials", type=int, default=3, help="injections per run and kind (default 3)")
    parser.add_argument("--json", type=Path, help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"data file not found: {args.data}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    runs = load(args.data)
    openhands = P.openhands_available()
    det = Detectors(openhands)
    signals: dict[float, list[dict[str, float]]] = {}
    results = {
        "failure": failure_prediction(runs, det, signals),
        "ceiling": ceiling(runs, signals),
        "progress": progress_correlation(runs),
        "drift": drift_injection(runs, args.seed, args.trials),
        "loops": loop_injection(runs, det, args.seed, args.trials),
        "false_alarms": false_alarms(runs, det),
        "polling": legitimate_repetition(runs, det, args.seed, args.trials),
    }
    n_success = sum(1 for r in runs if not r.failed)
    print(
        f"{len(runs)} runs from {args.data.name} ({n_success} successful, {len(runs) - n_success} failed); "
        f"seed {args.seed}, {args.trials} injection(s) per run and kind"
    )
    print(render(table(results, openhands)))
    lengths = ", ".join(
        f"{fmt(results['failure']['goalkeeper'].get(f'length@{p}'))} at {int(100 * p)}%" for p in PREFIXES
    )
    print(f"\nYardstick, not a detector: AUROC of the prefix's event count alone: {lengths}.\n")
    print(signal_table(results["failure"]))
    print()
    print(ceiling_table(results["ceiling"]))
    print(f"\n({time.perf_counter() - started:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
