"""Training in-domain R3M-style reward models on episodes from the store.

``train_reward_model(["data/experts"], "models/rm", RewardModelTrainConfig(steps=3000))`` trains a
model that ``load_reward_model("r3m:models/rm/model.pt")`` reads (see
:mod:`lamp_data.rewards.training.train`); :mod:`~lamp_data.rewards.training.config` holds the
config, :mod:`~lamp_data.rewards.training.data` loads and samples the training episodes,
:mod:`~lamp_data.rewards.training.card` writes the model card. Reward models themselves live in
:mod:`lamp_data.rewards.vlm`, which knows nothing of training or of the store.

The config imports without torch; ``train_reward_model`` imports it when first asked for.
"""

from typing import Any

from lamp_data.rewards.training.config import RewardModelTrainConfig

__all__ = ["RewardModelTrainConfig", "train_reward_model"]


def __getattr__(name: str) -> Any:
    if name != "train_reward_model":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from lamp_data.rewards.training.train import train_reward_model

    return train_reward_model


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"train_reward_model"})
