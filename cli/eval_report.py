"""``lamp-eval leaderboard`` (finetuning runs) and ``lamp-eval reward-quality`` (reward sets).

Examples::

    lamp-eval leaderboard runs/ft --out report
    lamp-eval leaderboard runs/ft runs/ft-more --out report --score auc --baseline scratch
    lamp-eval leaderboard runs/ft --out report --score norm-auc
    lamp-eval reward-quality data/heldout/rewards/r3m-abc123 data/heldout/rewards/clip-0f0f
    lamp-eval reward-quality data/heldout/rewards/* --task pick-place --json
"""

from __future__ import annotations

import click

from lamp_cli.defaults import field_default
from lamp_eval.report import AUTO_SCORE, SCORES, ReportConfig, leaderboard as make_leaderboard

MAX_REPS = 100_000
"""Most bootstrap replicates: the bootstrap holds one resampled score per replicate and method."""


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Report folder.")
@click.option("--baseline", default=field_default(ReportConfig, "baseline"), show_default=True, help="Method for probability of improvement.")
@click.option("--score", type=click.Choice((AUTO_SCORE, *SCORES)), default=field_default(ReportConfig, "score"),
              show_default=True,
              help="Rank by the final success rate, the area under the success curve, or the same two of the "
                   "expert-normalised return (0 random policy, 1 scripted expert); auto: success if any run "
                   "ever succeeded, else normalised return.")
@click.option("--reps", type=click.IntRange(100, MAX_REPS), default=field_default(ReportConfig, "reps"), show_default=True,
              help=f"Bootstrap replicates (100 to {MAX_REPS:,}).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=field_default(ReportConfig, "seed"), show_default=True,
              help="Seed of the bootstrap.")
@click.option("--no-gifs", is_flag=True, help="Leave the rollout GIFs out.")
@click.pass_context
def leaderboard(ctx: click.Context, runs: tuple[str, ...], out: str, baseline: str, score: str, reps: int, seed: int, no_gifs: bool) -> None:
    """Rank methods over every finished run found under RUNS."""
    from pathlib import Path

    from lamp_data.errors import LampError, check_path_text
    from lamp_eval.board_table import leaderboard_lines
    from lamp_eval.runs import find_runs

    check_path_text("--out", out)
    if Path(out).exists() and not Path(out).is_dir():
        raise LampError(f"--out {out} is a file; give a folder for the report")

    config = ReportConfig(baseline=baseline, score=score, reps=reps, seed=seed, gifs=not no_gifs)
    if ctx.get_parameter_source("baseline") is not click.core.ParameterSource.DEFAULT:
        methods = sorted({run.method for run in find_runs(list(runs))})
        if baseline not in methods:
            raise LampError(f"--baseline {baseline} is not a method of these runs (methods: {', '.join(methods)})")
    result = make_leaderboard(list(runs), out, config)
    click.echo("\n".join(leaderboard_lines(result.leaderboard, result.out / "leaderboard.md")))
    click.echo(f"wrote {len(result.files)} files to {result.out} (open {result.out / 'leaderboard.html'})")


@click.command("reward-quality")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--rewards", "rewards", multiple=True, type=click.Path(path_type=str),
              help="A reward set folder DATASET/rewards/FINGERPRINT (repeatable; also accepted as arguments).")
@click.option("--task", "tasks", multiple=True, help="Only episodes of this task (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), help="Also write the table (.csv, .md or .json).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
def reward_quality(paths: tuple[str, ...], rewards: tuple[str, ...], tasks: tuple[str, ...], out: str | None, as_json: bool) -> None:
    """Rank reward sets (DATASET/rewards/FINGERPRINT) by how well they track held-out tasks.

    Exits 2 with a one-line reason when a reward set scores only pretraining-task episodes.
    """
    import json

    from rich.console import Console
    from rich.markup import escape

    from lamp_data.errors import LampError
    from lamp_eval.reward_quality import reward_quality_table, undefined_measures_note, write_reward_quality

    reward_dirs = list(rewards) + list(paths)
    if not reward_dirs:
        raise LampError("give at least one reward set: --rewards DATASET/rewards/FINGERPRINT")
    rows = reward_quality_table(reward_dirs, tasks=list(tasks) or None)
    if out:
        write_reward_quality(rows, out)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    console.print(_reward_quality_table(rows, console))
    console.print(_per_task_table(rows))
    for row in rows:
        note = undefined_measures_note(row)
        if note:
            console.print(escape(f"{row['fingerprint']}: {note}"), highlight=False)
    if out:
        click.echo(f"wrote {out}")


def _reward_quality_table(rows: list[dict], console):
    """One row per reward set when that fits the console's width, else one column per set."""
    from rich.markup import escape
    from rich.table import Table

    from lamp_eval.reward_quality import COLUMNS, format_cell

    cells = [[escape(format_cell(row[column], row.get(f"{column}_ci"))) for column in COLUMNS] for row in rows]
    title = "Reward quality on held-out tasks (macro-average over tasks, 95 % CI)"
    wide = Table(title=title)
    for column in COLUMNS:
        text = column in ("fingerprint", "model", "policy_mix")
        wide.add_column(column, justify="left" if text else "right", no_wrap=not text, overflow="fold")
    for row in cells:
        wide.add_row(*row)
    natural = console.measure(wide, options=console.options.update_width(10_000)).maximum  # not clamped to the console
    if natural <= console.width:
        return wide
    tall = Table(title=title)
    tall.add_column("", no_wrap=True)
    for row in cells:
        tall.add_column(row[0], overflow="fold")
    for index, column in enumerate(COLUMNS[1:], start=1):
        tall.add_row(column, *(row[index] for row in cells))
    return tall


def _per_task_table(rows: list[dict]):
    """Every task's measures, one row per task and reward set."""
    from rich.markup import escape
    from rich.table import Table

    from lamp_eval.reward_quality import TASK_COLUMNS, format_cell

    table = Table(title="Per task")
    for column in ("task", "fingerprint", *TASK_COLUMNS[1:]):
        table.add_column(column.replace("instruction_", "instr. ").replace("progress_", ""), justify="left" if column in ("task", "fingerprint") else "right", overflow="fold")
    for task in sorted({entry["task"] for row in rows for entry in row["per_task"]}):
        for row in rows:
            for entry in (entry for entry in row["per_task"] if entry["task"] == task):
                table.add_row(escape(task), escape(row["fingerprint"]), *(format_cell(entry[column]) for column in TASK_COLUMNS[1:]))
    return table
