"""Aggregate statistics for few-run RL evaluation: IQM, stratified bootstrap CIs, P(improvement).

These are the estimators recommended by Agarwal et al., "Deep RL at the Edge of the Statistical
Precipice" (NeurIPS 2021). Their reference library, rliable, is archived, so the few pieces used
here are written on numpy/scipy: the statistics themselves come from scipy
(``scipy.stats.trim_mean``, ``scipy.stats.mannwhitneyu``); only the stratified resampling, which
no maintained library offers, is written by hand. ``scipy.stats`` takes most of a second to import,
so it is imported by the functions that use it, and importing this module (as the report's config
and ``lamp-eval --help`` do) stays light.

Scores are given per task: a mapping ``task -> 1-D array of run scores`` (one score per seed).
Tasks may have different numbers of runs. Aggregates pool every run of every task, so a task
with more runs weighs more, as in rliable's ``[runs, tasks]`` matrices when all counts agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from lamp_data.errors import LampError

ScoresPerTask = Mapping[str, "np.ndarray | list[float]"]
"""Run scores of one method: task name -> one score per run."""

IQM_TRIM = 0.25
"""Fraction cut from each end for the interquartile mean."""


def iqm(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50 % (25 % trimmed from each end).

    Args:
        values: Scores; flattened when ``axis`` is None.
        axis: Axis to reduce, or None for all values.
    """
    from scipy.stats import trim_mean

    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        values = values.reshape(-1)
        axis = 0
    return trim_mean(values, IQM_TRIM, axis=axis)


def mean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Plain mean, with the same calling convention as :func:`iqm`."""
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        return float(values.mean())
    return values.mean(axis=axis)


AGGREGATES: dict[str, Callable[..., np.ndarray | float]] = {"iqm": iqm, "mean": mean}
"""Aggregate statistics by name; each takes ``(values, axis=None)``."""

MIN_IQM_RUNS = 4
"""Fewest runs an IQM is reported for: with fewer, trimming a quarter from each end removes no
run, so the IQM is the mean and is called so."""


def aggregate_for(runs: int) -> str:
    """The aggregate a table of ``runs`` runs reports: ``iqm`` from :data:`MIN_IQM_RUNS` runs on, else ``mean``."""
    return "iqm" if runs >= MIN_IQM_RUNS else "mean"


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    value: float
    """The statistic on the observed runs."""
    low: float
    """Lower end of the confidence interval."""
    high: float
    """Upper end of the confidence interval."""

    def excludes(self, other: "Interval") -> bool:
        """True when the two intervals do not overlap."""
        return self.low > other.high or self.high < other.low


def _as_arrays(scores: ScoresPerTask) -> dict[str, np.ndarray]:
    arrays = {task: np.asarray(values, dtype=np.float64).reshape(-1) for task, values in scores.items()}
    if not arrays or any(array.size == 0 for array in arrays.values()):
        raise LampError("statistics need at least one run in every task")
    return arrays


def pooled(scores: ScoresPerTask) -> np.ndarray:
    """Every run score of every task in one 1-D array (tasks in sorted order)."""
    arrays = _as_arrays(scores)
    return np.concatenate([arrays[task] for task in sorted(arrays)])


def stratified_resample(scores: ScoresPerTask, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` bootstrap replicates, runs resampled with replacement within each task.

    Returns:
        float64 ``[reps, total runs]``; each task keeps its own run count in every replicate.
    """
    arrays = _as_arrays(scores)
    columns = []
    for task in sorted(arrays):
        runs = arrays[task]
        columns.append(runs[rng.integers(0, runs.size, size=(reps, runs.size))])
    return np.concatenate(columns, axis=1)


def stratified_bootstrap_ci(
    scores: ScoresPerTask,
    statistic: str = "iqm",
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Point estimate and percentile bootstrap CI of an aggregate over tasks and runs.

    Args:
        scores: Run scores per task of one method.
        statistic: A name in :data:`AGGREGATES` (``"iqm"`` or ``"mean"``).
        reps: Bootstrap replicates.
        confidence: Coverage of the interval (0.95 → 2.5th and 97.5th percentiles).
        seed: Seed of the resampling, so reports are reproducible.
    """
    aggregate = _aggregate(statistic)
    rng = np.random.default_rng(seed)
    point = float(aggregate(pooled(scores)))
    replicates = aggregate(stratified_resample(scores, reps, rng), axis=1)
    low, high = _percentiles(replicates, confidence)
    return Interval(point, low, high)


def curve_with_ci(
    scores: Mapping[str, np.ndarray],
    statistic: str = "iqm",
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate and CI at every point of a learning curve.

    Args:
        scores: task -> float ``[runs, points]``: each run's score at each curve point.

    Returns:
        ``(value, low, high)``, each float ``[points]``.
    """
    aggregate = _aggregate(statistic)
    arrays = {task: np.asarray(values, dtype=np.float64) for task, values in scores.items()}
    if not arrays or any(array.ndim != 2 or array.shape[0] == 0 for array in arrays.values()):
        raise LampError("curves need at least one run in every task")
    points = {array.shape[1] for array in arrays.values()}
    if len(points) != 1:
        raise LampError("every run of a curve needs the same evaluation points")
    rng = np.random.default_rng(seed)
    ordered = [arrays[task] for task in sorted(arrays)]
    value = aggregate(np.concatenate(ordered, axis=0), axis=0)
    resampled = np.concatenate(
        [runs[rng.integers(0, runs.shape[0], size=(reps, runs.shape[0]))] for runs in ordered], axis=1
    )
    replicates = aggregate(resampled, axis=1)
    low, high = _percentiles(replicates, confidence, axis=0)
    return np.asarray(value), np.asarray(low), np.asarray(high)


def probability_of_improvement(x: ScoresPerTask, y: ScoresPerTask) -> float:
    """P(X > Y): the chance that a run of X beats a run of Y on a random common task.

    Per task it is the Mann–Whitney U statistic of X against Y divided by ``n_x * n_y``
    (ties count one half); tasks are then averaged with equal weight.

    Raises:
        LampError: when the two methods share no task.
    """
    from scipy.stats import mannwhitneyu

    first, second = _common_tasks(x, y)
    values = [
        mannwhitneyu(first[task], second[task], alternative="two-sided").statistic
        / (first[task].size * second[task].size)
        for task in sorted(first)
    ]
    return float(np.mean(values))


def probability_of_improvement_ci(
    x: ScoresPerTask,
    y: ScoresPerTask,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a CI from resampling both methods' runs per task.

    Replicates count wins over all run pairs directly (vectorised over replicates), which is
    the U statistic that :func:`probability_of_improvement` takes from scipy.
    """
    first, second = _common_tasks(x, y)
    rng = np.random.default_rng(seed)
    per_task = []
    for task in sorted(first):
        a = first[task][rng.integers(0, first[task].size, size=(reps, first[task].size))]
        b = second[task][rng.integers(0, second[task].size, size=(reps, second[task].size))]
        diff = a[:, :, None] - b[:, None, :]
        per_task.append(((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2)))
    replicates = np.mean(per_task, axis=0)
    low, high = _percentiles(replicates, confidence)
    return Interval(probability_of_improvement(first, second), low, high)


def area_under_curve(steps: np.ndarray, values: np.ndarray) -> float:
    """Normalised area under a learning curve: trapezoid area / step range, in the values' units.

    A single point gives that point's value.
    """
    steps = np.asarray(steps, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if steps.size == 0 or steps.shape != values.shape:
        raise LampError("a curve needs matching, non-empty steps and values")
    if steps.size == 1 or steps[-1] == steps[0]:
        return float(values[-1])
    return float(np.trapezoid(values, steps) / (steps[-1] - steps[0]))


def _aggregate(statistic: str) -> Callable[..., np.ndarray | float]:
    try:
        return AGGREGATES[statistic]
    except KeyError:
        raise LampError(f"unknown statistic '{statistic}' (known: {', '.join(AGGREGATES)})") from None


def _percentiles(replicates: np.ndarray, confidence: float, axis: int = 0):
    if not 0.0 < confidence < 1.0:
        raise LampError(f"confidence must be between 0 and 1, got {confidence}")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=axis)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def _common_tasks(x: ScoresPerTask, y: ScoresPerTask) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    first, second = _as_arrays(x), _as_arrays(y)
    common = sorted(set(first) & set(second))
    if not common:
        raise LampError("the two methods share no task, so neither can be compared with the other")
    return {task: first[task] for task in common}, {task: second[task] for task in common}
