"""A look at the embedded simulator: randomized expert rollouts as a contact sheet and a GIF.

``render_showcase`` runs the scripted expert on one task per family (or the tasks given), in
randomized mode, and writes ``showcase.png`` (rows = tasks, columns = time),
``showcase.gif`` (all tasks side by side, over time) and ``showcase.json`` (tasks, seeds,
randomization parameters, success, versions).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.atomic import atomic_path, atomic_write_json
from lamp_data.envs.base import EnvConfig, RandomizationConfig
from lamp_data.envs.tasks import FINETUNE_TASKS, get_task, list_tasks
from lamp_data.errors import LampError
from lamp_data.pipeline.rollout import ExpertPolicy, run_episode
from lamp_data.progress import progress_bar
from lamp_data.provenance import provenance

COLUMNS = 8
"""Time steps shown per task on the contact sheet."""
LABEL_WIDTH = 150
"""Pixels of the task-name column on the contact sheet."""


def showcase_tasks() -> list[str]:
    """One Meta-World task per family, the finetuning task where a family has one."""
    chosen: dict[str, str] = {}
    for name in FINETUNE_TASKS:
        chosen.setdefault(get_task(name).family, name)
    for task in list_tasks(backend="metaworld"):
        chosen.setdefault(task.family, task.name)
    return sorted(chosen.values(), key=lambda name: (get_task(name).family, name))


def _rollout(task: str, steps: int, image_size: int, seed: int) -> dict[str, Any]:
    from lamp_data.envs.metaworld_suite import make_task_env

    env = make_task_env(task, EnvConfig(image_size=image_size, episode_length=steps, randomization=RandomizationConfig()))
    try:
        played = run_episode(env, ExpertPolicy(env), seed, max_steps=steps)
    finally:
        env.close()
    return {"task": task, "seed": seed, "frames": np.stack(played.frames["image"]), "success": played.success,
            "randomization": played.reset_info["randomization"]}


def _label(text: str, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (LABEL_WIDTH, height), (255, 255, 255))
    ImageDraw.Draw(image).text((4, max(height // 2 - 6, 0)), text, fill=(0, 0, 0))
    return np.asarray(image)


def render_showcase(
    out_dir: str | Path,
    *,
    tasks: list[str] | None = None,
    steps: int = 100,
    image_size: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Render randomized expert rollouts and save a contact sheet PNG, a GIF and a JSON record.

    Args:
        out_dir: Folder to write ``showcase.png``, ``showcase.gif`` and ``showcase.json`` to.
        tasks: Meta-World task names; defaults to one per family (:func:`showcase_tasks`).
        steps: Expert steps per rollout.
        image_size: Frame side in pixels.
        seed: Rollout ``i`` is reset with ``seed + i``.

    Returns:
        Paths written, tasks, per-task success and wall time.

    Raises:
        LampError: Unknown or non-Meta-World task, or too few steps.
    """
    import imageio.v2 as imageio

    tasks = list(tasks) if tasks else showcase_tasks()
    for task in tasks:
        if get_task(task).backend != "metaworld":
            raise LampError(f"the showcase renders Meta-World tasks; '{task}' is an RLBench task")
    if steps < COLUMNS - 1:
        raise LampError(f"the showcase needs at least {COLUMNS - 1} steps, got {steps}")
    EnvConfig(image_size=image_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rollouts = []
    with progress_bar("rendering showcase", total=len(tasks), unit="tasks", transient=True) as bar:
        for index, task in enumerate(tasks):
            rollouts.append(_rollout(task, steps, image_size, seed + index))
            bar.advance()
    columns = np.linspace(0, steps, COLUMNS).round().astype(int)
    rows = [
        np.concatenate([_label(rollout["task"], image_size), *rollout["frames"][columns]], axis=1)
        for rollout in rollouts
    ]
    sheet = np.concatenate(rows, axis=0)
    sheet_path, gif_path, record_path = out_dir / "showcase.png", out_dir / "showcase.gif", out_dir / "showcase.json"
    with atomic_path(sheet_path) as temporary:
        imageio.imwrite(temporary, sheet, format="png")
    grid_columns = int(np.ceil(np.sqrt(len(rollouts))))
    grid_rows = int(np.ceil(len(rollouts) / grid_columns))
    blank = np.zeros_like(rollouts[0]["frames"][0])
    animation = []
    for step in range(0, steps + 1, 2):
        tiles = [rollout["frames"][step] for rollout in rollouts]
        tiles += [blank] * (grid_rows * grid_columns - len(tiles))
        animation.append(
            np.concatenate(
                [np.concatenate(tiles[row * grid_columns : (row + 1) * grid_columns], axis=1) for row in range(grid_rows)],
                axis=0,
            )
        )
    with atomic_path(gif_path) as temporary:
        imageio.mimsave(temporary, animation, format="gif", duration=0.08, loop=0)
    seconds = time.perf_counter() - started
    record = {
        "tasks": [
            {"task": r["task"], "seed": r["seed"], "success": bool(r["success"]), "randomization": r["randomization"]}
            for r in rollouts
        ],
        "steps": steps,
        "image_size": image_size,
        "columns": columns.tolist(),
        "seconds": round(seconds, 2),
        "provenance": provenance(),
    }
    atomic_write_json(record_path, record)
    return {
        "contact_sheet": str(sheet_path),
        "animation": str(gif_path),
        "record": str(record_path),
        "tasks": tasks,
        "success": {r["task"]: bool(r["success"]) for r in rollouts},
        "seconds": round(seconds, 2),
    }
