"""Leaderboards from finetuning runs: tables, learning curves, rollout GIFs and one HTML page.

Every run is measured two ways: its success rate, and its **expert-normalised return**, the
mean dense return of an evaluation on a scale where 0 is a uniform random policy and 1 the
task's scripted expert, both played on the run's own evaluation seeds
(:mod:`lamp_eval.baselines`, stored in ``run.json`` under ``baselines``). The normalised return
moves long before any episode succeeds, so it separates methods at small budgets.

Which number scores a run:

* ``final`` — the success rate of the run's last evaluation (after the whole step budget);
* ``auc`` — the area under the run's success-rate curve divided by its step range
  (trapezoids over the evaluations), in [0, 1]: it rewards learning early, i.e. sample
  efficiency, and is less noisy than one evaluation;
* ``norm-final`` and ``norm-auc`` — the same two on the expert-normalised return;
* ``auto`` (the default) — ``final`` when any evaluation of any run succeeded at all, else
  ``norm-final``, and the report says in one sentence that no method succeeded.

Runs without baselines (older runs, envs without an expert) still count for success; they are
left out of the normalised scores, and the report says how many were left out.

For each method the report gives, for success and for normalised return, the IQM and the mean
over every run of every task with 95 % stratified-bootstrap confidence intervals (runs
resampled within each task), the probability of improvement over the baseline method
(``scratch``) with its CI, per-task means, and curves of the IQM (with CI bands) against env
steps. Methods are ranked by the IQM of the chosen score. Warnings flag runs with different
step budgets and methods whose networks differ in size on the same task. Methods that share a
rank read ``1 (tie)`` with a note naming them; a method with one run per task has degenerate
intervals, so its estimates read ``(n=1)`` with a note. When nothing succeeded, the report
opens by pointing at the normalised-return and return curves.

Files written into the report folder: ``leaderboard.{csv,md,html,json}``, ``per_task.csv``,
``curves.{png,svg}`` (all tasks pooled: success and, where baselines exist, normalised return),
``curves_per_task.{png,svg}``, ``normalised_per_task.{png,svg}`` (where baselines exist),
``returns_per_task.{png,svg}`` (the raw mean dense return), and ``gifs/<task>__<method>__seed-<k>.gif``
(the lowest seed's last evaluation). ``leaderboard.html`` embeds every image as base64 and an
"about this report" block (versions, run folders, time, plus whatever the caller adds), so the
page can be mailed or published alone.
"""

from __future__ import annotations

import base64
import csv
import html
import itertools
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.atomic import atomic_open, atomic_path, atomic_write_json
from lamp_data.errors import LampError
from lamp_data.provenance import provenance
from lamp_data.schema import REPORT_FORMAT_VERSION
from lamp_eval import stats
from lamp_eval.baselines import SUPPORTED_BASELINES_VERSIONS, normalised_return
from lamp_eval.runs import Run, find_runs, safe_name

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


def _time_form(score: str) -> str:
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
    form = _time_form(score)
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


def budget_warning(board: Leaderboard) -> str:
    """A sentence when the runs did not all have the same env-step budget, else ``""``."""
    budgets = sorted({step for row in board.rows for step in row.budget})
    if len(budgets) <= 1:
        return ""
    listed = "; ".join(f"{row.method}: {'/'.join(str(step) for step in row.budget)}" for row in board.rows)
    return f"Warning: the runs had different env-step budgets ({listed}), so methods are not compared under one budget."


def architecture_warning(board: Leaderboard) -> str:
    """A sentence when methods compared on one task differ in network sizes, else ``""``."""
    if not board.architecture_differences:
        return ""
    listed = "; ".join(
        f"{' vs '.join(difference.methods)}: {', '.join(difference.keys)}" for difference in board.architecture_differences
    )
    return (
        f"Warning: methods compared on the same task differ in architecture ({listed}), so their scores "
        "also reflect network size, not pretraining alone."
    )


def success_note(board: Leaderboard) -> str:
    """The sentence a report opens with when no evaluation of any run succeeded, else ``""``."""
    if board.any_success:
        return ""
    if board.score in NORMALISED_SCORES:
        return NO_SUCCESS_NORMALISED
    if not any(row.norm_runs for row in board.rows):
        return "No method succeeded at this budget, and no run carries expert baselines to rank methods by instead."
    return "No method succeeded at this budget."


def baselines_note(board: Leaderboard) -> str:
    """A sentence on the runs left out of the normalised scores, else ``""``."""
    total = sum(row.runs for row in board.rows)
    missing = board.runs_without_baselines
    if not missing:
        return ""
    if missing == total:
        return f"None of the {total} runs carries expert baselines, so their expert-normalised return is n/a."
    return (
        "Runs without usable expert baselines (older runs, or envs without a scripted expert) are left out of "
        f"the normalised scores: {missing} of {total}."
    )


def progress_figures(board: Leaderboard) -> list[tuple[str, str]]:
    """The figures that show progress when no evaluation succeeded, as ``(file stem, what it
    shows)``: the expert-normalised return curves (where runs carry baselines) and the return
    curves; empty when some run succeeded."""
    if board.any_success:
        return []
    figures = []
    if any(row.norm_runs for row in board.rows):
        figures += [
            ("curves", "expert-normalised return over all tasks"),
            ("normalised_per_task", "expert-normalised return per task"),
        ]
    return figures + [("returns_per_task", "return per task")]


def curves_note(board: Leaderboard, link: Callable[[str], str] = lambda stem: f"{stem}.png") -> str:
    """The sentence that sends the reader to :func:`progress_figures` when nothing succeeded,
    each figure named by ``link(stem)`` (a file name, a Markdown or HTML link), else ``""``."""
    figures = progress_figures(board)
    if not figures:
        return ""
    listed = "; ".join(f"{what} in {link(stem)}" for stem, what in figures)
    return f"The learning curves show which methods made progress: {listed}."


def tied_ranks(board: Leaderboard) -> dict[int, list[str]]:
    """Rank -> the methods that share it, for every rank held by more than one method."""
    by_rank: dict[int, list[str]] = defaultdict(list)
    for rank, row in zip(competition_ranks(board), board.rows):
        by_rank[rank].append(row.method)
    return {rank: methods for rank, methods in by_rank.items() if len(methods) > 1}


def tie_note(board: Leaderboard) -> str:
    """A sentence naming the methods that share a rank, else ``""``."""
    ties = tied_ranks(board)
    if not ties:
        return ""
    listed = [f"{_join(methods)} share rank {rank}" for rank, methods in ties.items()]
    return (
        f"Ties: {'; '.join(listed)}. Their {board.config.confidence:.0%} intervals of the {_statistic_name(board)} of the "
        f"{RANKED_BY[board.score]} overlap, so the data do not order them; they are listed by point estimate."
    )


def _statistic_name(board: Leaderboard) -> str:
    return "IQM" if board.statistic == "iqm" else "mean"


def single_run_methods(board: Leaderboard) -> list[str]:
    """Methods with one run per task: a bootstrap over one run has no spread, so their
    confidence intervals are degenerate."""
    return [row.method for row in board.rows if row.runs == len(row.tasks)]


def single_run_note(board: Leaderboard) -> str:
    """A sentence on the methods of :func:`single_run_methods`, else ``""``."""
    methods = single_run_methods(board)
    if not methods:
        return ""
    one = len(methods) == 1
    return (
        f"{_join(methods)} {'has' if one else 'have'} one run per task (n=1), so {'its' if one else 'their'} "
        "confidence intervals are degenerate and are left out of the table; run more seeds to get them."
    )


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def table_notes(board: Leaderboard) -> list[str]:
    """The sentences under the table: ties, one-run methods, missing baselines, warnings."""
    notes = (tie_note(board), single_run_note(board), baselines_note(board), budget_warning(board),
             architecture_warning(board))
    return [note for note in notes if note]


def report_notes(board: Leaderboard) -> list[str]:
    """Every sentence the report adds to its table: no success and where to look instead
    (these two open the report), then :func:`table_notes`."""
    return [note for note in (success_note(board), curves_note(board)) if note] + table_notes(board)


def _format_interval(interval: stats.Interval | None, single_run: bool = False) -> str:
    if interval is None:
        return "–"
    if single_run:
        return f"{interval.value:.3f} (n=1)"
    return f"{interval.value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _task_cell(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "–"
    success = f"{summary['final_mean']:.2f} ± {summary['final_std']:.2f}"
    normalised = (
        f"{summary['norm_final_mean']:.2f} ± {summary['norm_final_std']:.2f}" if summary["norm_runs"] else "n/a"
    )
    return f"success {success}, norm. {normalised} (n={summary['runs']})"


def _statistics(board: Leaderboard) -> tuple[str, ...]:
    """The aggregates the table shows: IQM and mean, or the mean alone when a method has fewer than
    :data:`lamp_eval.stats.MIN_IQM_RUNS` runs on a task (an IQM of so few trims nothing)."""
    return ("iqm", "mean") if board.statistic == "iqm" else ("mean",)


def _table_header(board: Leaderboard, escape: bool) -> list[str]:
    level = f"{board.config.confidence:.0%}"
    versus = f"P({'&gt;' if escape else '>'} {html.escape(board.config.baseline) if escape else board.config.baseline})"
    tasks = [html.escape(task) for task in board.tasks] if escape else list(board.tasks)
    names = {"iqm": "IQM", "mean": "mean"}
    columns = []
    for kind in ("success", "norm."):
        for form in ("final", "AUC"):
            for index, statistic in enumerate(_statistics(board)):
                ci = f" [{level} CI]" if index == 0 and form == "final" else ""
                columns.append(f"{kind} {form} {names[statistic]}{ci}")
        columns.append(f"{kind} {versus}")
    return ["rank", "method", "runs", *columns, *tasks]


def _table_cells(board: Leaderboard, rank: int, row: MethodSummary, method: str) -> list[str]:
    """One row's cells; a shared rank reads ``2 (tie)`` and a one-run method's estimates ``(n=1)``."""
    tied = any(row.method in methods for methods in tied_ranks(board).values())
    single = row.method in single_run_methods(board)
    cells = [f"{rank} (tie)" if tied else str(rank), method, str(row.runs)]
    for scores, improvement in ((("final", "auc"), row.improvement), (("norm-final", "norm-auc"), row.norm_improvement)):
        for score in scores:
            cells += [_format_interval(row.score_interval(score, statistic), single) for statistic in _statistics(board)]
        cells.append(_format_interval(improvement))
    return cells + [_task_cell(row.per_task.get(task)) for task in board.tasks]


def _method_explanation(board: Leaderboard) -> str:
    level = f"{board.config.confidence:.0%}"
    form = "final evaluation" if _time_form(board.score) == "final" else "area under the curve"
    fewer = "" if board.statistic == "iqm" else (
        f" A method has fewer than {stats.MIN_IQM_RUNS} runs on a task, where an IQM trims nothing, so the table gives means."
    )
    return (
        f"Ranked by the {_statistic_name(board)} of the {RANKED_BY[board.score]}; methods whose intervals overlap share "
        f"a rank.{fewer} Expert-normalised return: the mean dense return "
        "on the evaluation seeds, 0 for a uniform random policy and 1 for the scripted expert on the same seeds. "
        f"Intervals: {level} stratified bootstrap over runs within tasks ({board.config.reps} replicates). "
        f"P(> {board.config.baseline}) compares the {form}. Per-task cells: mean ± std over seeds of the final "
        "success rate and of the final normalised return."
    )


def leaderboard_records(board: Leaderboard) -> list[dict[str, Any]]:
    """One flat dict per row (rank order), the columns of ``leaderboard.csv``."""
    records = []
    columns = {
        "final_iqm": "final_iqm", "final_mean": "final_mean", "auc_iqm": "auc_iqm", "auc_mean": "auc_mean",
        "improvement": f"p_improve_vs_{board.config.baseline}",
        "norm_final_iqm": "norm_final_iqm", "norm_final_mean": "norm_final_mean",
        "norm_auc_iqm": "norm_auc_iqm", "norm_auc_mean": "norm_auc_mean",
        "norm_improvement": f"norm_p_improve_vs_{board.config.baseline}",
    }
    for rank, row in zip(competition_ranks(board), board.rows):
        record: dict[str, Any] = {
            "rank": rank, "method": row.method, "runs": row.runs, "norm_runs": row.norm_runs, "tasks": len(row.tasks),
        }
        record["budget_steps"] = "/".join(str(step) for step in row.budget)
        for name, column in columns.items():
            interval = getattr(row, name)
            record[column] = "" if interval is None else round(interval.value, 6)
            record[f"{column}_low"] = "" if interval is None else round(interval.low, 6)
            record[f"{column}_high"] = "" if interval is None else round(interval.high, 6)
        for task in board.tasks:
            summary = row.per_task.get(task)
            record[f"final:{task}"] = "" if summary is None else round(summary["final_mean"], 6)
        for task in board.tasks:
            summary = row.per_task.get(task)
            normalised = _csv_number(summary["norm_final_mean"]) if summary else ""
            record[f"norm-final:{task}"] = normalised
        records.append(record)
    return records


def markdown_table(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the no-success sentence (if any), the table (success and
    expert-normalised return, IQM and mean with CIs, per-task means) and notes and warnings.

    When nothing succeeded, the opening sentence links the normalised-return and return curves
    (files beside ``leaderboard.md``)."""
    header = _table_header(board, escape=False)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in zip(competition_ranks(board), board.rows):
        lines.append("| " + " | ".join(_table_cells(board, rank, row, f"`{row.method}`")) + " |")
    pointer = curves_note(board, lambda stem: f"[{stem}.png]({stem}.png)")
    opening = " ".join(note for note in (success_note(board), pointer) if note)
    text = (f"{opening}\n\n" if opening else "") + "\n".join(lines) + "\n\n" + _method_explanation(board) + "\n"
    return text + "".join(f"\n**{note}**\n" for note in table_notes(board))


def _plot_curves(grouped: dict[str, dict[str, list[Run]]], config: ReportConfig, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    colours = {method: f"C{index % 10}" for index, method in enumerate(grouped)}
    normalised = {method: normalisable_runs(task_runs) for method, task_runs in grouped.items()}
    normalised = {method: task_runs for method, task_runs in normalised.items() if task_runs}
    panels = [("success", grouped)] + ([("normalised", normalised)] if normalised else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for axis, (metric, by_method) in zip(axes[0], panels):
        for method, task_runs in by_method.items():
            steps, value, low, high = method_curves(task_runs, config, metric)
            axis.plot(steps, value, label=method, color=colours[method])
            axis.fill_between(steps, low, high, alpha=0.2, color=colours[method])
        axis.set_xlabel("env steps")
        axis.set_ylabel(f"{CURVE_METRICS[metric]} (IQM)")
        if metric == "success":
            axis.set_ylim(-0.02, 1.02)
        else:
            axis.axhline(0.0, color="grey", linewidth=0.8, linestyle=":")
            axis.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        axis.set_title(f"All tasks, {CURVE_METRICS[metric]}, {config.confidence:.0%} CI")
        axis.legend(fontsize="small")
    figure.tight_layout()
    written += _save_figure(figure, out / "curves")
    plt.close(figure)

    tasks = sorted({task for task_runs in grouped.values() for task in task_runs})
    written += _plot_per_task(grouped, tasks, "success", config, colours, out / "curves_per_task")
    if normalised:
        normalised_tasks = sorted({task for task_runs in normalised.values() for task in task_runs})
        written += _plot_per_task(normalised, normalised_tasks, "normalised", config, colours, out / "normalised_per_task")
    written += _plot_per_task(grouped, tasks, "return", config, colours, out / "returns_per_task")
    return written


def _plot_per_task(
    grouped: dict[str, dict[str, list[Run]]],
    tasks: list[str],
    metric: str,
    config: ReportConfig,
    colours: dict[str, str],
    stem: Path,
) -> list[Path]:
    import matplotlib.pyplot as plt

    columns = min(3, len(tasks))
    rows = (len(tasks) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for index, task in enumerate(tasks):
        axis = axes[index // columns][index % columns]
        for method, task_runs in grouped.items():
            if task in task_runs:
                steps, value, low, high = method_curves({task: task_runs[task]}, config, metric)
                axis.plot(steps, value, label=method, color=colours[method])
                axis.fill_between(steps, low, high, alpha=0.2, color=colours[method])
        axis.set_title(task)
        if metric == "success":
            axis.set_ylim(-0.02, 1.02)
        axis.set_xlabel("env steps")
    for index in range(len(tasks), rows * columns):
        axes[index // columns][index % columns].axis("off")
    axes[0][0].set_ylabel(f"{CURVE_METRICS[metric]} (IQM)")
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    written = _save_figure(figure, stem)
    plt.close(figure)
    return written


def _save_figure(figure: Any, stem: Path) -> list[Path]:
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format=suffix[1:], dpi=110)
        paths.append(path)
    return paths


def _copy_gifs(grouped: dict[str, dict[str, list[Run]]], out: Path) -> dict[tuple[str, str], Path]:
    """One rollout GIF per task and method, from its lowest seed that saved one, named
    ``gifs/<task>__<method>__seed-<k>.gif`` so the file says which run it shows."""
    copied = {}
    for method, task_runs in grouped.items():
        for task, runs in task_runs.items():
            run = next((run for run in runs if run.gif is not None), None)
            if run is None:
                continue
            target = out / "gifs" / f"{safe_name(task)}__{safe_name(method)}__seed-{run.seed}.gif"
            with atomic_path(target) as temporary:
                shutil.copyfile(run.gif, temporary)
            copied[(task, method)] = target
    return copied


def _gif_caption(task: str, method: str, path: Path) -> str:
    """``task · method · seed k`` of a GIF :func:`_copy_gifs` wrote."""
    return f"{task} · {method} · seed {path.stem.rpartition('__seed-')[2]}"


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def about_block(paths: list[str | os.PathLike], runs: list[Run], record: dict[str, Any]) -> dict[str, str]:
    """The provenance every report states: when, with which versions, from which run folders.

    Args:
        paths: The runs folders the report was asked for.
        runs: The finished runs found under them.
        record: A :func:`lamp_data.provenance.provenance` record.
    """
    return {
        "runs": f"{len(runs)} finished runs from " + ", ".join(str(Path(path).resolve()) for path in paths),
        "generated": str(record["created"]),
        "versions": ", ".join(f"{name} {version}" for name, version in record["versions"].items()),
        "platform": str(record["platform"]),
    }


def html_page(
    board: Leaderboard,
    curves: list[Path],
    gifs: dict[tuple[str, str], Path],
    about: Mapping[str, str] | None = None,
) -> str:
    """A self-contained HTML page: table, notes, curves, rollout GIFs and an "about this report"
    block (label -> text, e.g. budget, preset, versions), images inline as base64."""
    level = f"{board.config.confidence:.0%}"
    head = _table_header(board, escape=True)
    body_rows = []
    for rank, row in zip(competition_ranks(board), board.rows):
        cells = _table_cells(board, rank, row, f"<code>{html.escape(row.method)}</code>")
        body_rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    table = (
        "<table><thead><tr>" + "".join(f"<th>{cell}</th>" for cell in head) + "</tr></thead><tbody>"
        + "".join(body_rows) + "</tbody></table>"
    )
    images = "".join(
        f'<figure id="{html.escape(path.stem)}"><img alt="{html.escape(path.stem)}" src="{_data_uri(path, "image/png")}"></figure>'
        for path in curves if path.suffix == ".png"
    )
    gif_rows = []
    methods = [row.method for row in board.rows]
    for task in board.tasks:
        cells = []
        for method in methods:
            path = gifs.get((task, method))
            caption = html.escape(_gif_caption(task, method, path)) if path else ""
            cells.append(
                f'<td><figure><img class="gif" alt="{caption}" src="{_data_uri(path, "image/gif")}">'
                f"<figcaption>{caption}</figcaption></figure></td>"
                if path else "<td>–</td>"
            )
        gif_rows.append(f"<tr><th>{html.escape(task)}</th>{''.join(cells)}</tr>")
    gif_table = (
        "<table><thead><tr><th>task</th>" + "".join(f"<th><code>{html.escape(m)}</code></th>" for m in methods)
        + "</tr></thead><tbody>" + "".join(gif_rows) + "</tbody></table>"
    ) if gifs else "<p>No rollout GIFs were saved with these runs.</p>"
    opening = success_note(board)
    pointer = curves_note(board, lambda stem: f'<a href="#{stem}">{stem}</a>')
    notes = "".join(f"<p><strong>{html.escape(note)}</strong></p>\n" for note in table_notes(board))
    about_section = ""
    if about:
        about_rows = "".join(
            f"<tr><th>{html.escape(str(label))}</th><td>{html.escape(str(text))}</td></tr>" for label, text in about.items()
        )
        about_section = f'<h2>About this report</h2>\n<table class="about"><tbody>{about_rows}</tbody></table>'
    form = "final evaluation" if _time_form(board.score) == "final" else "area under the curve"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LAMP finetuning leaderboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; display: block; max-width: 100%; overflow-x: auto; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; font-size: 0.9em; }}
th {{ background: #f3f3f3; }}
table.about th {{ width: 10em; }}
figure {{ display: inline-block; margin: 0.5em; max-width: calc(100% - 1em); }}
img {{ max-width: 100%; }}
img.gif {{ width: 128px; image-rendering: pixelated; }}
</style></head><body>
<h1>Finetuning on held-out tasks</h1>
{f'<p><strong>{html.escape(opening)}</strong> {pointer}</p>' if opening else ''}
<p>Ranked by the {_statistic_name(board)} of the {RANKED_BY[board.score]} over all runs of all tasks (methods whose
intervals overlap share a rank); intervals are {level} stratified
bootstrap confidence intervals ({board.config.reps} replicates, runs resampled within tasks).
Expert-normalised return is the mean dense return on the evaluation seeds, scaled so that a uniform random
policy scores 0 and the task's scripted expert scores 1 on the same seeds.
P(&gt; {html.escape(board.config.baseline)}) is the probability that a run of the method beats a run of
{html.escape(board.config.baseline)} on a random task (Mann–Whitney, averaged over tasks), on the {form}.</p>
{table}
{notes}
{about_section}
<h2>Sample efficiency</h2>
{images}
<h2>Evaluation rollouts</h2>
{gif_table}
</body></html>
"""


def leaderboard(
    paths: list[str | os.PathLike],
    out: str | os.PathLike,
    config: ReportConfig = ReportConfig(),
    about: Mapping[str, str] | None = None,
) -> ReportResult:
    """Read every finished run under ``paths`` and write the full report into ``out``.

    Args:
        paths: Runs folders (searched recursively) or single run folders.
        out: Report folder.
        config: How the leaderboard is computed.
        about: Label -> text shown first in the page's "about this report" block (the demo
            states its budget, preset and seeds here); versions, run folders and the time of
            generation follow in every report.

    Raises:
        LampError: when a path is missing or holds no finished run.
    """
    runs = find_runs(list(paths))
    board = build_leaderboard(runs, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grouped = group_runs(runs)
    files: list[Path] = []
    record = provenance()
    given = dict(about or {})
    about = {**given, **{label: text for label, text in about_block(list(paths), runs, record).items() if label not in given}}

    records = leaderboard_records(board)
    with atomic_open(out / "leaderboard.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    files.append(out / "leaderboard.csv")
    with atomic_open(out / "per_task.csv") as handle:
        writer = csv.writer(handle)
        writer.writerow([
            "method", "task", "runs", "final_mean", "final_std", "auc_mean",
            "norm_runs", "norm_final_mean", "norm_final_std", "norm_auc_mean", "seeds",
        ])
        for method, task_runs in grouped.items():
            row = next(row for row in board.rows if row.method == method)
            for task, task_run_list in task_runs.items():
                summary = row.per_task[task]
                writer.writerow([
                    method, task, summary["runs"],
                    *(_csv_number(summary[key]) for key in ("final_mean", "final_std", "auc_mean")),
                    summary["norm_runs"],
                    *(_csv_number(summary[key]) for key in ("norm_final_mean", "norm_final_std", "norm_auc_mean")),
                    " ".join(str(run.seed) for run in task_run_list),
                ])
    files.append(out / "per_task.csv")
    with atomic_open(out / "leaderboard.md") as handle:
        handle.write(markdown_table(board))
    files.append(out / "leaderboard.md")

    curves = _plot_curves(grouped, config, out)
    files += curves
    gifs = _copy_gifs(grouped, out) if config.gifs else {}
    files += list(gifs.values())

    with atomic_open(out / "leaderboard.html") as handle:
        handle.write(html_page(board, curves, gifs, about))
    files.append(out / "leaderboard.html")
    atomic_write_json(
        out / "leaderboard.json",
        {
            "format_version": REPORT_FORMAT_VERSION,
            "config": asdict(config),
            "score": board.score,
            "rows": [_row_json(row) for row in board.rows],
            "tasks": list(board.tasks),
            "notes": report_notes(board),
            "about": about,
            "runs": [str(run.path) for run in runs],
            "provenance": record,
        },
    )
    files.append(out / "leaderboard.json")
    return ReportResult(leaderboard=board, out=out, files=tuple(files))


def _csv_number(value: float) -> float | str:
    return round(value, 6) if math.isfinite(value) else ""


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def _row_json(row: MethodSummary) -> dict[str, Any]:
    """A row as strict JSON (NaN, for a normalised value without baselines, becomes null)."""
    return _finite_or_none(asdict(row))
