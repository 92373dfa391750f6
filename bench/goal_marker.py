"""Where does the goal marker show? Renders every hidden-goal task with and without it.

Usage::

    .venv/bin/python bench/goal_marker.py --report results/goal-marker

For every Meta-World task whose goal no frame shows (``lamp_data.envs.tasks.GOAL_HIDDEN_METAWORLD``)
it plays the scripted expert from the same seed twice, without and with ``EnvConfig.goal_marker``,
and counts the pixels the marker changes in the first and the last frame (0: the goal lies outside
the camera's view, or behind something). The script exits 1 if the marker changed anything but
pixels (states, success flags). With ``--report`` it writes ``REPORT.md``, ``REPORT.json`` and
``REPORT.png`` (first and last frame of every task with the marker), with the command that made them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from report import command_line, write_report

os.environ.setdefault("MUJOCO_GL", "egl")


def _play(task: str, marker: bool, seed: int, steps: int, image_size: int):
    """First frame, last frame, every state and success flag of one scripted-expert episode."""
    import numpy as np

    from lamp_data.envs import make_env
    from lamp_data.pipeline.rollout import ExpertPolicy, run_episode

    env = make_env(f"mw-{task}", image_size=image_size, episode_length=steps, goal_marker=marker)
    try:
        played = run_episode(env, ExpertPolicy(env), seed, max_steps=steps)
    finally:
        env.close()
    frames = played.frames["image"]
    return frames[0], frames[-1], np.array(played.states), np.array(played.successes[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", help="Only these Meta-World tasks (default: every hidden-goal task).")
    parser.add_argument("--seed", type=int, default=0, help="Reset seed of every episode.")
    parser.add_argument("--steps", type=int, default=150, help="Expert steps per episode.")
    parser.add_argument("--image-size", type=int, default=64, help="Frame side in pixels.")
    parser.add_argument("--report", type=Path, help="Write REPORT.md, REPORT.json and REPORT.png.")
    args = parser.parse_args(argv)
    import numpy as np
    from PIL import Image

    from lamp_data.atomic import atomic_open
    from lamp_data.envs.tasks import GOAL_HIDDEN_METAWORLD
    from lamp_data.progress import progress_bar

    tasks = args.tasks or sorted(GOAL_HIDDEN_METAWORLD)
    rows, tiles = [], []
    with progress_bar("tasks", total=len(tasks), unit="tasks") as bar:
        for task in tasks:
            plain = _play(task, False, args.seed, args.steps, args.image_size)
            marked = _play(task, True, args.seed, args.steps, args.image_size)
            changed = [int((a != b).any(-1).sum()) for a, b in zip(plain[:2], marked[:2])]
            rows.append({"task": task, "marker_pixels_first": changed[0], "marker_pixels_last": changed[1],
                         "success": bool(marked[3].any()),
                         "physics_unchanged": bool(np.array_equal(plain[2], marked[2]) and np.array_equal(plain[3], marked[3]))})
            tiles.append(np.concatenate(marked[:2], axis=1))
            bar.advance()
    lines = ["| task | marker pixels, first frame | marker pixels, last frame | expert succeeded | physics unchanged |", "|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['marker_pixels_first']} | {r['marker_pixels_last']} | {r['success']} | {r['physics_unchanged']} |" for r in rows]
    unseen = [row["task"] for row in rows if row["marker_pixels_first"] == 0 and row["marker_pixels_last"] == 0]
    table = "\n".join(lines)
    print(table)
    print(f"\nthe marker is out of sight in both frames of: {', '.join(unseen) or 'none'}")
    if args.report:
        columns = 4
        write_report(
            args.report, "Where the goal marker shows", command_line("goal_marker.py", argv),
            f"Scripted expert, seed {args.seed}, {args.steps} steps, {args.image_size} px, randomized scene; the same "
            "episode without and with `goal_marker`. Pixels: how many of the frame's pixels the marker changes "
            f"(0: the goal is outside the camera's view or hidden behind something). `{args.report.with_suffix('.png').name}`: first and last "
            f"frame of every task with the marker, {columns} tasks per row in the order of the table, shown at twice the size.\n\n"
            f"{table}\n\nOut of sight in both frames: {', '.join(unseen) or 'none'}.\n",
            {"rows": rows},
        )
        blank = np.zeros_like(tiles[0])
        padded = tiles + [blank] * (-len(tiles) % columns)
        grid = np.concatenate([np.concatenate(padded[i:i + columns], axis=1) for i in range(0, len(padded), columns)], axis=0)
        with atomic_open(args.report.with_suffix(".png"), "wb") as handle:
            Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(handle, format="PNG")
    changed_physics = [row["task"] for row in rows if not row["physics_unchanged"]]
    if changed_physics:
        print(f"the goal marker changed states or success flags of: {', '.join(changed_physics)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
