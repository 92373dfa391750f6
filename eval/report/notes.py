"""The sentences a report adds to its tables: budget and network warnings, ties, the statistic used, curves to read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from lamp_eval.report.scores import (
    NO_SUCCESS_NORMALISED, NORMALISED_SCORES, RANKED_BY, Leaderboard, competition_ranks,
)


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
        f"Ties: {'; '.join(listed)}. Their {board.config.confidence:.0%} intervals of the {statistic_name(board)} of the "
        f"{RANKED_BY[board.score]} overlap, so the data do not order them; they are listed by point estimate."
    )


def statistic_name(board: Leaderboard) -> str:
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
