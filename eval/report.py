"""Leaderboards from finetuning runs: tables, learning curves, rollout GIFs and one HTML page.

Which number scores a run:

* ``final`` — the success rate of the run's last evaluation (after the whole step budget);
* ``auc`` — the area under the run's success-rate curve divided by its step range
  (trapezoids over the evaluations), in [0, 1]: it rewards learning early, i.e. sample
  efficiency, and is less noisy than one evaluation.

For each method the report gives the IQM and the mean over every run of every task with 95 %
stratified-bootstrap confidence intervals (runs resampled within each task), the probability of
improvement over the baseline method (``scratch``) with its CI, per-task means, and curves of
the IQM success rate (with CI bands) against env steps. Methods are ranked by the IQM of the
chosen score.

Files written into the report folder: ``leaderboard.{csv,md,html,json}``, ``per_task.csv``,
``curves.{png,svg}`` (all tasks pooled), ``curves_per_task.{png,svg}``, ``returns_per_task.{png,svg}``
(the mean dense return, informative while success rates are still zero), and
``gifs/<task>__<method>.gif`` (the lowest seed's last evaluation). ``leaderboard.html`` embeds
every image as base64, so the page can be mailed or published alone.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.atomic import atomic_open, atomic_path, atomic_write_json
from lamp_data.errors import LampError
from lamp_data.provenance import provenance
from lamp_data.schema import REPORT_FORMAT_VERSION
from lamp_eval import stats
from lamp_eval.runs import Run, find_runs, safe_name

SCORES = ("final", "auc")
"""Ways to turn one run into one number (see the module docstring)."""


@dataclass(frozen=True)
class ReportConfig:
    """How the leaderboard is computed."""

    baseline: str = "scratch"
    """Method that probability of improvement is measured against."""
    score: str = "final"
    """Ranking score: ``final`` or ``auc``."""
    reps: int = 2000
    """Bootstrap replicates."""
    confidence: float = 0.95
    """Coverage of every confidence interval."""
    seed: int = 0
    """Seed of the bootstrap."""
    gifs: bool = True
    """Copy and embed the rollout GIFs."""

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise LampError(f"unknown score '{self.score}' (known: {', '.join(SCORES)})")
        if self.reps < 100:
            raise LampError(f"use at least 100 bootstrap replicates, got {self.reps}")


def run_score(run: Run, score: str) -> float:
    """One number for a run: its final success rate or its normalised area under the curve."""
    if score == "final":
        return float(run.success_rates[-1])
    if score == "auc":
        return stats.area_under_curve(np.array(run.steps), np.array(run.success_rates))
    raise LampError(f"unknown score '{score}' (known: {', '.join(SCORES)})")


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
    """P(this method beats the baseline) on the ranking score; None for the baseline or without one."""
    per_task: dict[str, dict[str, float]] = field(default_factory=dict)
    """task -> {"runs", "final_mean", "final_std", "auc_mean"}."""

    def ranking_value(self, score: str) -> float:
        """The IQM the leaderboard sorts on."""
        return (self.final_iqm if score == "final" else self.auc_iqm).value


@dataclass(frozen=True)
class Leaderboard:
    """Rows in rank order plus what they were computed from."""

    config: ReportConfig
    """How it was computed."""
    rows: tuple[MethodSummary, ...]
    """Best first."""
    tasks: tuple[str, ...]
    """Every task in the runs."""


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
    """Rank of each row, best first; rows with equal ranking values share a rank (1, 1, 3)."""
    values = [row.ranking_value(board.config.score) for row in board.rows]
    return [1 + sum(other > value for other in values) for value in values]


def group_runs(runs: list[Run]) -> dict[str, dict[str, list[Run]]]:
    """method -> task -> runs (sorted by seed)."""
    grouped: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        grouped[run.method][run.task].append(run)
    return {
        method: {task: sorted(task_runs, key=lambda run: run.seed) for task, task_runs in sorted(tasks.items())}
        for method, tasks in sorted(grouped.items())
    }


def _scores(task_runs: dict[str, list[Run]], score: str) -> dict[str, np.ndarray]:
    return {task: np.array([run_score(run, score) for run in runs]) for task, runs in task_runs.items()}


def build_leaderboard(runs: list[Run], config: ReportConfig = ReportConfig()) -> Leaderboard:
    """Compute every row of the leaderboard from finished runs."""
    if not runs:
        raise LampError("no runs to make a leaderboard from")
    grouped = group_runs(runs)
    ci = {"reps": config.reps, "confidence": config.confidence, "seed": config.seed}
    baseline = _scores(grouped[config.baseline], config.score) if config.baseline in grouped else None
    rows = []
    for method, task_runs in grouped.items():
        final = _scores(task_runs, "final")
        auc = _scores(task_runs, "auc")
        improvement = None
        if baseline is not None and method != config.baseline:
            mine = final if config.score == "final" else auc
            if set(mine) & set(baseline):
                improvement = stats.probability_of_improvement_ci(mine, baseline, **ci)
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
                    }
                    for task in task_runs
                },
            )
        )
    rows.sort(key=lambda row: (-row.ranking_value(config.score), row.method))
    tasks = tuple(sorted({run.task for run in runs}))
    return Leaderboard(config=config, rows=tuple(rows), tasks=tasks)


def curve_grid(runs: list[Run]) -> np.ndarray:
    """Common evaluation steps of ``runs``: every step any run evaluated at, up to the
    shortest run's last step (so no run's curve is extended past its budget)."""
    last = min(run.steps[-1] for run in runs)
    return np.array(sorted({step for run in runs for step in run.steps if step <= last}))


CURVE_METRICS = {"success": "success rate", "return": "return"}
"""What a curve can show: the evaluations' success rate, or their mean dense return."""


def run_curve_on(run: Run, grid: np.ndarray, metric: str = "success") -> np.ndarray:
    """The run's ``metric`` at each grid step: its latest evaluation at or before the step."""
    steps = np.array(run.steps)
    rates = np.array(run.success_rates if metric == "success" else run.returns)
    index = np.clip(np.searchsorted(steps, grid, side="right") - 1, 0, len(steps) - 1)
    return rates[index]


def method_curves(
    task_runs: dict[str, list[Run]], config: ReportConfig, metric: str = "success"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IQM curve of ``metric`` with CI band of one method: ``(steps, value, low, high)``."""
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


def _format_interval(interval: stats.Interval | None) -> str:
    if interval is None:
        return "–"
    return f"{interval.value:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def leaderboard_records(board: Leaderboard) -> list[dict[str, Any]]:
    """One flat dict per row (rank order), the columns of ``leaderboard.csv``."""
    records = []
    for rank, row in zip(competition_ranks(board), board.rows):
        record: dict[str, Any] = {"rank": rank, "method": row.method, "runs": row.runs, "tasks": len(row.tasks)}
        record["budget_steps"] = "/".join(str(step) for step in row.budget)
        for name in ("final_iqm", "final_mean", "auc_iqm", "auc_mean", "improvement"):
            interval = getattr(row, name)
            key = f"p_improve_vs_{board.config.baseline}" if name == "improvement" else name
            record[key] = "" if interval is None else round(interval.value, 6)
            record[f"{key}_low"] = "" if interval is None else round(interval.low, 6)
            record[f"{key}_high"] = "" if interval is None else round(interval.high, 6)
        for task in board.tasks:
            summary = row.per_task.get(task)
            record[f"final:{task}"] = "" if summary is None else round(summary["final_mean"], 6)
        records.append(record)
    return records


def markdown_table(board: Leaderboard) -> str:
    """The leaderboard as a Markdown table (IQM and mean with 95 % CIs, per-task means)."""
    level = f"{board.config.confidence:.0%}"
    header = [
        "rank", "method", "runs", f"final IQM [{level} CI]", "final mean", "AUC IQM",
        f"P(> {board.config.baseline})", *board.tasks,
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in zip(competition_ranks(board), board.rows):
        cells = [
            str(rank), f"`{row.method}`", str(row.runs), _format_interval(row.final_iqm),
            _format_interval(row.final_mean), _format_interval(row.auc_iqm), _format_interval(row.improvement),
        ]
        for task in board.tasks:
            summary = row.per_task.get(task)
            cells.append("–" if summary is None else f"{summary['final_mean']:.2f} ± {summary['final_std']:.2f} (n={summary['runs']})")
        lines.append("| " + " | ".join(cells) + " |")
    ranked_by = "final success rate" if board.config.score == "final" else "area under the success curve"
    note = (
        f"\nRanked by the IQM of the {ranked_by}. Intervals: {level} stratified bootstrap over runs within "
        f"tasks ({board.config.reps} replicates). Per-task cells: mean ± std of the final success rate over seeds.\n"
    )
    warning = budget_warning(board)
    return "\n".join(lines) + "\n" + note + (f"\n**{warning}**\n" if warning else "")


def _plot_curves(grouped: dict[str, dict[str, list[Run]]], config: ReportConfig, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    figure, axes = plt.subplots(figsize=(6, 4))
    for method, task_runs in grouped.items():
        steps, value, low, high = method_curves(task_runs, config)
        axes.plot(steps, value, label=method)
        axes.fill_between(steps, low, high, alpha=0.2)
    axes.set_xlabel("env steps")
    axes.set_ylabel("success rate (IQM)")
    axes.set_ylim(-0.02, 1.02)
    axes.set_title(f"All tasks, {config.confidence:.0%} CI")
    axes.legend(fontsize="small")
    figure.tight_layout()
    written += _save_figure(figure, out / "curves")
    plt.close(figure)

    tasks = sorted({task for task_runs in grouped.values() for task in task_runs})
    for metric, stem in (("success", "curves_per_task"), ("return", "returns_per_task")):
        written += _plot_per_task(grouped, tasks, metric, config, out / stem)
    return written


def _plot_per_task(grouped: dict[str, dict[str, list[Run]]], tasks: list[str], metric: str, config: ReportConfig, stem: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    columns = min(3, len(tasks))
    rows = (len(tasks) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for index, task in enumerate(tasks):
        axis = axes[index // columns][index % columns]
        for method, task_runs in grouped.items():
            if task in task_runs:
                steps, value, low, high = method_curves({task: task_runs[task]}, config, metric)
                axis.plot(steps, value, label=method)
                axis.fill_between(steps, low, high, alpha=0.2)
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
    copied = {}
    for method, task_runs in grouped.items():
        for task, runs in task_runs.items():
            source = next((run.gif for run in runs if run.gif is not None), None)
            if source is None:
                continue
            target = out / "gifs" / f"{safe_name(task)}__{safe_name(method)}.gif"
            with atomic_path(target) as temporary:
                shutil.copyfile(source, temporary)
            copied[(task, method)] = target
    return copied


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def html_page(board: Leaderboard, curves: list[Path], gifs: dict[tuple[str, str], Path]) -> str:
    """A self-contained HTML page: table, curves and rollout GIFs, images inline as base64."""
    level = f"{board.config.confidence:.0%}"
    head = [
        "rank", "method", "runs", f"final IQM [{level} CI]", "final mean", "AUC IQM", "AUC mean",
        f"P(&gt; {html.escape(board.config.baseline)})", *[html.escape(task) for task in board.tasks],
    ]
    body_rows = []
    for rank, row in zip(competition_ranks(board), board.rows):
        cells = [
            str(rank), f"<code>{html.escape(row.method)}</code>", str(row.runs),
            _format_interval(row.final_iqm), _format_interval(row.final_mean),
            _format_interval(row.auc_iqm), _format_interval(row.auc_mean), _format_interval(row.improvement),
        ]
        for task in board.tasks:
            summary = row.per_task.get(task)
            cells.append("–" if summary is None else f"{summary['final_mean']:.2f} ± {summary['final_std']:.2f} (n={summary['runs']})")
        body_rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    table = (
        "<table><thead><tr>" + "".join(f"<th>{cell}</th>" for cell in head) + "</tr></thead><tbody>"
        + "".join(body_rows) + "</tbody></table>"
    )
    images = "".join(
        f'<figure><img alt="{html.escape(path.stem)}" src="{_data_uri(path, "image/png")}"></figure>'
        for path in curves if path.suffix == ".png"
    )
    gif_rows = []
    methods = [row.method for row in board.rows]
    for task in board.tasks:
        cells = []
        for method in methods:
            path = gifs.get((task, method))
            cells.append(
                f'<td><img class="gif" alt="{html.escape(task)} {html.escape(method)}" src="{_data_uri(path, "image/gif")}"></td>'
                if path else "<td>–</td>"
            )
        gif_rows.append(f"<tr><th>{html.escape(task)}</th>{''.join(cells)}</tr>")
    gif_table = (
        "<table><thead><tr><th>task</th>" + "".join(f"<th><code>{html.escape(m)}</code></th>" for m in methods)
        + "</tr></thead><tbody>" + "".join(gif_rows) + "</tbody></table>"
    ) if gifs else "<p>No rollout GIFs were saved with these runs.</p>"
    ranked_by = "final success rate" if board.config.score == "final" else "area under the success curve"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LAMP finetuning leaderboard</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; font-size: 0.9em; }}
th {{ background: #f3f3f3; }}
figure {{ display: inline-block; margin: 0.5em; }}
img {{ max-width: 100%; }}
img.gif {{ width: 128px; image-rendering: pixelated; }}
</style></head><body>
<h1>Finetuning on held-out tasks</h1>
<p>Ranked by the IQM of the {ranked_by} over all runs of all tasks; intervals are {level} stratified
bootstrap confidence intervals ({board.config.reps} replicates, runs resampled within tasks).
P(&gt; {html.escape(board.config.baseline)}) is the probability that a run of the method beats a run of
{html.escape(board.config.baseline)} on a random task (Mann–Whitney, averaged over tasks).</p>
{table}
{f'<p><strong>{html.escape(budget_warning(board))}</strong></p>' if budget_warning(board) else ''}
<h2>Sample efficiency</h2>
{images}
<h2>Evaluation rollouts</h2>
{gif_table}
</body></html>
"""


def leaderboard(paths: list[str | os.PathLike], out: str | os.PathLike, config: ReportConfig = ReportConfig()) -> ReportResult:
    """Read every finished run under ``paths`` and write the full report into ``out``.

    Raises:
        LampError: when a path is missing or holds no finished run.
    """
    runs = find_runs(list(paths))
    board = build_leaderboard(runs, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grouped = group_runs(runs)
    files: list[Path] = []

    records = leaderboard_records(board)
    with atomic_open(out / "leaderboard.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    files.append(out / "leaderboard.csv")
    with atomic_open(out / "per_task.csv") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "task", "runs", "final_mean", "final_std", "auc_mean", "seeds"])
        for method, task_runs in grouped.items():
            row = next(row for row in board.rows if row.method == method)
            for task, task_run_list in task_runs.items():
                summary = row.per_task[task]
                writer.writerow([
                    method, task, summary["runs"], round(summary["final_mean"], 6), round(summary["final_std"], 6),
                    round(summary["auc_mean"], 6), " ".join(str(run.seed) for run in task_run_list),
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
        handle.write(html_page(board, curves, gifs))
    files.append(out / "leaderboard.html")
    atomic_write_json(
        out / "leaderboard.json",
        {
            "format_version": REPORT_FORMAT_VERSION,
            "config": asdict(config),
            "rows": [_row_json(row) for row in board.rows],
            "tasks": list(board.tasks),
            "runs": [str(run.path) for run in runs],
            "provenance": provenance(),
        },
    )
    files.append(out / "leaderboard.json")
    return ReportResult(leaderboard=board, out=out, files=tuple(files))


def _row_json(row: MethodSummary) -> dict[str, Any]:
    value = asdict(row)
    value["tasks"] = list(row.tasks)
    value["budget"] = list(row.budget)
    return json.loads(json.dumps(value))
