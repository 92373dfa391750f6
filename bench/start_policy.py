"""What each init's policy does on held-out tasks before finetuning has changed it.

Usage::

    .venv/bin/python bench/start_policy.py --report results/reference/start-policy
    .venv/bin/python bench/start_policy.py --tasks door-close --inits scratch results/reference/pretraining/lamp/run

Every init (``scratch`` or a pretrained checkpoint folder, by default the reference experiment's
two, made by ``bench/pretraining.py``) is built as a finetuning run builds it, for each agent seed,
and plays the run's evaluation episodes (its action repeat and cameras, the task's instruction,
mean actions, the held-out evaluation seeds): the episodes a run's step-0 evaluation plays. The
uniform random policy plays the same seeds. Per init: mean return and normalised return (0 the
random policy, 1 the scripted expert, as the runs normalise), the mean final hand position, the
mean absolute action per component and the share of action components at the bound
(``|a| >= 0.95``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import command_line, write_report  # noqa: E402

REFERENCE = Path("results/reference/pretraining")
DEFAULT_INITS = ("scratch", str(REFERENCE / "lamp" / "run"), str(REFERENCE / "p2e" / "run"))
TASKS = ("door-close", "button-press-topdown", "faucet-close")
"""The reference experiment's held-out tasks."""
SATURATED = 0.95
"""An action component at least this far from 0 counts as at its bound."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), help="Held-out tasks.")
    parser.add_argument("--inits", nargs="+", default=list(DEFAULT_INITS), help="'scratch' or pretrained checkpoint folders.")
    parser.add_argument("--preset", default="cpu", help="Preset of the scratch agent.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="Agent seeds (a run's seed).")
    parser.add_argument("--episodes", type=int, default=10, help="Evaluation episodes per agent seed.")
    parser.add_argument("--report", type=Path, default=None, help="Write REPORT.md and REPORT.json.")
    args = parser.parse_args(argv)
    from lamp_data.envs.tasks import HELDOUT, list_tasks

    heldout = {task.name for task in list_tasks(HELDOUT, backend="metaworld")}
    for task in args.tasks:
        if task not in heldout:
            parser.error(f"{task!r} is not a held-out Meta-World task (one of {', '.join(sorted(heldout))})")
    for init in args.inits:
        if init != "scratch" and not Path(init).is_dir():
            parser.error(f"no checkpoint folder {init} (make the reference ones with bench/pretraining.py --out {REFERENCE})")
    if args.episodes < 1 or not args.seeds:
        parser.error("give at least one episode and one seed")
    return args


def _summary(task: str, label: str, played: list, baselines: dict) -> dict:
    """The row of one policy from its played episodes."""
    from lamp_eval.baselines import normalised_return

    returns = [episode.total_reward for episode in played]
    stored = [episode.episode() for episode in played]
    actions = np.concatenate([episode["action"] for episode in stored])
    hands = np.stack([episode["state"][-1, :3] for episode in stored])
    return {
        "task": task,
        "policy": label,
        "episodes": len(played),
        "return": round(float(np.mean(returns)), 1),
        "normalised_return": round(normalised_return(float(np.mean(returns)), baselines), 3),
        "success": round(float(np.mean([episode.success for episode in played])), 3),
        "final_hand_xyz": [round(float(value), 3) for value in hands.mean(0)],
        "mean_abs_action": [round(float(value), 3) for value in np.abs(actions).mean(0)],
        "saturated_share": round(float((np.abs(actions) >= SATURATED).mean()), 3),
    }


def measure(task: str, inits: list[str], preset: str, seeds: list[int], episodes: int) -> dict:
    """Rows for the random policy and for every init, and the task's baselines."""
    import torch

    from lamp_agent.core.policy import AgentPolicy
    from lamp_agent.online import build_agent
    from lamp_data.envs import make_env
    from lamp_data.pipeline.rollout import RandomPolicy, run_episode
    from lamp_data.progress import progress_bar
    from lamp_data.rewards.text import TextEncoder
    from lamp_eval.baselines import task_baselines
    from lamp_eval.finetune import baseline_env_config, run_env_config, task_instructions
    from lamp_eval.runs import DEFAULT_ENV_PREFIX, RunConfig, eval_episode_seeds, finetune_env

    torch.set_num_threads(1)
    env_name = DEFAULT_ENV_PREFIX + task
    eval_seeds = eval_episode_seeds(episodes)
    instruction = task_instructions(task)[0]
    lang = TextEncoder().encode([instruction])[0]
    plain = baseline_env_config(finetune_env())  # every run below has the default finetuning env
    played_by_init: dict[str, list] = {init: [] for init in inits}
    with progress_bar(f"start policies on {task}", len(eval_seeds) * (1 + len(inits) * len(seeds)), unit="episodes") as bar:
        for init in inits:
            for seed in seeds:
                run = RunConfig(task=task, env=env_name, init=init, method=init, seed=seed, preset=preset)
                env = make_env(env_name, run_env_config(run))
                torch.manual_seed(seed)
                agent, _ = build_agent(init, preset, env, lang.shape[0], "cpu", seed)
                for eval_seed in eval_seeds:
                    played_by_init[init].append(run_episode(env, AgentPolicy(agent, lang[None], explore=False), eval_seed))
                    bar.advance()
                env.close()
        baselines = task_baselines(env_name, plain, eval_seeds)
        env = make_env(env_name, plain)
        random_played = []
        for eval_seed in eval_seeds:
            random_played.append(run_episode(env, RandomPolicy(env, np.random.default_rng(eval_seed)), eval_seed))
            bar.advance()
        env.close()
    return {
        "task": task, "instruction": instruction, "baselines": baselines,
        "rows": [_summary(task, "random", random_played, baselines)] + [_summary(task, init, played, baselines) for init, played in played_by_init.items()],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = [measure(task, args.inits, args.preset, args.seeds, args.episodes) for task in args.tasks]
    lines = [
        "| task | policy | episodes | return | normalised return | success | final hand x, y, z (m) | mean abs. action (x, y, z, grip) | actions at the bound |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in (row for result in results for row in result["rows"]):
        lines.append(
            f"| {row['task']} | `{row['policy']}` | {row['episodes']} | {row['return']} | {row['normalised_return']} | {row['success']} "
            f"| {', '.join(f'{v:.2f}' for v in row['final_hand_xyz'])} | {', '.join(f'{v:.2f}' for v in row['mean_abs_action'])} "
            f"| {row['saturated_share']:.2f} |"
        )
    from lamp_data.provenance import cpu_description

    markdown = (
        "Instructions: " + "; ".join(f"{result['task']} \"{result['instruction']}\"" for result in results) + f". Agent seeds {', '.join(map(str, args.seeds))}, "
        f"{args.episodes} evaluation episodes each (mean actions), the random policy once per evaluation seed. "
        f"An action component is at the bound when |a| >= {SATURATED}. CPU {cpu_description()['model']}.\n\n"
        + "\n".join(lines) + "\n"
    )
    print(markdown)
    if args.report:
        write_report(args.report, "What each policy does before finetuning", command_line("start_policy.py", argv), markdown, {"tasks": results})


if __name__ == "__main__":
    main()
