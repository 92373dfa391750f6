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

import csv
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from lamp_data.atomic import atomic_open, atomic_write_json
from lamp_data.provenance import provenance
from lamp_data.schema import REPORT_FORMAT_VERSION
from lamp_eval.runs import find_runs
from lamp_eval.report.html import about_block, copy_gifs, html_page
from lamp_eval.report.notes import report_notes
from lamp_eval.report.plots import plot_curves
from lamp_eval.report.scores import AUTO_SCORE, SCORES, ReportConfig, ReportResult, build_leaderboard, group_runs
from lamp_eval.report.tables import csv_number, leaderboard_records, markdown_table, row_json

__all__ = ["AUTO_SCORE", "SCORES", "ReportConfig", "ReportResult", "build_leaderboard", "leaderboard", "markdown_table"]


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
                    *(csv_number(summary[key]) for key in ("final_mean", "final_std", "auc_mean")),
                    summary["norm_runs"],
                    *(csv_number(summary[key]) for key in ("norm_final_mean", "norm_final_std", "norm_auc_mean")),
                    " ".join(str(run.seed) for run in task_run_list),
                ])
    files.append(out / "per_task.csv")
    with atomic_open(out / "leaderboard.md") as handle:
        handle.write(markdown_table(board))
    files.append(out / "leaderboard.md")

    curves = plot_curves(grouped, config, out)
    files += curves
    gifs = copy_gifs(grouped, out) if config.gifs else {}
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
            "rows": [row_json(row) for row in board.rows],
            "tasks": list(board.tasks),
            "notes": report_notes(board),
            "about": about,
            "runs": [str(run.path) for run in runs],
            "provenance": record,
        },
    )
    files.append(out / "leaderboard.json")
    return ReportResult(leaderboard=board, out=out, files=tuple(files))
