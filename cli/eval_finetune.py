"""``lamp-eval finetune``: finetune pretrained (or fresh) agents on held-out tasks.

Examples::

    lamp-eval finetune --task pick-place --init runs/pre/checkpoint --seeds 0,1,2 --steps 5000 --out runs/ft
    lamp-eval finetune --task pick-place --task door-close --init scratch --init runs/lamp/checkpoint \\
        --init runs/p2e/checkpoint --seeds 0,1,2,3,4 --steps 20000 --eval-every 2000 --out runs/ft
    lamp-eval finetune --task reach-dummy --env dummy --init scratch --preset tiny --steps 20 \\
        --eval-every 10 --eval-episodes 2 --image-size 16 --episode-length 5 --out runs/smoke
    lamp-eval finetune --task pick-place --task door-close --init scratch --init runs/lamp/checkpoint \\
        --seeds 0-4 --steps 100000 --device cuda --out /shared/ft --executor ray --address auto --gpus-per-run 0.5

Re-running the same command skips finished runs and continues interrupted ones from the checkpoint
each wrote after its last evaluation (``--keep-checkpoints`` keeps more than the newest); a second
process working into the same runs is refused with one line. With ``--executor ray`` the runs go out
one at a time per actor of a Ray cluster (the runs folder on a filesystem every node sees), with the
same skipping and continuing and the same results.
"""

from __future__ import annotations

import re

import click

from lamp_agent.config import FINETUNE_CRITICS
from lamp_cli.defaults import field_default
from lamp_data.envs.base import EnvConfig
from lamp_data.errors import LampError
from lamp_data.pipeline.executors import EXECUTORS, ExecutorConfig
from lamp_eval.runs import FinetuneConfig, with_finetune_env


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"`` or ``"0-4"`` → a tuple of ints; :class:`LampError` on anything else."""
    seeds: list[int] = []
    for part in (piece.strip() for piece in text.split(",")):
        span = re.fullmatch(r"(\d+)-(\d+)", part)
        if span:
            seeds.extend(range(int(span[1]), int(span[2]) + 1))
        elif re.fullmatch(r"-?\d+", part):
            seeds.append(int(part))
        else:
            raise LampError(f"--seeds must look like 0,1,2 or 0-4, got {text!r}")
    return tuple(seeds)


@click.command()
@click.option("--task", "tasks", multiple=True, required=True, help="Held-out task (repeatable).")
@click.option("--init", "inits", multiple=True, required=True, help="Checkpoint folder or 'scratch' (repeatable).")
@click.option("--seeds", default=",".join(map(str, field_default(FinetuneConfig, "seeds"))), show_default=True, help="Run seeds: 0,1,2 or 0-4.")
@click.option("--steps", type=int, default=field_default(FinetuneConfig, "steps"), show_default=True, help="Env steps per run (the budget).")
@click.option("--out", required=True, type=click.Path(path_type=str), help="Runs folder.")
@click.option("--instruction", default=field_default(FinetuneConfig, "instruction"), help="Instruction text, or 'auto' (default: the task's own).")
@click.option("--eval-every", type=int, default=field_default(FinetuneConfig, "eval_every"), show_default=True, help="Env steps between evaluations.")
@click.option("--eval-episodes", type=int, default=field_default(FinetuneConfig, "eval_episodes"), show_default=True, help="Episodes per evaluation.")
@click.option("--eval-sampled", is_flag=True,
              help="Also play each evaluation with actions sampled from the policy (DreamerV3's evaluation), logged under 'sampled'; training is unchanged.")
@click.option("--preset", default=field_default(FinetuneConfig, "preset"), show_default=True, help="Agent preset of scratch runs: tiny | cpu | small | paper, or a YAML file.")
@click.option("--method", default=field_default(FinetuneConfig, "method"), help="Method label instead of the one read from the checkpoint.")
@click.option("--env-prefix", default=field_default(FinetuneConfig, "env_prefix"), show_default=True, help="Env of task T is <prefix>T.")
@click.option("--env", default=field_default(FinetuneConfig, "env"), help="Env name for every task (e.g. dummy), instead of the prefix.")
@click.option("--image-size", type=int, default=field_default(EnvConfig, "image_size"), show_default=True, help="Camera image side in pixels.")
@click.option("--episode-length", type=int, default=field_default(EnvConfig, "episode_length"), show_default=True, help="Env steps per episode.")
@click.option("--goal-marker", is_flag=True, help="Draw a marker at the goal of tasks whose goal the frame would not show (pick-place...).")
@click.option("--replay-ratio", type=float, default=field_default(FinetuneConfig, "replay_ratio"),
              help="Replayed steps per env step; an update replays batch x seq-len steps (default: the agent config's).")
@click.option("--action-repeat", type=int, default=None,
              help="Env steps per agent decision (default: the init's: a checkpoint's, the action repeat of its data; for scratch "
                   f"the preset's env section, else {field_default(EnvConfig, 'action_repeat')}).")
@click.option("--finetune-critic", type=click.Choice(FINETUNE_CRITICS), default=field_default(FinetuneConfig, "finetune_critic"),
              help="A pretrained run's critic: probe (LAMP: frozen body, fresh linear head) or full (all of it trained) (default: the checkpoint's config, probe).")
@click.option("--prefill", type=int, default=field_default(FinetuneConfig, "prefill"), help="Random-action env steps that open each run (default: the agent config's).")
@click.option("--initial-updates", type=int, default=field_default(FinetuneConfig, "initial_updates"), help="World-model updates once the prefill is done (default: the agent config's).")
@click.option("--batch-size", type=int, default=field_default(FinetuneConfig, "batch_size"), help="Sequences per update (default: the agent config's).")
@click.option("--seq-len", type=int, default=field_default(FinetuneConfig, "seq_len"), help="Steps per sequence (default: the agent config's).")
@click.option("--text-encoder", default=field_default(FinetuneConfig, "text_encoder"), show_default=True, help="'minilm' or a local model folder.")
@click.option("--device", default=field_default(FinetuneConfig, "device"), show_default=True, help="Torch device.")
@click.option("--save-agent", is_flag=True, help="Also save every finetuned agent in its run folder.")
@click.option("--keep-checkpoints", type=click.IntRange(min=1), default=field_default(FinetuneConfig, "keep_checkpoints"), show_default=True,
              help="Checkpoints an unfinished run keeps to continue from (all are removed when it finishes).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads (default: torch's). Use 1 for tiny presets or on a busy machine.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=field_default(ExecutorConfig, "kind"), show_default=True,
              help="Run one after the other in this process, or one run per actor on a Ray cluster.")
@click.option("--address", default=field_default(ExecutorConfig, "address"), help="Ray cluster address: auto, HOST:PORT (default: RAY_ADDRESS, else a new local instance).")
@click.option("--gpus-per-run", type=float, default=field_default(ExecutorConfig, "gpus_per_worker"), show_default=True, help="GPUs Ray reserves for each run (with --device cuda).")
@click.option("--num-cpus-per-run", type=float, default=field_default(ExecutorConfig, "cpus_per_worker"), show_default=True, help="CPUs Ray reserves for each run.")
def finetune(tasks, inits, seeds, steps, out, instruction, eval_every, eval_episodes, eval_sampled, preset, method, env_prefix, env,
             image_size, episode_length, goal_marker, replay_ratio, action_repeat, finetune_critic, prefill, initial_updates, batch_size, seq_len, text_encoder, device,
             save_agent, keep_checkpoints, no_progress, threads, executor, address, gpus_per_run, num_cpus_per_run) -> None:
    """Finetune every --init on every --task with every seed, under one env-step budget."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from lamp_eval.finetune import finetune as run_finetune

    scheduling = ExecutorConfig(kind=executor, address=address, cpus_per_worker=num_cpus_per_run, gpus_per_worker=gpus_per_run)

    config = FinetuneConfig(
        tasks=tuple(tasks), inits=tuple(inits), out=out, seeds=parse_seeds(seeds), steps=steps,
        eval_every=eval_every, eval_episodes=eval_episodes, eval_sampled=eval_sampled, instruction=instruction, env_prefix=env_prefix,
        env=env, preset=preset, method=method,
        **with_finetune_env({"image_size": image_size, "episode_length": episode_length, "goal_marker": goal_marker, "action_repeat": action_repeat}),
        replay_ratio=replay_ratio, finetune_critic=finetune_critic, prefill=prefill,
        initial_updates=initial_updates,
        batch_size=batch_size, seq_len=seq_len, text_encoder=text_encoder,
        device=device, save_agent=save_agent, keep_checkpoints=keep_checkpoints,
    )
    results = run_finetune(config, progress=not no_progress, executor=scheduling)
    for result in results:
        state = "skipped (finished before)" if result.skipped else "done"
        click.echo(
            f"{result.config.method}\t{result.config.task}\tseed {result.config.seed}\t"
            f"final success {result.final_success_rate:.2f}\t{state}\t{result.folder}"
        )
