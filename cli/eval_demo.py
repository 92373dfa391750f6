"""``lamp-eval demo``: the whole loop on the embedded simulator at tiny scale."""

import click

from lamp_cli.defaults import field_default
from lamp_eval.demo import DemoConfig, run_demo


@click.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--task", default=field_default(DemoConfig, "task"), show_default=True, help="Held-out task to finetune on.")
@click.option("--reward-model", default=field_default(DemoConfig, "reward_model"), help="Reward model spec (default: the committed in-domain model).")
@click.option("--seed", default=field_default(DemoConfig, "seed"), show_default=True, type=int, help="Seed of collection and pretraining.")
def demo(out: str, task: str, reward_model: str, seed: int) -> None:
    """Collect, relabel, pretrain, finetune and report on the embedded simulator."""
    run_demo(out, DemoConfig(task=task, reward_model=reward_model, seed=seed))
