"""Learning curves with bootstrap CI bands, pooled and per task (PNG and SVG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lamp_data.atomic import atomic_path
from lamp_eval.runs import Run
from lamp_eval.report.scores import CURVE_METRICS, ReportConfig, method_curves, normalisable_runs


def plot_curves(grouped: dict[str, dict[str, list[Run]]], config: ReportConfig, out: Path) -> list[Path]:
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
