"""How far can failure prediction get with the signals we have? A fitted model as a ceiling.

The core's ``failure_risk`` is a fixed formula with two constants. To know whether a better formula
exists, this fits the most flexible honest thing we can afford on 200 runs of 50 tasks: an
L2-regularised logistic regression over *every* candidate online signal (standardised), and scores
it only on runs of tasks it was not fitted on (grouped cross-validation, a group being a task, so
no trial of a scored task is in the training data). Also the optimistic in-sample fit, for scale.

numpy is needed here (it comes with the ``plot`` extra's matplotlib, so with ``dev``); the rest of
the harness has no third-party dependency.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from quality_harness import auroc

__all__ = ["Logistic", "cv_auroc", "fit_logistic", "grouped_cv_scores", "matrix", "other_trials_rate"]

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Logistic:
    """A fitted model: feature means and scales (for standardising) and weights (intercept first)."""

    mean: Matrix
    scale: Matrix
    weights: Matrix

    def score(self, x: Matrix) -> Matrix:
        """The log-odds of failure for each row of ``x`` (monotone in the probability)."""
        z = (x - self.mean) / self.scale
        return np.asarray(self.weights[0] + z @ self.weights[1:], dtype=np.float64)


def fit_logistic(x: Matrix, y: Sequence[bool], lam: float = 10.0, iterations: int = 100) -> Logistic:
    """Logistic regression with an L2 penalty ``lam`` on the standardised weights (not on the
    intercept), by Newton's method. Constant columns get weight 0. With one class only, the
    intercept is that class's log-odds clipped at +-10 and the weights are 0 (a constant score)."""
    labels = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    rate = float(labels.mean()) if len(labels) else 0.5
    if rate in (0.0, 1.0):
        w[0] = 10.0 if rate == 1.0 else -10.0
        return Logistic(mean, scale, w)
    penalty = lam * np.eye(z.shape[1])
    penalty[0, 0] = 1e-9
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - labels) + penalty @ w
        hessian = z.T @ (z * (p * (1.0 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w = w - step
        if float(np.max(np.abs(step))) < 1e-9:
            break
    return Logistic(mean, scale, w)


def grouped_cv_scores(
    x: Matrix,
    y: Sequence[bool],
    groups: Sequence[Hashable],
    lam: float = 10.0,
    folds: int | None = None,
    seed: int = 0,
) -> list[float]:
    """Out-of-fold scores: each run is scored by a model fitted on the runs of the *other* groups.

    ``folds=None`` leaves one group out at a time; else the groups are dealt at random
    (``random.Random(seed)``) into ``folds`` folds."""
    if not len(x) == len(y) == len(groups):
        raise ValueError("x, y and groups differ in length")
    names = sorted({str(g) for g in groups})
    if folds is None:
        fold_of = {g: i for i, g in enumerate(names)}
    else:
        shuffled = names[:]
        random.Random(seed).shuffle(shuffled)
        fold_of = {g: i % folds for i, g in enumerate(shuffled)}
    fold = np.array([fold_of[str(g)] for g in groups])
    labels = np.asarray(y, dtype=bool)
    scores = np.zeros(len(y))
    for k in sorted(set(fold.tolist())):
        test = fold == k
        model = fit_logistic(x[~test], labels[~test].tolist(), lam)
        scores[test] = model.score(x[test])
    return scores.tolist()


def other_trials_rate(labels: Sequence[bool], groups: Sequence[Hashable]) -> list[float]:
    """Per run, the failure rate of the *other* runs of its group (``nan`` if it is alone).

    Not a signal any tracker has (it is the outcome of the same task's other runs): a bound on what
    knowing a task's difficulty, and nothing about the run itself, can give."""
    failed: dict[str, int] = {}
    count: dict[str, int] = {}
    for y, g in zip(labels, groups, strict=True):
        failed[str(g)] = failed.get(str(g), 0) + bool(y)
        count[str(g)] = count.get(str(g), 0) + 1
    return [
        (failed[str(g)] - bool(y)) / (count[str(g)] - 1) if count[str(g)] > 1 else math.nan
        for y, g in zip(labels, groups, strict=True)
    ]


def matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> Matrix:
    """The feature matrix of ``rows`` (dicts of signals) over the columns ``names``."""
    return np.array([[float(r[n]) for n in names] for r in rows], dtype=np.float64).reshape(
        len(rows), len(names)
    )


def cv_auroc(
    x: Matrix, y: Sequence[bool], groups: Sequence[Hashable], lam: float, folds: int | None, seeds: int = 1
) -> float:
    """AUROC of :func:`grouped_cv_scores`, averaged over ``seeds`` random fold assignments."""
    values = [auroc(grouped_cv_scores(x, y, groups, lam, folds, seed), y) for seed in range(seeds)]
    return float(np.mean(values))
