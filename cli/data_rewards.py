"""``lamp-data prompts | relabel``: prompt sets and re-scoring a dataset with a reward model.

Examples::

    lamp-data prompts                                   # list the built-in prompt sets
    lamp-data prompts lamp-metaworld --limit 20         # show the first prompts of one
    lamp-data prompts my_prompts.txt --json             # check a prompt file, print it as JSON
    lamp-data relabel data/mw --vlm r3m:resnet50
    lamp-data relabel data/mw --rewards r3m-1a2b3c4d5e6f        # score a set's damaged or missing shards again
    lamp-data relabel data/mw --rewards r3m-1a2b3c4d5e6f --force # score all of them again
    lamp-data relabel data/mw --vlm r3m:/models/r3m.pt --prompts lamp-metaworld --batch-size 128
    lamp-data relabel data/mw --vlm "clip:/models/clip?alpha=0.5&standardize=1" --device cuda
    lamp-data relabel data/mw --vlm "siglip:google/siglip-base-patch16-224?probability=1"
    lamp-data relabel data/mw --vlm "xclip:microsoft/xclip-base-patch32?stride=2" --device cuda
    lamp-data relabel /shared/mw --vlm r3m:/shared/models/r3m.pt --device cuda --executor ray --address auto
"""

from __future__ import annotations

import json

import click

from lamp_cli.defaults import field_default, parameter_default
from lamp_data.pipeline.executors import EXECUTORS, ExecutorConfig
from lamp_data.pipeline.relabel import MAX_BATCH_SIZE, relabel as relabel_dataset
from lamp_data.rewards.prompts import DEFAULT_PROMPT_SET


@click.command()
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True, help="Prompts shown (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (name, hash, count, prompts).")
def prompts(name, limit, as_json) -> None:
    """List the prompt sets, or show one (a registered NAME or a .txt/.json file)."""
    from lamp_data.rewards.prompts import PROMPT_SETS, load_prompt_set

    if name is None:
        rows = []
        for set_name in PROMPT_SETS.names():
            prompt_set = load_prompt_set(set_name)
            rows.append({**prompt_set.summary(), "description": PROMPT_SETS.description(set_name)})
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        from lamp_data.tables import Column, fit_table

        columns = [Column("name"), Column("prompts", align=">"), Column("hash", priority=1), Column("description", wrap=True, min_width=30)]
        lines, _ = fit_table(columns, [(row["name"], str(row["count"]), row["hash"], row["description"]) for row in rows])
        click.echo("\n".join(lines))
        return
    prompt_set = load_prompt_set(name)
    if as_json:
        click.echo(json.dumps(prompt_set.to_json(), indent=2))
        return
    click.echo(f"{prompt_set.name}: {len(prompt_set)} prompts, hash {prompt_set.hash}")
    shown = prompt_set.prompts if limit <= 0 else prompt_set.prompts[:limit]
    for index, prompt in enumerate(shown):
        click.echo(f"{index:>6}  {prompt}")
    if len(shown) < len(prompt_set):
        click.echo(f"   ... {len(prompt_set) - len(shown)} more (--limit 0 shows all)")


@click.command()
@click.argument("path", type=click.Path())
@click.option("--rewards", "reward_set", default=None,
              help="Fingerprint of a reward set of the dataset to score into (its damaged or missing shards), with the model "
                   "and prompts it records unless --vlm / --prompts are given.")
@click.option("--force", is_flag=True, help="Score every shard again, replacing the reward shards already there.")
@click.option("--vlm", default=None, help="Reward model spec (required without --rewards): r3m:resnet50, r3m:/path/model.pt[?image_size=224], "
              "clip:/dir[?alpha=0.5&standardize=1], siglip:/dir[?probability=1], xclip:/dir[?stride=2&video_prompt=0].")
@click.option("--prompts", "prompt_set", default=None, help=f"Prompt-set name or .txt/.json file (default: the dataset's, else {DEFAULT_PROMPT_SET}).")
@click.option("--device", default=parameter_default(relabel_dataset, "device"), show_default=True, help="Torch device: cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=parameter_default(relabel_dataset, "batch_size"), show_default=True,
              help="Frames per forward pass.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=field_default(ExecutorConfig, "kind"), show_default=True,
              help="Score in this process, or with reward-model actors on a Ray cluster.")
@click.option("--address", default=field_default(ExecutorConfig, "address"), help="Ray cluster address: auto, HOST:PORT (default: RAY_ADDRESS, else a new local instance).")
@click.option("--workers", type=int, default=field_default(ExecutorConfig, "workers"), help="Ray actors (default: one per GPU with --device cuda, else per CPU slot).")
@click.option("--num-cpus-per-worker", type=float, default=field_default(ExecutorConfig, "cpus_per_worker"), show_default=True,
              help="CPUs Ray reserves per actor.")
def relabel(path, reward_set, force, vlm, prompt_set, device, batch_size, as_json, executor, address, workers, num_cpus_per_worker) -> None:
    """Score every frame of a dataset into rewards/<fingerprint>/ (resumable, idempotent; damaged
    or foreign reward shards are moved to quarantine/ and scored again)."""
    scheduling = ExecutorConfig(kind=executor, address=address, workers=workers, cpus_per_worker=num_cpus_per_worker)
    summary = relabel_dataset(path, vlm, prompt_set, device=device, batch_size=batch_size, progress=not as_json,
                              executor=scheduling, reward_set=reward_set, force=force)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
        return
    click.echo(
        f"{summary.dataset}: reward set {summary.fingerprint} ({summary.prompts} prompts of {summary.prompt_set}); "
        f"{summary.shards_written} shards written ({summary.shards_replaced} of them replacing damaged or forced ones), "
        f"{summary.shards_skipped} already present; "
        f"{summary.frames} frames at {summary.frames_per_second:.1f} frames/s"
    )
