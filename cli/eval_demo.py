"""``lamp-eval demo``: the whole loop on the embedded simulator at tiny scale."""

import click


@click.command()
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--task", default="button-press-topdown", show_default=True, help="Held-out task to finetune on.")
@click.option("--reward-model", default="", help="Reward model spec (default: the committed in-domain model).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of collection and pretraining.")
def demo(out: str, task: str, reward_model: str, seed: int) -> None:
    """Collect, relabel, pretrain, finetune and report on the embedded simulator."""
    from lamp_eval.demo import DemoConfig, run_demo

    run_demo(out, DemoConfig(task=task, reward_model=reward_model, seed=seed))
