"""``lamp-data collect | verify | info``: record, check and describe a trajectory dataset.

Examples::

    lamp-data collect --episodes 100 --out data/mw --workers 2 --policy noisy-expert --seed 0
    lamp-data collect --episodes 200 --out data/mw --workers 2   # extends it with its own settings
    lamp-data collect --env dummy --episodes 4 --out /tmp/tiny --episode-length 5 --image-size 16
    lamp-data collect --episodes 100 --out data/mw2 --image-size 128 --cameras front,wrist   # LAMP's two views
    lamp-data collect --episodes 10000 --out /shared/mw --executor ray --address auto   # a Ray cluster
    lamp-data verify data/mw          # exit 0 ok, 1 damaged data, 2 bad input
    lamp-data verify data/mw --repair # repair what can be, set aside the rest, print the commands that make it again
    lamp-data info data/mw --json
"""

from __future__ import annotations

import json
import sys

import click

from lamp_cli.defaults import field_default, parameter_default
from lamp_data.envs.base import EnvConfig
from lamp_data.errors import ON_DAMAGE, LampError
from lamp_data.pipeline.collect import CollectConfig, collect as collect_episodes, recorded_options, resolve_config
from lamp_data.pipeline.executors import EXECUTORS, ExecutorConfig

DAMAGED = 1


@click.command()
@click.option("--env", "env_name", default=None, help=f"Registered env name (default: the dataset's, else {field_default(CollectConfig, 'env')}).")
@click.option("--episodes", type=int, required=True, help="Total episodes the dataset should hold.")
@click.option("--out", type=click.Path(), required=True, help="Dataset folder (resumed or extended if it exists).")
@click.option("--workers", type=int, default=field_default(ExecutorConfig, "workers"),
              help="Worker processes (local, default 1) or Ray actors at once (ray, default one per cluster CPU slot).")
@click.option("--policy", default=None,
              help=f"random | expert | noisy-expert (default: the one the run recorded in the dataset, else {field_default(CollectConfig, 'policy')}).")
@click.option("--seed", type=int, default=None, help=f"Dataset seed (default: the dataset's, else {field_default(CollectConfig, 'seed')}).")
@click.option("--image-size", type=int, default=None, help=f"Camera image side in pixels (default: the dataset's, else {field_default(EnvConfig, 'image_size')}).")
@click.option("--cameras", default=None,
              help="Cameras recorded per step, comma-separated: front (always), wrist "
                   f"(default: the dataset's, else {','.join(field_default(EnvConfig, 'cameras'))}).")
@click.option("--episode-length", type=int, default=None, help=f"Env steps per episode (default: the dataset's, else {field_default(EnvConfig, 'episode_length')}).")
@click.option("--action-repeat", type=int, default=None,
              help=f"Env steps per recorded step, the action repeated (default: the dataset's, else {field_default(EnvConfig, 'action_repeat')}).")
@click.option("--shard-episodes", type=int, default=None, help=f"Episodes per shard (default: the dataset's, else {field_default(CollectConfig, 'shard_episodes')}).")
@click.option("--canonical/--randomized", default=None,
              help="Turn domain randomization off or on "
                   f"(default: as the dataset has it, else {'on' if field_default(EnvConfig, 'randomization').enabled else 'off'}).")
@click.option("--goal-marker/--no-goal-marker", default=None,
              help="Draw a marker at the goal of tasks whose goal the frame would not show (reach, push, pick-place...) "
                   f"(default: as the dataset has it, else {'on' if field_default(EnvConfig, 'goal_marker') else 'off'}).")
@click.option("--noise", type=float, default=None,
              help=f"Action noise of noisy-expert (default: the one the run recorded in the dataset, else {field_default(CollectConfig, 'noise')}).")
@click.option("--vlm", default=None, help="Reward model spec for inline rewards, e.g. r3m:/path/model.pt.")
@click.option("--prompts", "prompt_set", default=None, help="Prompt set name for inline rewards.")
@click.option("--device", default=field_default(CollectConfig, "device"), show_default=True, help="Torch device of the reward model.")
@click.option("--run", "run_name", default=field_default(CollectConfig, "run"), show_default=True, help="Run name (shard name prefix).")
@click.option("--executor", type=click.Choice(EXECUTORS), default=field_default(ExecutorConfig, "kind"), show_default=True,
              help="Run workers as local processes or as actors on a Ray cluster.")
@click.option("--address", default=field_default(ExecutorConfig, "address"), help="Ray cluster address: auto, HOST:PORT (default: RAY_ADDRESS, else a new local instance).")
@click.option("--num-cpus-per-worker", type=float, default=field_default(ExecutorConfig, "cpus_per_worker"), show_default=True,
              help="CPUs Ray reserves per actor.")
@click.option("--on-damage", type=click.Choice(ON_DAMAGE), default=parameter_default(collect_episodes, "on_damage"), show_default=True,
              help="A damaged shard in the dataset: refuse to extend it (lamp-data verify --repair sets such shards aside), "
                   "or extend it as it is.")
def collect(env_name, episodes, out, workers, policy, seed, image_size, cameras, episode_length, action_repeat, shard_episodes,
            canonical, goal_marker, noise, vlm, prompt_set, device, run_name, executor, address, num_cpus_per_worker, on_damage) -> None:
    """Record episodes into a sharded dataset; running it again resumes or extends it.

    Options left out when extending a dataset are read from it (env, image size, cameras,
    episode length, action repeat, randomization, goal marker, seed, shard size, and the run's policy and noise);
    an option given that differs from the dataset is refused.
    """
    from lamp_data.envs import ENVS

    if env_name is not None and env_name not in ENVS:
        raise LampError(_unknown_env(env_name, ENVS.names()))
    scheduling = ExecutorConfig(kind=executor, address=address, workers=workers, cpus_per_worker=num_cpus_per_worker)
    config = resolve_config(
        out, env=env_name, episodes=episodes, policy=policy, seed=seed,
        image_size=image_size, cameras=cameras, episode_length=episode_length, action_repeat=action_repeat, shard_episodes=shard_episodes,
        canonical=canonical, goal_marker=goal_marker, noise=noise, vlm=vlm, prompts=prompt_set, device=device, run=run_name,
    )
    summary = collect_episodes(out, config, progress=True, executor=scheduling, on_damage=on_damage)
    click.echo(
        f"{summary.out}: {summary.episodes_total} episodes "
        f"({summary.episodes_written} new in {summary.shards_written} shards, "
        f"{summary.steps} steps at {summary.steps_per_second:.1f} steps/s, "
        f"success {summary.success_rate:.1%}; {summary.leftovers_removed} interrupted files removed"
        + (f"; {summary.reward_shards_written} reward shards" if summary.reward_shards_written else "")
        + ")"
    )
    _print_recovery(summary.out, summary.rederived, summary.quarantined)
    for name, reason in summary.damaged:
        click.echo(f"left damaged shard {name} as it is (--on-damage skip): {reason}", err=True)


def _print_recovery(out: str, rederived, quarantined) -> None:
    """One line per tar found without a sidecar: its sidecar re-derived, or where it was moved."""
    for tar in rederived:
        click.echo(f"recovered {out}/{tar}: complete, its sidecar was written again")
    for tar, target, reason in quarantined:
        click.echo(f"moved {out}/{tar} to {out}/{target}: {reason}")


def _unknown_env(name: str, known: list[str]) -> str:
    """The error for an unregistered env name, suggesting close matches (``pick-place`` -> ``mw-pick-place``)."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3) or [env for env in known if env.endswith(f"-{name}")]
    hint = f"; did you mean {' or '.join(close)}?" if close else f" (known: {', '.join(known)})"
    return f"unknown env '{name}'{hint}"


@click.command()
@click.argument("path", type=click.Path())
@click.option("--repair", is_flag=True,
              help="First repair what can be: seal info files the shards agree with, re-derive lost sidecars, move what "
                   "cannot be repaired to quarantine/ (nothing is deleted) and say what to run to make it again.")
def verify(path, repair) -> None:
    """Check every shard and reward shard against its sidecar; exit 1 if any is damaged."""
    from lamp_data.store import verify_dataset

    if repair:
        from lamp_data.pipeline.repair import repair_dataset

        repaired = repair_dataset(path)
        out = str(repaired.path)
        for file in repaired.sealed:
            click.echo(f"sealed {out}/{file}: the shards agree with it")
        _print_recovery(out, repaired.rederived, repaired.quarantined)
        for what in repaired.lost:
            click.echo(f"not made again by any command: {what}")
        click.echo(repaired.summary())
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
        if not repair:
            click.echo(f"`lamp-data verify {path} --repair` repairs what can be and says how to make the rest again")
        sys.exit(DAMAGED)


@click.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the card as JSON.")
def info(path, as_json) -> None:
    """Print the dataset card: episodes, steps, tasks, success rate, prompt and reward sets, size."""
    from lamp_data.store import dataset_card, open_dataset

    card = dataset_card(path)
    if as_json:
        click.echo(json.dumps(card, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    dataset = open_dataset(path)
    reward_prompts = {r["fingerprint"]: _prompt_set(dataset.reward_set_info(r["fingerprint"])) for r in card["reward_sets"]}
    recorded = _prompt_set(card["prompt_set"] or {})
    named = sorted({_count(name, count) for name, count in (recorded, *reward_prompts.values()) if name})
    reward_bytes = sum(r["bytes"] for r in card["reward_sets"])
    frame_bytes = card["bytes"] - reward_bytes
    rows = [
        ("env", f"{card['env']} ({card['image_size']} px, {card['episode_length']} steps, seed {card['seed']}"
                + (", goal marker" if recorded_options(path).get("goal_marker") else "") + ")"),
        ("cameras", ", ".join(card["cameras"])),
        ("episodes", f"{card['episodes']} in {card['shards']} shards, {card['steps']} steps"),
        ("success rate", f"{card['success_rate']:.1%}"),
        ("tasks", ", ".join(f"{task} ({count})" for task, count in card["tasks"].items()) or "-"),
        ("runs", ", ".join(f"{run}: {r['episodes']} ({r.get('policy', '?')})" for run, r in card["runs"].items()) or "-"),
        ("prompt set", ", ".join(named) or (_count("unnamed", recorded[1]) if recorded[1] else "-")),
        ("reward sets", ", ".join(
            f"{r['fingerprint']} ({reward_prompts[r['fingerprint']][0] or 'unnamed prompt set'}, {r['shards']} shards, "
            f"{_size(r['bytes'])}{'' if r['complete'] else ', incomplete'})"
            for r in card["reward_sets"]
        ) or "-"),
        ("size", f"{_size(card['bytes'])}: frames and episodes {_size(frame_bytes)} "
                 f"({frame_bytes / card['steps'] if card['steps'] else 0:.0f} bytes/step), rewards {_size(reward_bytes)}"),
    ]
    if card["interrupted_writes"]:
        rows.append(("interrupted", f"{card['interrupted_writes']} leftover files (collect recovers or removes them on resume; lamp-data verify says which)"))
    table = Table(title=escape(card["path"]), show_header=False)
    for label, text in rows:
        table.add_row(label, escape(text))
    Console().print(table)


def _prompt_set(info: dict) -> tuple[str | None, int | None]:
    """Name and prompt count of the prompt set a dataset card or a reward set's info records
    (its name under ``prompt_set``, or for a reward set in its provenance's ``prompt_set_name``)."""
    from lamp_data.store.reader import prompt_set_name

    recorded = info.get("prompt_set")
    count = recorded.get("count") if isinstance(recorded, dict) else None
    return prompt_set_name(info), count or info.get("prompt_count")


def _count(name: str, prompts: int | None) -> str:
    return f"{name} ({prompts} prompts)" if prompts else name


def _size(count: int) -> str:
    """A byte count for people: ``812 B``, ``3.4 kB``, ``1.2 MB``, ``5.0 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"
