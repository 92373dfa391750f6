"""``lamp-agent pretrain``: pretrain the LAMP agent on a dataset's shards and VLM rewards.

Examples::

    lamp-agent pretrain --data data/mw --rewards r3m-1a2b3c4d5e6f --steps 200 --preset tiny --out runs/lamp
    lamp-agent pretrain --data data/mw --rewards r3m-1a2b3c4d5e6f --steps 200 --preset tiny --out runs/lamp --resume
    lamp-agent pretrain --data data/mw --rewards r3m-1a2b3c4d5e6f --steps 2000 --preset small --precision bf16 --out runs/bf16
    lamp-agent pretrain --data data/mw --rewards r3m-1a2b3c4d5e6f --steps 100000 --preset paper \\
        --alpha 1.0 --device cuda --collect-every 500 --out runs/p2e
"""

import click

from lamp_agent.config import PRECISIONS, AgentConfig, PretrainConfig
from lamp_data.errors import ON_DAMAGE
from lamp_cli.defaults import field_default


@click.command()
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option("--rewards", required=True, help="Reward-set fingerprint (lamp-data info lists them).")
@click.option("--steps", required=True, type=int, help="Total agent updates.")
@click.option("--preset", default=field_default(PretrainConfig, "preset"), show_default=True, help="tiny | cpu | small | paper, or a YAML file of agent config fields.")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=field_default(PretrainConfig, "alpha"),
              help=f"P2E share of the reward (preset default {field_default(AgentConfig, 'alpha')}; 1 = pure Plan2Explore).")
@click.option("--device", default=field_default(PretrainConfig, "device"), show_default=True, help="Torch device: cpu, cuda, cuda:1 ...")
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Training precision instead of the preset's; bf16 autocasts forward passes (fast on CPUs with AMX or AVX512-BF16, and on recent GPUs).")
@click.option("--seed", type=int, default=field_default(PretrainConfig, "seed"), show_default=True)
@click.option("--collect-every", type=click.IntRange(min=0), default=field_default(PretrainConfig, "collect_every"), show_default=True, help="Updates between collecting new episodes with the policy (0: never).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=field_default(PretrainConfig, "checkpoint_every"), show_default=True, help="Updates between checkpoints when not collecting (0: at the end).")
@click.option("--own-prompt", type=click.FloatRange(0.0, 1.0), default=None,
              help="Hindsight prompts: chance a sequence keeps its own instruction "
                   f"(preset default {field_default(AgentConfig, 'own_prompt_fraction')}); otherwise any prompt of the set.")
@click.option("--text-encoder", default=field_default(PretrainConfig, "text_encoder"), show_default=True, help="Prompt encoder: minilm or a local model folder.")
@click.option("--out", required=True, type=click.Path(), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@click.option("--on-damage", type=click.Choice(ON_DAMAGE), default=field_default(PretrainConfig, "on_damage"), show_default=True,
              help="A damaged shard: stop with an error naming it, or train without it (listed in the summary and skipped_shards.json).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Torch CPU threads (default: torch's). Use 1 for tiny presets or on a busy machine.")
def pretrain(data, rewards, steps, preset, alpha, device, precision, seed, collect_every, checkpoint_every, own_prompt, text_encoder, out, resume, on_damage, quiet, threads):
    """Pretrain the world-model agent with Plan2Explore and LAMP rewards."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from lamp_agent.pretrain import pretrain as run_pretrain

    config = PretrainConfig(
        data=data, rewards=rewards, out=out, steps=steps, preset=preset, alpha=alpha, device=device, seed=seed,
        collect_every=collect_every, checkpoint_every=checkpoint_every, resume=resume, text_encoder=text_encoder,
        on_damage=on_damage,
        agent_overrides={
            key: value for key, value in (("own_prompt_fraction", own_prompt), ("precision", precision)) if value is not None
        },
    )
    summary = run_pretrain(config, progress=not quiet)
    click.echo(
        f"step {summary.step} ({summary.updates} updates, {summary.updates_per_second:.2f}/s, "
        f"data wait {100 * summary.data_wait_fraction:.1f}%); collected {summary.episodes_collected} episodes "
        f"in {summary.shards_written} shards; checkpoint {summary.checkpoint}"
    )
    if summary.skipped_shards:
        click.echo(
            f"skipped {len(summary.skipped_shards)} damaged shards: {', '.join(sorted(summary.skipped_shards))} "
            f"(reasons in {summary.out}/skipped_shards.json)"
        )
