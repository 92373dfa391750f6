"""The leaderboard as the console shows it: what it is ranked by, a table that fits the terminal
(80 columns when output is a file or a pipe), its notes (one paragraph each, which the terminal
wraps), and where the full table is.

``leaderboard.md`` holds every column (IQM and mean, final and AUC, per-task cells); the console
gets rank, method, runs, and the ranked form (final or AUC) of the success rate and the
expert-normalised return with their CIs, then the probabilities of improvement if they fit.
"""

from __future__ import annotations

from pathlib import Path

from lamp_data.tables import Column, console_width, fit_table
from lamp_eval.report.notes import report_notes, single_run_methods
from lamp_eval.report.scores import RANKED_BY, Leaderboard, competition_ranks


def _interval(interval, single: bool = False) -> str:
    if interval is None:
        return "–"
    return f"{interval.value:.2f} (n=1)" if single else f"{interval.value:.2f} [{interval.low:.2f}, {interval.high:.2f}]"


def leaderboard_lines(board: Leaderboard, full_table: str | Path | None = None, width: int | None = None) -> list[str]:
    """The leaderboard's console lines: what it is ranked by, the table (each line at most
    ``width`` characters), its notes, and (given ``full_table``, the path of ``leaderboard.md``)
    where every column is.

    Args:
        board: A computed leaderboard.
        full_table: The Markdown file with the full table, named in the last line.
        width: Characters per line (default: the terminal's, 80 when piped).
    """
    width = width or console_width()
    statistic = "IQM" if board.statistic == "iqm" else "mean"
    auc = board.score in ("auc", "norm-auc")
    form = "AUC" if auc else "final"
    baseline = board.config.baseline
    columns = [
        Column("rank", align=">"), Column("method", wrap=True, min_width=16), Column("runs", align=">"),
        Column(f"success {form}", align=">"), Column(f"norm. return {form}", align=">"),
        Column(f"P(>{baseline})", align=">", priority=2), Column(f"P(>{baseline}) norm.", align=">", priority=1),
    ]
    single = set(single_run_methods(board))
    rows = [
        (str(rank), row.method, str(row.runs),
         _interval(row.score_interval("auc" if auc else "final", board.statistic), row.method in single),
         _interval(row.score_interval("norm-auc" if auc else "norm-final", board.statistic), row.method in single),
         _interval(row.improvement), _interval(row.norm_improvement))
        for rank, row in zip(competition_ranks(board), board.rows)
    ]
    table, dropped = fit_table(columns, rows, width)
    level = f"{board.config.confidence:.0%}"
    heading = (
        f"Ranked by the {statistic} of the {RANKED_BY[board.score]} over runs; cells: {statistic} [{level} stratified-bootstrap "
        "CI]; normalised return: 0 random policy, 1 scripted expert; equal ranks: overlapping intervals."
    )
    lines = [heading, *table, *report_notes(board)]
    if full_table is not None:
        left_out = f" ({', '.join(dropped)} left out here)" if dropped else ""
        lines.append(f"Every column (IQM and mean, final and AUC, per task){left_out}: {full_table}")
    return lines
