"""``lamp-eval leaderboard``: tables, curves, GIFs and an HTML page from finetuning runs.

Examples::

    lamp-eval leaderboard runs/ft --out report
    lamp-eval leaderboard runs/ft runs/ft-more --out report --score auc --baseline scratch
"""

from __future__ import annotations

import click


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Report folder.")
@click.option("--baseline", default="scratch", show_default=True, help="Method for probability of improvement.")
@click.option("--score", type=click.Choice(["final", "auc"]), default="final", show_default=True,
              help="Rank by the final success rate or the area under the success curve.")
@click.option("--reps", default=2000, show_default=True, help="Bootstrap replicates.")
@click.option("--seed", default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--no-gifs", is_flag=True, help="Leave the rollout GIFs out.")
def leaderboard(runs: tuple[str, ...], out: str, baseline: str, score: str, reps: int, seed: int, no_gifs: bool) -> None:
    """Rank methods over every finished run found under RUNS."""
    from lamp_eval.report import ReportConfig, leaderboard as make_leaderboard, markdown_table

    config = ReportConfig(baseline=baseline, score=score, reps=reps, seed=seed, gifs=not no_gifs)
    result = make_leaderboard(list(runs), out, config)
    click.echo(markdown_table(result.leaderboard))
    click.echo(f"wrote {len(result.files)} files to {result.out} (open {result.out / 'leaderboard.html'})")
