"""The leaderboard as table rows: Markdown, CSV records and strict JSON."""

from __future__ import annotations

import html
import math
from dataclasses import asdict
from typing import Any

from lamp_eval import stats
from lamp_eval.report.notes import curves_note, single_run_methods, statistic_name, success_note, table_notes, tied_ranks
from lamp_eval.report.scores import Leaderboard, MethodSummary, RANKED_BY, competition_ranks, time_form


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


def table_header(board: Leaderboard, escape: bool) -> list[str]:
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


def table_cells(board: Leaderboard, rank: int, row: MethodSummary, method: str) -> list[str]:
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
    form = "final evaluation" if time_form(board.score) == "final" else "area under the curve"
    fewer = "" if board.statistic == "iqm" else (
        f" A method has fewer than {stats.MIN_IQM_RUNS} runs on a task, where an IQM trims nothing, so the table gives means."
    )
    return (
        f"Ranked by the {statistic_name(board)} of the {RANKED_BY[board.score]}; methods whose intervals overlap share "
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
            normalised = csv_number(summary["norm_final_mean"]) if summary else ""
            record[f"norm-final:{task}"] = normalised
        records.append(record)
    return records


def markdown_table(board: Leaderboard) -> str:
    """The leaderboard as Markdown: the no-success sentence (if any), the table (success and
    expert-normalised return, IQM and mean with CIs, per-task means) and notes and warnings.

    When nothing succeeded, the opening sentence links the normalised-return and return curves
    (files beside ``leaderboard.md``)."""
    header = table_header(board, escape=False)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, row in zip(competition_ranks(board), board.rows):
        lines.append("| " + " | ".join(table_cells(board, rank, row, f"`{row.method}`")) + " |")
    pointer = curves_note(board, lambda stem: f"[{stem}.png]({stem}.png)")
    opening = " ".join(note for note in (success_note(board), pointer) if note)
    text = (f"{opening}\n\n" if opening else "") + "\n".join(lines) + "\n\n" + _method_explanation(board) + "\n"
    return text + "".join(f"\n**{note}**\n" for note in table_notes(board))


def csv_number(value: float) -> float | str:
    return round(value, 6) if math.isfinite(value) else ""


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def row_json(row: MethodSummary) -> dict[str, Any]:
    """A row as strict JSON (NaN, for a normalised value without baselines, becomes null)."""
    return _finite_or_none(asdict(row))
