"""``lamp-data tasks`` and ``lamp-data render``: the task catalogue and a look at the simulator.

Examples::

    lamp-data tasks
    lamp-data tasks --json --split heldout
    lamp-data render --out showcase/
    lamp-data render --out showcase/ --tasks pick-place,door-close --steps 60 --image-size 96
"""

from __future__ import annotations

import json
import textwrap

import click

from lamp_cli.defaults import parameter_default
from lamp_data.display.showcase import render_showcase


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--split", type=click.Choice(["pretrain", "heldout"]), default=None, help="Only this split.")
@click.option("--backend", type=click.Choice(["metaworld", "rlbench"]), default=None, help="Only this backend.")
def tasks(as_json: bool, split: str | None, backend: str | None) -> None:
    """List every task with its split, family, instruction and objects, and whether a frame
    shows its goal (hidden: only a goal marker that rendering hides would)."""
    from lamp_data.envs.tasks import FINETUNE_TASKS, RLBENCH_FINETUNE_TASKS, list_tasks

    selected = list_tasks(split=split, backend=backend)
    finetune = {*FINETUNE_TASKS, *RLBENCH_FINETUNE_TASKS}
    if as_json:
        rows = [{**task.to_dict(), "finetune": task.name in finetune} for task in selected]
        click.echo(json.dumps(rows, indent=2))
        return
    from lamp_data.tables import Column, console_width, fit_table

    columns = [
        Column("task"), Column("backend", priority=5), Column("split"), Column("finetune", priority=3),
        Column("family", priority=4), Column("goal", priority=2), Column("instruction", wrap=True, min_width=36),
        Column("objects", wrap=True, min_width=16, priority=6),
    ]
    rows = [
        (task.name, task.backend, task.split, "yes" if task.name in finetune else "", task.family, task.goal_label or "",
         task.instruction, ", ".join(task.objects))
        for task in selected
    ]
    width = console_width()
    lines, dropped = fit_table(columns, rows, width)
    click.echo(f"{len(selected)} tasks")
    click.echo("\n".join(lines))
    if dropped:
        note = f"(left out to fit {width} columns: {', '.join(dropped)}; lamp-data tasks --json gives every field)"
        click.echo(textwrap.fill(note, width))


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--tasks", "task_list", default=None, help="Comma-separated Meta-World tasks (default: one per family).")
@click.option("--steps", default=parameter_default(render_showcase, "steps"), show_default=True, type=int, help="Expert steps per rollout.")
@click.option("--image-size", default=parameter_default(render_showcase, "image_size"), show_default=True, type=int, help="Frame side in pixels.")
@click.option("--seed", default=parameter_default(render_showcase, "seed"), show_default=True, type=int, help="Seed of the first rollout.")
def render(out_dir: str, task_list: str | None, steps: int, image_size: int, seed: int) -> None:
    """Render randomized expert rollouts: a contact sheet PNG and a GIF."""
    selected = [name.strip() for name in task_list.split(",") if name.strip()] if task_list else None
    result = render_showcase(out_dir, tasks=selected, steps=steps, image_size=image_size, seed=seed)
    solved = sum(result["success"].values())
    click.echo(f"contact sheet: {result['contact_sheet']}")
    click.echo(f"animation:     {result['animation']}")
    click.echo(f"{len(result['tasks'])} tasks, expert solved {solved}, {result['seconds']:.1f} s")
