"""``lamp-data train-reward-model``: train an in-domain R3M-style reward model on episodes of pretraining tasks.

Examples::

    lamp-data collect --env mw-pretrain --policy expert --episodes 240 --run expert --out data/rm-expert
    lamp-data train-reward-model --data data/rm-expert --out models/rm --steps 3000 --seed 0
    lamp-data train-reward-model --data data/rm-expert --out models/rm-gain --text-negatives all --head mlp-gain
    lamp-data train-reward-model --data data/rm-expert --out models/rm --steps 6000 --resume
    lamp-data collect --env mw-pretrain --policy random --episodes 120 --run random --out data/rm-random
    lamp-data train-reward-model --data data/rm-expert --data data/rm-random --out models/rm-fc --failure-contrast
    lamp-data relabel data/heldout --vlm r3m:models/rm/model.pt
"""

from __future__ import annotations

import click

from lamp_cli.defaults import field_default
from lamp_data.rewards.training.config import TEXT_NEGATIVES, RewardModelTrainConfig


@click.command("train-reward-model")
@click.option("--data", "data_dirs", multiple=True, required=True, type=click.Path(), help="Dataset of expert, noisy-expert or random episodes of pretraining tasks (repeatable).")
@click.option("--out", required=True, type=click.Path(), help="Output folder: model.pt, model card, training curve, resume state.")
@click.option("--steps", type=int, default=field_default(RewardModelTrainConfig, "steps"), show_default=True, help="Total training steps (a resumed run continues up to this many).")
@click.option("--seed", type=int, default=field_default(RewardModelTrainConfig, "seed"), show_default=True, help="Seed of the initial weights and of every batch.")
@click.option("--image-size", type=int, default=field_default(RewardModelTrainConfig, "image_size"), show_default=True, help="Side frames are resized to before the image trunk.")
@click.option("--batch-size", type=int, default=field_default(RewardModelTrainConfig, "batch_size"), show_default=True, help="Episodes per batch (four frames each).")
@click.option("--learning-rate", type=float, default=field_default(RewardModelTrainConfig, "learning_rate"), show_default=True,
              help="Adam learning rate.")
@click.option("--text-encoder", default=field_default(RewardModelTrainConfig, "text_encoder"), show_default=True, help="Frozen text encoder: minilm or a local model folder.")
@click.option("--text-negatives", type=click.Choice(TEXT_NEGATIVES), default=field_default(RewardModelTrainConfig, "text_negatives"),
              show_default=True,
              help="Contrast the own text with one other task's text (R3M) or with every other task's texts.")
@click.option("--head", type=click.Choice(["mlp", "mlp-gain", "bilinear", "bilinear-gain"]), default=field_default(RewardModelTrainConfig, "head"),
              show_default=True,
              help="Reward head: R3M's MLP on [e_0, e_t, l] or an image MLP dotted with a text projection; "
                   "-gain subtracts the head's value at the first frame.")
@click.option("--failure-contrast", is_flag=True,
              help="Also rank successful episodes' late frames above frames of failed episodes of the same task "
                   "(give random or noisy-expert episodes too).")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
def train_reward_model(data_dirs, out, steps, seed, image_size, batch_size, learning_rate, text_encoder, text_negatives, head,
                       failure_contrast, resume) -> None:
    """Train an R3M-style language-reward model on episodes of pretraining tasks."""
    from lamp_data.rewards.training import train_reward_model as train

    config = RewardModelTrainConfig(
        steps=steps, seed=seed, image_size=image_size, batch_size=batch_size, learning_rate=learning_rate, text_encoder=text_encoder,
        text_negatives=text_negatives, head=head, failure_contrast=failure_contrast,
    )
    path = train(list(data_dirs), out, config, resume=resume)
    click.echo(f"wrote {path} (load with r3m:{path}); model card in {path.parent / 'model_card.md'}")
