"""Training in-domain R3M-style reward models on episodes from the store.

``train_reward_model(["data/experts"], "models/rm", RewardModelTrainConfig(steps=3000))`` trains a
model that ``load_reward_model("r3m:models/rm/model.pt")`` reads (see
:mod:`lamp_data.reward_training.train`); :mod:`~lamp_data.reward_training.data` loads and samples
the training episodes, :mod:`~lamp_data.reward_training.card` writes the model card. Reward models
themselves live in :mod:`lamp_data.vlm`, which knows nothing of training or of the store.
"""

from lamp_data.reward_training.train import RewardModelTrainConfig, train_reward_model

__all__ = ["RewardModelTrainConfig", "train_reward_model"]
