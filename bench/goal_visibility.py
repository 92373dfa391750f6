"""Which Meta-World tasks show their goal in the frame? Checks every task in the simulator.

Usage::

    .venv/bin/python bench/goal_visibility.py --report results/goal-visibility

For every Meta-World task of the catalogue, :func:`lamp_data.envs.goals.goal_visibility` resets
the task under several goal seeds and reports whether the goal is fixed, moves with something
drawn (shown), or is drawn by nothing (hidden); the script compares that with the catalogue's
``goal_visible`` and exits 1 if they disagree. With ``--report`` it writes ``REPORT.md`` and
``REPORT.json`` with the command that made them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from report import command_line, write_report

os.environ.setdefault("MUJOCO_GL", "egl")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", help="Only these Meta-World tasks.")
    parser.add_argument("--resets", type=int, default=8, help="Goal seeds tried per task.")
    parser.add_argument("--report", type=Path, help="Write REPORT.md and REPORT.json.")
    args = parser.parse_args(argv)
    from lamp_data.envs.goals import goal_visibility
    from lamp_data.envs.tasks import get_task, list_tasks
    from lamp_data.progress import progress_bar

    tasks = [get_task(name) for name in args.tasks] if args.tasks else list_tasks(backend="metaworld")
    rows = []
    with progress_bar("goals", total=len(tasks), unit="tasks") as bar:
        for task in tasks:
            kind = goal_visibility(task.name, resets=args.resets)
            rows.append({"task": task.name, "split": task.split, "goal": kind, "catalogue_goal_visible": task.goal_visible,
                         "agrees": (kind != "hidden") == task.goal_visible})
            bar.advance()
    lines = ["| task | split | goal | catalogue `goal_visible` |", "|---|---|---|---|"]
    lines += [f"| {row['task']} | {row['split']} | {row['goal']} | {row['catalogue_goal_visible']}{'' if row['agrees'] else ' (disagrees)'} |" for row in rows]
    hidden = [row["task"] for row in rows if row["goal"] == "hidden"]
    table = "\n".join(lines)
    print(table)
    print(f"\n{len(hidden)} of {len(rows)} tasks hide their goal: {', '.join(hidden)}")
    if args.report:
        write_report(
            args.report, "Which Meta-World tasks show their goal in the frame", command_line("goal_visibility.py", argv),
            "`fixed`: the goal is the same every episode; `shown`: something drawn keeps a constant offset "
            "from the randomized goal; `hidden`: only a goal-marker site, which rendering hides, marks it. "
            "On hidden-goal tasks a frame cannot tell a success from a near miss.\n\n"
            f"{table}\n\n{len(hidden)} of {len(rows)} tasks hide their goal.\n",
            {"rows": rows},
        )
    disagree = [row["task"] for row in rows if not row["agrees"]]
    if disagree:
        print(f"the catalogue's goal_visible disagrees with the simulator for: {', '.join(disagree)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
