"""A reward-quality evaluation set in one command: noisy experts beside random episodes, per task.

Usage::

    .venv/bin/python bench/reward_quality_set.py --out data/rq-heldout \\
        --vlm lamp-r3m-metaworld --vlm r3m:models/untrained/model.pt --report results/reward-quality/heldout
    .venv/bin/python bench/reward_quality_set.py --out data/rq-pretrain --split pretrain --tasks reach push \\
        --vlm lamp-r3m-metaworld --report results/reward-quality/pretrain

For every task of ``--split`` (or every ``--tasks``; pretraining tasks measure a reward model
in distribution) it records ``--noisy`` noisy-expert episodes
(action noise ``--noise``: successes, slow successes and near-misses) and ``--random`` uniformly
random episodes, at the canonical settings of ``lamp-data collect`` (64 px, 150 steps, randomized
scenes) under a seed of their own, into one dataset per task (``OUT/<task>``); with ``--goal-marker``
the tasks whose goal the frame would not show are recorded with a marker at their goal
(``lamp-data collect --goal-marker``; the other tasks' datasets are the same either way); relabels every
dataset with every ``--vlm`` on the ``--prompts`` set; and writes ``lamp-eval reward-quality``'s
table of all reward sets to ``REPORT.md`` and ``REPORT.json``, with the command that made it.
Running it again reuses what is already recorded and scored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from report import command_line, write_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Folder of the per-task datasets.")
    parser.add_argument("--split", default="heldout", choices=("heldout", "pretrain"), help="Tasks of this split ...")
    parser.add_argument("--tasks", nargs="+", help="... or these Meta-World tasks.")
    parser.add_argument("--noisy", type=int, default=5, help="Noisy-expert episodes per task.")
    parser.add_argument("--noise", type=float, default=0.3, help="Action noise of the noisy expert.")
    parser.add_argument("--random", type=int, default=5, help="Random episodes per task.")
    parser.add_argument("--seed", type=int, default=2026, help="Dataset seed (keep it apart from training data's).")
    parser.add_argument("--goal-marker", action="store_true", help="Mark the goal of tasks whose goal the frame would not show.")
    parser.add_argument("--workers", type=int, default=1, help="Collection worker processes.")
    parser.add_argument("--vlm", action="append", default=[], help="Reward model spec to score with (repeatable).")
    parser.add_argument("--prompts", default="instructions", help="Prompt set scored by every model.")
    parser.add_argument("--report", type=Path, help="Write REPORT.md and REPORT.json (the table).")
    return parser.parse_args(argv)


def record(args: argparse.Namespace) -> list[Path]:
    """One dataset per task with the noisy-expert and random runs; returns the dataset folders."""
    from lamp_data.envs import EnvConfig
    from lamp_data.envs.tasks import get_task, list_tasks
    from lamp_data.pipeline.collect import CollectConfig, collect
    from lamp_data.pipeline.executors import ExecutorConfig

    tasks = args.tasks or [task.name for task in list_tasks(split=args.split, backend="metaworld")]
    folders = []
    for task in tasks:
        folder = args.out / task
        common = dict(env=f"mw-{task}", seed=args.seed, env_config=EnvConfig(goal_marker=args.goal_marker and not get_task(task).goal_visible))
        workers = ExecutorConfig(workers=args.workers)
        collect(folder, CollectConfig(episodes=args.noisy, policy="noisy-expert", noise=args.noise, run="noisy", **common),
                progress=False, executor=workers)
        collect(folder, CollectConfig(episodes=args.noisy + args.random, policy="random", run="random", **common),
                progress=False, executor=workers)
        print(f"recorded {task}: {args.noisy} noisy-expert + {args.random} random episodes", flush=True)
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None, command: str | None = None) -> None:
    """Record, score and report; ``command`` is what the report says regenerates it (this
    script's own command line by default)."""
    args = parse_args(argv)
    from lamp_data.envs.tasks import get_task
    from lamp_data.pipeline.relabel import relabel
    from lamp_data.store import layout
    from lamp_eval.reward_quality import reward_quality_markdown, reward_quality_table

    folders = record(args)
    tasks = [folder.name for folder in folders]
    reward_dirs = []
    for spec in args.vlm:
        for folder in folders:
            summary = relabel(folder, spec, args.prompts, progress=False)
            reward_dirs.append(layout.reward_dir(folder, summary.fingerprint))
        print(f"scored with {spec}", flush=True)
    if not reward_dirs:
        return
    rows = reward_quality_table(reward_dirs, tasks=tasks if args.split == "pretrain" else None)
    table = reward_quality_markdown(rows)
    shown = [task for task in tasks if args.goal_marker or get_task(task).goal_visible]
    shown_rows = reward_quality_table(reward_dirs, tasks=shown) if shown and len(shown) < len(tasks) else None
    if shown_rows:
        table += (f"\n\n**The {len(shown)} tasks whose goal the frame shows.** "
                  f"Leaving out {', '.join(sorted(set(tasks) - set(shown)))}: their goal is drawn at random and marked "
                  "by nothing in the frame, so no reward read from frames can tell a success from a near miss "
                  "(`bench/goal_visibility.py`). Macro-averages over those tasks; their rows are above.\n\n"
                  + reward_quality_markdown(shown_rows).split("\n\n")[0])
    print(table)
    if args.report:
        write_report(args.report, f"Reward quality: {args.split if not args.tasks else ', '.join(args.tasks)} tasks",
                     command or command_line("reward_quality_set.py", argv), table, {"rows": rows, "rows_goal_visible": shown_rows})


if __name__ == "__main__":
    main()
