"""``lamp-data collect | verify | info``: record, check and describe a trajectory dataset.

Examples::

    lamp-data collect --episodes 100 --out data/mw --workers 2 --policy noisy-expert --seed 0
    lamp-data collect --episodes 200 --out data/mw --workers 2 --policy noisy-expert --seed 0   # extends
    lamp-data collect --env dummy --episodes 4 --out /tmp/tiny --episode-length 5 --image-size 16
    lamp-data collect --episodes 10000 --out /shared/mw --executor ray --address auto   # a Ray cluster
    lamp-data verify data/mw          # exit 0 ok, 1 damaged data, 2 bad input
    lamp-data info data/mw --json
"""

from __future__ import annotations

import json
import sys

import click

DAMAGED = 1


@click.command()
@click.option("--env", "env_name", default=None, help="Registered env name (default: mw-pretrain).")
@click.option("--episodes", type=int, required=True, help="Total episodes the dataset should hold.")
@click.option("--out", type=click.Path(), required=True, help="Dataset folder (resumed or extended if it exists).")
@click.option("--workers", type=int, default=None,
              help="Worker processes (local, default 1) or Ray actors at once (ray, default one per cluster CPU slot).")
@click.option("--policy", default="random", show_default=True, help="random | expert | noisy-expert.")
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset seed.")
@click.option("--image-size", type=int, default=64, show_default=True, help="Camera image side in pixels.")
@click.option("--episode-length", type=int, default=150, show_default=True, help="Env steps per episode.")
@click.option("--action-repeat", type=int, default=1, show_default=True, help="Env steps per recorded step (the action is repeated).")
@click.option("--shard-episodes", type=int, default=10, show_default=True, help="Episodes per shard.")
@click.option("--canonical", is_flag=True, help="Turn domain randomization off.")
@click.option("--noise", type=float, default=0.2, show_default=True, help="Action noise of noisy-expert.")
@click.option("--vlm", default=None, help="Reward model spec for inline rewards, e.g. r3m:/path/model.pt.")
@click.option("--prompts", "prompt_set", default=None, help="Prompt set name for inline rewards.")
@click.option("--device", default="cpu", show_default=True, help="Torch device of the reward model.")
@click.option("--run", "run_name", default="collect", show_default=True, help="Run name (shard name prefix).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Run workers as local processes or as actors on a Ray cluster.")
@click.option("--address", default=None, help="Ray cluster address: auto, HOST:PORT (default: RAY_ADDRESS, else a new local instance).")
@click.option("--num-cpus-per-worker", type=float, default=1.0, show_default=True, help="CPUs Ray reserves per actor.")
def collect(env_name, episodes, out, workers, policy, seed, image_size, episode_length, action_repeat, shard_episodes,
            canonical, noise, vlm, prompt_set, device, run_name, executor, address, num_cpus_per_worker) -> None:
    """Record episodes into a sharded dataset; running it again resumes or extends it."""
    from rich.console import Console

    from lamp_data.collect import CollectConfig, collect as collect_episodes
    from lamp_data.envs import DEFAULT_ENV
    from lamp_data.executors import ExecutorConfig

    scheduling = ExecutorConfig(kind=executor, address=address, workers=workers, cpus_per_worker=num_cpus_per_worker)
    config = CollectConfig(
        env=env_name or DEFAULT_ENV, episodes=episodes, workers=1 if workers is None else workers, policy=policy, seed=seed,
        image_size=image_size, episode_length=episode_length, action_repeat=action_repeat, shard_episodes=shard_episodes,
        canonical=canonical, noise=noise, vlm=vlm, prompts=prompt_set, device=device, run=run_name,
    )
    summary = collect_episodes(out, config, progress=True, executor=scheduling)
    Console(stderr=False).print(
        f"{summary.out}: {summary.episodes_total} episodes "
        f"({summary.episodes_written} new in {summary.shards_written} shards, "
        f"{summary.steps} steps at {summary.steps_per_second:.1f} steps/s, "
        f"success {summary.success_rate:.1%}; {summary.leftovers_removed} interrupted files removed"
        + (f"; {summary.reward_shards_written} reward shards" if summary.reward_shards_written else "")
        + ")",
        highlight=False,
    )


@click.command()
@click.argument("path", type=click.Path())
def verify(path) -> None:
    """Check every shard and reward shard against its sidecar; exit 1 if any is damaged."""
    from lamp_data.store import verify_dataset

    report = verify_dataset(path)
    for file, reason in report.warnings:
        click.echo(f"warning: {file}: {reason}", err=True)
    for file, reason in report.problems:
        click.echo(f"BAD {file}: {reason}")
    click.echo(
        f"{report.shards} shards, {report.episodes} episodes, {report.reward_shards} reward shards: "
        + ("ok" if report.ok else f"{len(report.problems)} problems")
    )
    if not report.ok:
        sys.exit(DAMAGED)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def info(path, as_json) -> None:
    """Print the dataset card: episodes, steps, tasks, success rate, prompt and reward sets, size."""
    from lamp_data.store import dataset_card

    card = dataset_card(path)
    if as_json:
        click.echo(json.dumps(card, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=card["path"], show_header=False)
    table.add_row("env", f"{card['env']} ({card['image_size']} px, {card['episode_length']} steps, seed {card['seed']})")
    table.add_row("episodes", f"{card['episodes']} in {card['shards']} shards, {card['steps']} steps")
    table.add_row("success rate", f"{card['success_rate']:.1%}")
    table.add_row("tasks", ", ".join(f"{task} ({count})" for task, count in card["tasks"].items()) or "-")
    table.add_row("runs", ", ".join(f"{run}: {r['episodes']} ({r.get('policy', '?')})" for run, r in card["runs"].items()) or "-")
    prompt_set = card["prompt_set"]
    table.add_row("prompt set", f"{prompt_set.get('name')} ({prompt_set['count']} prompts)" if prompt_set else "-")
    table.add_row(
        "reward sets",
        ", ".join(f"{r['fingerprint']} ({r['shards']} shards{'' if r['complete'] else ', incomplete'})" for r in card["reward_sets"]) or "-",
    )
    table.add_row("size", f"{card['bytes'] / 1e6:.1f} MB ({card['bytes_per_step']:.0f} bytes/step)")
    if card["interrupted_writes"]:
        table.add_row("interrupted", f"{card['interrupted_writes']} leftover files (collect removes them on resume)")
    Console().print(table)
