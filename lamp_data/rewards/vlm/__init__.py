"""Frozen vision-language reward models behind one protocol, found by a spec string.

``load_reward_model("r3m:resnet50")``, ``load_reward_model("r3m:/path/model.pt")``,
``load_reward_model("clip:openai/clip-vit-base-patch32")``, ``load_reward_model("clip:/local/dir")``,
``load_reward_model("siglip:/local/dir")``, ``load_reward_model("xclip:/local/dir?stride=2")``.
The part before the colon picks the family in :data:`REWARD_MODELS`; the rest is passed on.
A model shipped with the package loads by its name alone, ``load_reward_model("lamp-r3m-metaworld")``
(the same as ``"r3m:lamp-r3m-metaworld"``); :func:`shipped_model_path` gives its file.
"""

from lamp_data.rewards.vlm.base import (
    REWARD_MODELS,
    RewardModel,
    load_reward_model,
    reward_fingerprint,
)
from lamp_data.rewards.vlm.shipped import shipped_model_path

__all__ = ["REWARD_MODELS", "RewardModel", "load_reward_model", "reward_fingerprint", "shipped_model_path"]
