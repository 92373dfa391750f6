"""How runs are scored and methods ranked: the scores, the bootstrap summaries per method and the leaderboard."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.errors import LampError
from lamp_eval import stats
from lamp_eval.baselines import SUPPORTED_BASELINES_VERSIONS, normalised_return
from lamp_eval.runs import Run


SCORES = ("final", "auc", "norm-final", "norm-auc")
"""Ways to turn one run into one number (see the module docstring)."""
AUTO_SCORE = "auto"
"""Rank by success when any run ever succeeded, else by expert-normalised return."""
NORMALISED_SCORES = ("norm-final", "norm-auc")
"""The scores on expert-normalised return."""
RANKED_BY = {
    "final": "final success rate",
    "auc": "area under the success curve",
    "norm-final": "final expert-normalised return",
    "norm-auc": "area under the expert-normalised return curve",
}
"""What each score is, in words."""
NO_SUCCESS_NORMALISED = "No method succeeded at this budget; methods are ranked by expert-normalised return."
"""The report's sentence when nothing succeeded and the ranking fell back on normalised return."""
ARCHITECTURE_KEYS = (
    "frontend", "cnn_depth", "token_units", "deter", "stoch_groups", "stoch_classes", "hidden", "mlp_units",
    "mlp_layers", "reward_bins", "mae_width", "mae_layers", "mae_decoder_width", "mae_decoder_layers",
    "ensemble_size",
)
"""Agent config keys that decide network sizes; runs compared on one task should agree on them."""


@dataclass(frozen=True)
class ReportConfig:
    """How the leaderboard is computed."""

    baseline: str = "scratch"
    """Method that probability of improvement is measured against."""
    score: str = AUTO_SCORE
    """Ranking score: ``auto``, ``final``, ``auc``, ``norm-final`` or ``norm-auc``."""
    reps: int = 2000
    """Bootstrap replicates."""
    confidence: float = 0.95
    """Coverage of every confidence interval."""
    seed: int = 0
    """Seed of the bootstrap."""
    gifs: bool = True
    """Copy and embed the rollout GIFs."""

    def __post_init__(self) -> None:
        if self.score not in (AUTO_SCORE, *SCORES):
            raise LampError(f"unknown score '{self.score}' (known: {', '.join((AUTO_SCORE, *SCORES))})")
        if self.reps < 100:
            raise LampError(f"use at least 100 bootstrap replicates, got {self.reps}")


def run_baselines(run: Run) -> dict[str, Any] | None:
    """The random and expert baselines stored with the run (``run.json`` ``baselines``), or None.

    Raises:
        LampError: when the run holds baselines of a format version this toolkit does not read.
    """
    baselines = run.info.get("baselines")
    if not baselines:
        return None
    version = baselines.get("format_version")
    if version not in SUPPORTED_BASELINES_VERSIONS:
        raise LampError(
            f"{run.path} has baselines format version {version}; this toolkit reads {SUPPORTED_BASELINES_VERSIONS}"
        )
    return baselines


def run_normalised_returns(run: Run) -> list[float]:
    """Expert-normalised mean return of each evaluation (all NaN when the run has no usable baselines)."""
    baselines = run_baselines(run)
    return [normalised_return(value, baselines) for value in run.returns]


def is_normalisable(run: Run) -> bool:
    """True when the run's baselines give its return a finite normalised value."""
    return math.isfinite(normalised_return(0.0, run_baselines(run)))


def run_score(run: Run, score: str) -> float:
    """One number for a run: final value or normalised area under the curve, of success or
    of expert-normalised return (NaN for a normalised score without baselines)."""
    if score == "final":
        return float(run.success_rates[-1])
    if score == "auc":
        return stats.area_under_curve(np.array(run.steps), np.array(run.success_rates))
    if score == "norm-final":
        return float(run_normalised_returns(run)[-1])
    if score == "norm-auc":
        values = np.array(run_normalised_returns(run))
        return stats.area_under_curve(np.array(run.steps), values) if np.isfinite(values).all() else math.nan
    raise LampError(f"unknown score '{score}' (known: {', '.join(SCORES)})")


def resolve_score(runs: list[Run], requested: str) -> str:
    """The score the leaderboard ranks on: ``requested``, or for ``auto`` the one that applies.

    ``auto`` gives ``final`` when any evaluation of any run had a success, else ``norm-final``
    when some run can be normalised, else ``final`` (every method then ties at 0).

    Raises:
        LampError: when a normalised score is asked for and no run carries usable baselines.
    """
    normalisable = any(is_normalisable(run) for run in runs)
    if requested in NORMALISED_SCORES and not normalisable:
        raise LampError(
            f"no run carries expert baselines, so runs cannot be ranked by {requested}; use --score final or auc"
        )
    if requested != AUTO_SCORE:
        return requested
    if any_success(runs) or not normalisable:
        return "final"
    return "norm-final"


def any_success(runs: list[Run]) -> bool:
    """True when any evaluation of any run had a successful episode."""
    return any(rate > 0 for run in runs for rate in run.success_rates)


@dataclass(frozen=True)
class MethodSummary:
    """One leaderboard row."""

    method: str
    """Method label."""
    runs: int
    """Runs pooled."""
    tasks: tuple[str, ...]
    """Tasks it was run on."""
    budget: tuple[int, ...]
    """Distinct final env steps of its runs (one value when all runs had the same budget)."""
    final_iqm: stats.Interval
    """IQM of final success rates, with CI."""
    final_mean: stats.Interval
    """Mean of final success rates, with CI."""
    auc_iqm: stats.Interval
    """IQM of the normalised area under the success curve, with CI."""
    auc_mean: stats.Interval
    """Mean of the normalised area under the success curve, with CI."""
    improvement: stats.Interval | None
    """P(this method beats the baseline) on success (final or AUC, as ranked); None for the
    baseline or without one."""
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    """task -> {"runs", "final_mean", "final_std", "auc_mean", "norm_runs", "norm_final_mean",
    "norm_final_std", "norm_auc_mean"} (normalised values NaN without baselines)."""
    norm_runs: int = 0
    """Runs with usable baselines, the ones pooled in the normalised scores."""
    norm_final_iqm: stats.Interval | None = None
    """IQM of final expert-normalised returns, with CI; None when no run has baselines."""
    norm_final_mean: stats.Interval | None = None
    """Mean of final expert-normalised returns, with CI."""
    norm_auc_iqm: stats.Interval | None = None
    """IQM of the normalised area under the expert-normalised return curve, with CI."""
    norm_auc_mean: stats.Interval | None = None
    """Mean of the normalised area under the expert-normalised return curve, with CI."""
    norm_improvement: stats.Interval | None = None
    """P(this method beats the baseline) on expert-normalised return (final or AUC, as ranked)."""

    def score_interval(self, score: str, statistic: str = "iqm") -> stats.Interval | None:
        """The interval of ``score`` (one of :data:`SCORES`) under ``statistic`` (``iqm`` or ``mean``)."""
        name = {"final": "final", "auc": "auc", "norm-final": "norm_final", "norm-auc": "norm_auc"}[score]
        return getattr(self, f"{name}_{statistic}")

    def ranking_value(self, score: str, statistic: str = "iqm") -> float:
        """The aggregate the leaderboard sorts on (minus infinity when the method has no such score)."""
        interval = self.score_interval(score, statistic)
        return -math.inf if interval is None else interval.value


@dataclass(frozen=True)
class ArchitectureDifference:
    """Two methods whose runs on the same task were made with different network sizes."""

    methods: tuple[str, str]
    """The two method labels, sorted."""
    tasks: tuple[str, ...]
    """Tasks where their runs differ."""
    keys: tuple[str, ...]
    """Agent config keys (of :data:`ARCHITECTURE_KEYS`) that differ."""


@dataclass(frozen=True)
class Leaderboard:
    """Rows in rank order plus what they were computed from."""

    config: ReportConfig
    """How it was computed."""
    rows: tuple[MethodSummary, ...]
    """Best first."""
    tasks: tuple[str, ...]
    """Every task in the runs."""
    score: str = "final"
    """The score it is ranked by (``config.score`` with ``auto`` resolved)."""
    any_success: bool = True
    """Whether any evaluation of any run succeeded."""
    runs_without_baselines: int = 0
    """Runs left out of the normalised scores (no baselines, or no expert in them)."""
    statistic: str = "iqm"
    """The aggregate over runs the table leads with and ranks by: ``iqm`` when every method has at
    least :data:`lamp_eval.stats.MIN_IQM_RUNS` runs on every task, else ``mean``."""
    architecture_differences: tuple[ArchitectureDifference, ...] = ()
    """Methods compared on one task with different network sizes."""


@dataclass(frozen=True)
class ReportResult:
    """What :func:`leaderboard` wrote."""

    leaderboard: Leaderboard
    """The computed table."""
    out: Path
    """Report folder."""
    files: tuple[Path, ...]
    """Every file written."""


def competition_ranks(board: "Leaderboard") -> list[int]:
    """Rank of each row: one more than the number of methods whose confidence interval lies
    wholly above its own, so methods whose intervals overlap share a rank (the data do not order
    them) and only a separated interval moves a method down. Rows without the score rank last."""
    intervals = [row.score_interval(board.score, board.statistic) for row in board.rows]

    def above(other: stats.Interval | None, mine: stats.Interval | None) -> bool:
        if other is None:
            return False
        return mine is None or other.low > mine.high

    return [1 + sum(above(other, mine) for other in intervals) for mine in intervals]


def group_runs(runs: list[Run]) -> dict[str, dict[str, list[Run]]]:
    """method -> task -> runs (sorted by seed)."""
    grouped: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        grouped[run.method][run.task].append(run)
    return {
        method: {task: sorted(task_runs, key=lambda run: run.seed) for task, task_runs in sorted(tasks.items())}
        for method, tasks in sorted(grouped.items())
    }


def normalisable_runs(task_runs: dict[str, list[Run]]) -> dict[str, list[Run]]:
    """task -> the runs that carry usable baselines (tasks without any are dropped)."""
    kept = {task: [run for run in runs if is_normalisable(run)] for task, runs in task_runs.items()}
    return {task: runs for task, runs in kept.items() if runs}


def _scores(task_runs: dict[str, list[Run]], score: str) -> dict[str, np.ndarray]:
    return {task: np.array([run_score(run, score) for run in runs]) for task, runs in task_runs.items()}


def time_form(score: str) -> str:
    """``final`` or ``auc``: which of the two the ranking score is."""
    return "auc" if score in ("auc", "norm-auc") else "final"


def architecture_differences(runs: list[Run]) -> tuple[ArchitectureDifference, ...]:
    """Pairs of methods whose runs on one task differ in any of :data:`ARCHITECTURE_KEYS`.

    Only keys present in both runs' ``agent_config`` (``run.json``) are compared; runs
    without one are skipped.
    """
    architectures: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        agent_config = run.info.get("agent_config")
        if isinstance(agent_config, dict):
            sizes = {key: agent_config[key] for key in ARCHITECTURE_KEYS if key in agent_config}
            if sizes not in architectures[run.task][run.method]:
                architectures[run.task][run.method].append(sizes)
    found: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for task, by_method in architectures.items():
        for first, second in itertools.combinations(sorted(by_method), 2):
            for one, other in itertools.product(by_method[first], by_method[second]):
                keys = {key for key in one.keys() & other.keys() if one[key] != other[key]}
                if keys:
                    tasks, differing = found.setdefault((first, second), (set(), set()))
                    tasks.add(task)
                    differing.update(keys)
    return tuple(
        ArchitectureDifference(
            methods=methods, tasks=tuple(sorted(tasks)), keys=tuple(key for key in ARCHITECTURE_KEYS if key in keys)
        )
        for methods, (tasks, keys) in sorted(found.items())
    )


def build_leaderboard(runs: list[Run], config: ReportConfig = ReportConfig()) -> Leaderboard:
    """Compute every row of the leaderboard from finished runs.

    Raises:
        LampError: when there are no runs, or a normalised score is asked for and no run has baselines.
    """
    if not runs:
        raise LampError("no runs to make a leaderboard from")
    score = resolve_score(runs, config.score)
    form = time_form(score)
    grouped = group_runs(runs)
    ci = {"reps": config.reps, "confidence": config.confidence, "seed": config.seed}
    baseline_runs = grouped.get(config.baseline)
    baseline_success = _scores(baseline_runs, form) if baseline_runs else None
    baseline_normalised = _scores(normalisable_runs(baseline_runs), f"norm-{form}") if baseline_runs else {}
    rows = []
    for method, task_runs in grouped.items():
        final = _scores(task_runs, "final")
        auc = _scores(task_runs, "auc")
        normalisable = normalisable_runs(task_runs)
        norm_final = _scores(normalisable, "norm-final")
        norm_auc = _scores(normalisable, "norm-auc")
        improvement = norm_improvement = None
        if baseline_success is not None and method != config.baseline:
            mine = final if form == "final" else auc
            if set(mine) & set(baseline_success):
                improvement = stats.probability_of_improvement_ci(mine, baseline_success, **ci)
            mine = norm_final if form == "final" else norm_auc
            if set(mine) & set(baseline_normalised):
                norm_improvement = stats.probability_of_improvement_ci(mine, baseline_normalised, **ci)
        has_norm = bool(normalisable)
        rows.append(
            MethodSummary(
                method=method,
                runs=sum(len(value) for value in task_runs.values()),
                tasks=tuple(task_runs),
                budget=tuple(sorted({run.steps[-1] for value in task_runs.values() for run in value})),
                final_iqm=stats.stratified_bootstrap_ci(final, "iqm", **ci),
                final_mean=stats.stratified_bootstrap_ci(final, "mean", **ci),
                auc_iqm=stats.stratified_bootstrap_ci(auc, "iqm", **ci),
                auc_mean=stats.stratified_bootstrap_ci(auc, "mean", **ci),
                improvement=improvement,
                per_task={
                    task: {
                        "runs": int(final[task].size),
                        "final_mean": float(final[task].mean()),
                        "final_std": float(final[task].std()),
                        "auc_mean": float(auc[task].mean()),
                        "norm_runs": int(norm_final[task].size) if task in norm_final else 0,
                        "norm_final_mean": float(norm_final[task].mean()) if task in norm_final else math.nan,
                        "norm_final_std": float(norm_final[task].std()) if task in norm_final else math.nan,
                        "norm_auc_mean": float(norm_auc[task].mean()) if task in norm_auc else math.nan,
                    }
                    for task in task_runs
                },
                norm_runs=sum(len(value) for value in normalisable.values()),
                norm_final_iqm=stats.stratified_bootstrap_ci(norm_final, "iqm", **ci) if has_norm else None,
                norm_final_mean=stats.stratified_bootstrap_ci(norm_final, "mean", **ci) if has_norm else None,
                norm_auc_iqm=stats.stratified_bootstrap_ci(norm_auc, "iqm", **ci) if has_norm else None,
                norm_auc_mean=stats.stratified_bootstrap_ci(norm_auc, "mean", **ci) if has_norm else None,
                norm_improvement=norm_improvement,
            )
        )
    statistic = stats.aggregate_for(min(len(value) for task_runs in grouped.values() for value in task_runs.values()))
    rows.sort(key=lambda row: (-row.ranking_value(score, statistic), row.method))
    tasks = tuple(sorted({run.task for run in runs}))
    return Leaderboard(
        statistic=statistic,
        config=config,
        rows=tuple(rows),
        tasks=tasks,
        score=score,
        any_success=any_success(runs),
        runs_without_baselines=sum(not is_normalisable(run) for run in runs),
        architecture_differences=architecture_differences(runs),
    )


def curve_grid(runs: list[Run]) -> np.ndarray:
    """Common evaluation steps of ``runs``: every step any run evaluated at, up to the
    shortest run's last step (so no run's curve is extended past its budget)."""
    last = min(run.steps[-1] for run in runs)
    return np.array(sorted({step for run in runs for step in run.steps if step <= last}))


CURVE_METRICS = {"success": "success rate", "normalised": "expert-normalised return", "return": "return"}
"""What a curve can show: the evaluations' success rate, their mean dense return normalised
between the random policy (0) and the expert (1), or that return as it is."""


def run_curve_on(run: Run, grid: np.ndarray, metric: str = "success") -> np.ndarray:
    """The run's ``metric`` at each grid step: its latest evaluation at or before the step."""
    if metric == "normalised":
        values = np.array(run_normalised_returns(run))
    else:
        values = np.array(run.returns if metric == "return" else run.success_rates)
    steps = np.array(run.steps)
    index = np.clip(np.searchsorted(steps, grid, side="right") - 1, 0, len(steps) - 1)
    return values[index]


def method_curves(
    task_runs: dict[str, list[Run]], config: ReportConfig, metric: str = "success"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IQM curve of ``metric`` with CI band of one method: ``(steps, value, low, high)``.

    For ``normalised`` give only runs with baselines (:func:`normalisable_runs`).
    """
    all_runs = [run for runs in task_runs.values() for run in runs]
    grid = curve_grid(all_runs)
    curves = {task: np.stack([run_curve_on(run, grid, metric) for run in runs]) for task, runs in task_runs.items()}
    value, low, high = stats.curve_with_ci(
        curves, "iqm", reps=config.reps, confidence=config.confidence, seed=config.seed
    )
    return grid, value, low, high
