"""``lamp-eval grid``: an experiment of tasks x methods x seeds that accumulates until it is done.

Examples::

    lamp-eval grid results/reference/grid.yaml --out results/reference          # run what is missing, then report
    lamp-eval grid results/cpu-preset/grid.yaml --out results/cpu-preset --workers 2
    lamp-eval grid results/reference/grid.yaml --out results/reference --report-only

Each run is a ``lamp-eval finetune`` process with one torch thread at lowered priority; two run at
once by default. Run the same command again after an interruption: finished runs are skipped,
interrupted ones continue from their last checkpoint, and the report (``grid.md``,
``summary.json``, ``curves.jsonl``, ``curves.png``) is rewritten from what has finished, with
what is still missing marked.
"""

from __future__ import annotations

import click

from lamp_cli.defaults import parameter_default
from lamp_eval.grid import load_grid, run_grid


@click.command()
@click.argument("grid_file", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Experiment folder (runs/, logs/ and the report).")
@click.option("--workers", type=click.IntRange(min=1), default=parameter_default(run_grid, "workers"), show_default=True, help="Runs at once.")
@click.option("--threads", type=click.IntRange(min=1), default=parameter_default(run_grid, "threads"), show_default=True, help="Torch threads per run.")
@click.option("--nice", "niceness", type=click.IntRange(min=0, max=19), default=parameter_default(run_grid, "niceness"), show_default=True,
              help="CPU priority increment of the run processes.")
@click.option("--report-only", is_flag=True, help="Write the report from the finished runs; run nothing.")
def grid(grid_file: str, out: str, workers: int, threads: int, niceness: int, report_only: bool) -> None:
    """Run the missing runs of GRID_FILE (tasks x methods x seeds) and report what has finished."""
    spec = load_grid(grid_file)
    result = run_grid(spec, out, workers=workers, threads=threads, niceness=niceness, run=not report_only,
                      echo=lambda line: click.echo(line))
    finished = sum(item.status == "finished" for item in result.runs)
    click.echo(f"{finished} of {len(result.runs)} runs finished; report: {result.report}")
    if result.failed:
        raise click.ClickException(f"{len(result.failed)} runs failed: {', '.join(result.failed)} (their logs are under {out}/logs)")
