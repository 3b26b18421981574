"""Two more attempts at the failure-prediction ceiling, slower than ``run.py`` (about two minutes).

Usage::

    python benchmarks/quality/ceiling_search.py             # 50% prefix, the tau-bench data
    python benchmarks/quality/ceiling_search.py --prefix 0.75

1. **Feature selection, nested.** Forward selection (up to 6 signals, by grouped 5-fold CV AUROC)
   of the logistic regression over the signals of ``run.py``'s second table. Done once on all runs
   (optimistic: the selection sees every run it is scored on) and nested inside 10 grouped outer
   folds (honest: each outer fold selects and fits on the other tasks only).
2. **Bag of words.** A logistic regression over which words occur in the goal, in the prefix's
   messages (and tool names), or both: a lexicon *fitted to this data set*, which the tracker must
   not ship (issue 8 rules it out); here only to show whether words could carry more at all.
   Scored by 10 grouped folds (tasks).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import quality_ceiling as C
import quality_harness as H
import run as R

from goalkeeper.core.model import MessageEvent, StepEvent

_TOKEN = re.compile(r"[a-z_]+")
#: Penalty and fold count of both searches.
LAMBDA = 10.0
OUTER_FOLDS = 10
MAX_SIGNALS = 6


def forward_selection(x: C.Matrix, y: Sequence[bool], tasks: Sequence[str]) -> tuple[list[int], float]:
    """Columns chosen greedily while the grouped 5-fold CV AUROC improves by more than 0.002."""
    chosen: list[int] = []
    best = 0.0
    while len(chosen) < MAX_SIGNALS:
        trials = [
            (C.cv_auroc(x[:, [*chosen, j]], y, tasks, LAMBDA, 5, 2), j)
            for j in range(x.shape[1])
            if j not in chosen
        ]
        score, j = max(trials)
        if score <= best + 0.002:
            break
        best = score
        chosen.append(j)
    return chosen, best


def words(run: H.Run, n: int, goal: bool, prefix: bool) -> set[str]:
    """The run's word features: ``g:`` goal words, ``u:``/``a:`` message words, ``t:`` tool names."""
    out: set[str] = set()
    if goal:
        out |= {"g:" + w for w in _TOKEN.findall(run.goal.description.lower())}
    if prefix:
        for e in run.events[:n]:
            if isinstance(e, MessageEvent) and e.role in ("user", "assistant"):
                out |= {e.role[0] + ":" + w for w in _TOKEN.findall(e.content.lower())}
            elif isinstance(e, StepEvent):
                out.add("t:" + e.tool)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print both searches' AUROCs."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=R.DEFAULT_DATA)
    parser.add_argument("--prefix", type=float, default=0.5)
    args = parser.parse_args(argv)
    runs = R.load(args.data)
    labels = [r.failed for r in runs]
    tasks = [str(r.task_id) for r in runs]
    signals = [
        R.prefix_signals(r, H.run_goalkeeper(r), H.prefix_length(len(r.events), args.prefix)) for r in runs
    ]
    x = C.matrix(signals, R.SIGNALS)
    chosen, score = forward_selection(x, labels, tasks)
    print(f"prefix {args.prefix:g}, {len(runs)} runs, {len(set(tasks))} tasks, {len(R.SIGNALS)} signals")
    print(f"selection on all runs (optimistic): {score:.3f} with {[R.SIGNALS[j] for j in chosen]}")
    names = sorted(set(tasks))
    fold_of = {t: i % OUTER_FOLDS for i, t in enumerate(names)}
    fold = np.array([fold_of[t] for t in tasks])
    scores = np.zeros(len(runs))
    for k in range(OUTER_FOLDS):
        test = fold == k
        train = np.flatnonzero(~test)
        cols, _ = forward_selection(x[train], [labels[i] for i in train], [tasks[i] for i in train])
        model = C.fit_logistic(x[train][:, cols], [labels[i] for i in train], LAMBDA)
        scores[test] = model.score(x[test][:, cols])
        print(f"  outer fold {k}: {[R.SIGNALS[j] for j in cols]}")
    print(
        f"nested selection (honest): {H.auroc(scores.tolist(), labels):.3f}, "
        f"within tasks {H.within_group_auroc(scores.tolist(), labels, tasks):.3f}"
    )
    for goal, prefix in ((True, False), (False, True), (True, True)):
        bags = [words(r, H.prefix_length(len(r.events), args.prefix), goal, prefix) for r in runs]
        counts: dict[str, int] = {}
        for bag in bags:
            for w in bag:
                counts[w] = counts.get(w, 0) + 1
        vocab = sorted(w for w, c in counts.items() if c >= 5)
        xb = np.array([[float(w in bag) for w in vocab] for bag in bags])
        for lam in (100.0, 1000.0):
            value = C.cv_auroc(xb, labels, tasks, lam, OUTER_FOLDS)
            what = "+".join(n for n, on in (("goal", goal), ("prefix", prefix)) if on)
            print(f"bag of words ({what}, {len(vocab)} words), lambda {lam:g}: {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
