"""An R3M-style model behind the reward-model protocol, and the ``r3m:`` spec strings.

Spec strings: ``r3m:resnet50`` (also resnet18/34) reads ``~/.r3m/r3m_50/model.pt``, R3M's own
cache (``$R3M_HOME`` overrides ``~/.r3m``); ``r3m:lamp-r3m-metaworld`` reads the model shipped with
the package (:mod:`lamp_data.rewards.vlm.shipped`); ``r3m:/path/model.pt`` reads that file. Names come
before paths: write ``r3m:./resnet50`` for a file called ``resnet50``. Options:
``?text=FOLDER`` takes the tokenizer (and, if the checkpoint lacks them, the text weights) from a
local folder; ``?image_size=224`` resizes frames to 224 × 224 (``0``: their own size) in place of
the checkpoint's setting; ``?standardize=1`` standardises each prompt's rewards over the episode.
Options join with ``&``. The frame size is part of the reward fingerprint, so rewards at native
size and resized ones are separate reward sets; an option equal to the checkpoint's own setting
changes nothing, fingerprint included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_data.errors import LampError
from lamp_data.rewards.text import DISTILBERT, MINILM
from lamp_data.rewards.vlm.base import (
    RewardModel,
    parse_flag,
    split_spec_options,
    standardize_per_prompt,
    state_dict_digest,
)
from lamp_data.rewards.vlm.r3m.checkpoint import CACHE_FOLDERS, load_r3m_checkpoint, r3m_cache_path
from lamp_data.rewards.vlm.r3m.networks import IMAGENET_MEAN, IMAGENET_STD, R3M, REWARD_FORMS
from lamp_data.rewards.vlm.shipped import SHIPPED_MODELS, shipped_model_path

SPEC_OPTIONS = ("text", "image_size", "standardize")
"""Options an ``r3m:`` spec string may carry after ``?``."""


class R3MRewardModel(RewardModel):
    """:class:`R3M` behind the reward-model protocol; prompts embed to the head's prompt term."""

    family = "r3m"

    def __init__(self, model: R3M, source: str, standardize: bool = False, metadata: dict[str, Any] | None = None):
        self.model = model.eval()
        self.source = source
        self.standardize = standardize
        self.metadata = metadata or {}
        self.device = model.pixel_mean.device
        self.weights_digest = state_dict_digest(model)

    def spec(self) -> dict[str, Any]:
        config = self.model.config.to_dict()
        if config["text_encoder"] not in (DISTILBERT, MINILM):
            config["text_encoder"] = "local folder"
        return {
            "family": self.family,
            "weights": self.weights_digest,
            "config": config,
            "text": self.model.lang_enc.identity(),
            "preprocessing": {
                "resize": self.model.config.image_size or "none",
                "interpolation": "bilinear, antialiased",
                "scale": "1/255",
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
            },
            "reward": REWARD_FORMS[self.model.config.head],
            "standardize": "per episode and prompt" if self.standardize else "none",
        }

    def embed_prompts(self, prompts: list[str]) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.prompt_terms(self.model.encode_text(prompts))

    def embed_frames(self, frames: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.encode_frames(torch.from_numpy(np.ascontiguousarray(frames)))

    def score(self, first: torch.Tensor, frames: torch.Tensor, prompts: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            first_term, frame_term = self.model.frame_terms(first, frames)
            return self.model.split_rewards(first_term, frame_term, prompts).float().cpu().numpy()

    def episode_rewards(self, frames: np.ndarray, prompts: Any, batch_size: int = 64) -> np.ndarray:
        rewards = super().episode_rewards(frames, prompts, batch_size)
        return standardize_per_prompt(rewards).astype(np.float16) if self.standardize else rewards


def parse_image_size(options: dict[str, str]) -> int | None:
    """The ``image_size`` option: None when absent, else 0 (frames' own size) or a side of 16–1024."""
    if "image_size" not in options:
        return None
    value = options["image_size"].strip()
    if not (value.isascii() and value.isdigit()) or (int(value) != 0 and not 16 <= int(value) <= 1024):
        raise LampError(f"R3M option image_size={options['image_size']} must be 0 (frames at their own size) or a side of 16–1024 pixels")
    return int(value)


def load_r3m(argument: str, device: str = "cpu") -> R3MRewardModel:
    """Factory for ``r3m:<resnet18|resnet34|resnet50|shipped name|path>[?text=FOLDER&image_size=N&standardize=1]``."""
    target, options = split_spec_options(argument, SPEC_OPTIONS)
    image_size = parse_image_size(options)
    own_shipped = sorted(name for name, shipped in SHIPPED_MODELS.items() if shipped.family == "r3m")
    if target in own_shipped:
        path = shipped_model_path(target)
    elif target in CACHE_FOLDERS:
        path = r3m_cache_path(target)
        if not path.is_file():
            raise LampError(
                f"R3M {target} weights not found at {path}; download R3M's {CACHE_FOLDERS[target]}/model.pt there "
                "(or set R3M_HOME), or give a checkpoint path: r3m:/path/model.pt"
            )
    else:
        path = Path(target).expanduser()
        if not path.is_file():
            known = ", ".join([*CACHE_FOLDERS, *own_shipped])
            raise LampError(f"R3M checkpoint '{target}' does not exist (give a .pt file or one of: {known})")
    model, metadata = load_r3m_checkpoint(path, device, options.get("text") or None, image_size)
    return R3MRewardModel(model, str(path), parse_flag(options, "standardize"), metadata)
