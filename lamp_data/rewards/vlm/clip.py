"""CLIP-style reward models through ``transformers``: cosine similarity, relative to the first frame.

Spec strings: ``clip:openai/clip-vit-base-patch32`` (a hub id, which must already be in the local
Hugging Face cache: nothing is downloaded) or ``clip:/local/dir`` (a ``save_pretrained`` folder),
with options after ``?`` joined by ``&``:

* ``alpha=A`` (0–1, default 0): VLM-RM's goal–baseline projection. With image embedding ``x``,
  prompt embedding ``g`` and baseline-text embedding ``b`` (all unit length), direction
  ``d = (g - b)/|g - b|`` and ``P = A d dᵀ + (1 - A) I``, the score is ``1 - ½|P (x - g)|²``. At
  ``A = 0`` that is exactly the cosine similarity ``x·g``.
* ``baseline=TEXT`` (default ``a robot arm on a table``): the baseline prompt of the projection.
* ``standardize=1``: standardise each prompt's rewards over the episode (mean 0, std 1).

The reward of frame ``t`` is relative to the episode's first frame, like R3M's
``G(e_0, e_t, l)``: ``r_t = s(x_t, g) - s(x_0, g)``, so ``r_0 = 0`` and a frame earns reward only
for moving the scene towards the prompt.

Frames are preprocessed in torch the way the model's ``CLIPImageProcessor`` does it (bicubic
resize of the shorter side, centre crop, rescale, normalise with its mean and std, read from
``preprocessor_config.json``; see :mod:`lamp_data.rewards.vlm.pretrained`), without PIL, so batches stay on
the model's device. Prompts are tokenized in padded batches: CLIP's causal text encoder pools the end-of-text token, which no
padding can reach, so an embedding does not depend on its batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lamp_data.errors import LampError
from lamp_data.rewards.vlm.base import parse_flag, split_spec_options, standardize_per_prompt
from lamp_data.rewards.vlm.pretrained import PretrainedRewardModel, image_settings, load_pretrained, parse_alpha

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_BASELINE = "a robot arm on a table"
"""Baseline prompt of the goal–baseline projection."""
SPEC_OPTIONS = ("alpha", "baseline", "standardize")
TEXT_BATCH = 256
"""Prompts tokenized and encoded together."""


class CLIPRewardModel(PretrainedRewardModel):
    """A frozen ``CLIPModel`` scoring frames by (projected) cosine similarity to each prompt.

    Args:
        model: The loaded ``transformers.CLIPModel``.
        tokenizer: Its tokenizer.
        preprocessing: ``resize``, ``crop``, ``mean``, ``std``, ``interpolation`` (see
            :func:`lamp_data.rewards.vlm.pretrained.image_settings`).
        alpha: Goal–baseline projection strength in [0, 1]; 0 is plain cosine similarity.
        baseline: Baseline prompt of the projection.
        standardize: Standardise each prompt's rewards over the episode.
    """

    family = "clip"

    def __init__(self, model: Any, tokenizer: Any, preprocessing: dict[str, Any], alpha: float = 0.0, baseline: str = DEFAULT_BASELINE, standardize: bool = False):
        if not 0.0 <= alpha <= 1.0:
            raise LampError(f"CLIP alpha must be between 0 and 1, got {alpha}")
        super().__init__(model, tokenizer, preprocessing, standardize)
        self.alpha = float(alpha)
        self.baseline = baseline

    def spec(self) -> dict[str, Any]:
        return {
            **self.identity(),
            "preprocessing": {**self.preprocessing, "interpolation": f"{self.preprocessing['interpolation']}, antialiased", "scale": "1/255"},
            "reward": "s(x_t, g) - s(x_0, g), s = 1 - 0.5 |P (x - g)|^2",
            "alpha": self.alpha,
            "baseline": self.baseline if self.alpha else None,
        }

    @torch.inference_mode()
    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for start in range(0, len(texts), TEXT_BATCH):
            tokens = self.tokenize(texts[start : start + TEXT_BATCH]).to(self.device)
            features = self.model.get_text_features(**tokens)
            features = getattr(features, "pooler_output", features)
            rows.append(torch.nn.functional.normalize(features.float(), dim=-1))
        return torch.cat(rows)

    def embed_prompts(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            goals = self._encode_text(list(prompts))
            embedded = {"goal": goals}
            if self.alpha:
                baseline = self._encode_text([self.baseline])
                direction = torch.nn.functional.normalize(goals - baseline, dim=-1)
                embedded["direction"] = direction
                embedded["goal_along"] = (direction * goals).sum(-1)
            return embedded

    def embed_frames(self, frames: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            pixels = self.preprocess(torch.from_numpy(np.ascontiguousarray(frames)))
            features = self.model.get_image_features(pixel_values=pixels)
            features = getattr(features, "pooler_output", features)
            return torch.nn.functional.normalize(features.float(), dim=-1)

    def similarity(self, images: torch.Tensor, prompts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``s(x, g)`` for every image row and prompt, ``[N, P]``."""
        cosine = images @ prompts["goal"].T
        if not self.alpha:
            return cosine
        along = images @ prompts["direction"].T - prompts["goal_along"][None, :]
        squared = (1 - self.alpha) ** 2 * (2 - 2 * cosine) + self.alpha * (2 - self.alpha) * along**2
        return 1 - 0.5 * squared

    def score(self, first: torch.Tensor, frames: torch.Tensor, prompts: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return (self.similarity(frames, prompts) - self.similarity(first, prompts)).cpu().numpy()

    def episode_rewards(self, frames: np.ndarray, prompts: Any, batch_size: int = 64) -> np.ndarray:
        rewards = super().episode_rewards(frames, prompts, batch_size)
        return standardize_per_prompt(rewards).astype(np.float16) if self.standardize else rewards


def load_clip(argument: str, device: str = "cpu") -> CLIPRewardModel:
    """Factory for ``clip:<hub id | folder>[?alpha=A&baseline=TEXT&standardize=1]``."""
    target, options = split_spec_options(argument, SPEC_OPTIONS)
    alpha = parse_alpha(options, "CLIP")
    from transformers import CLIPModel

    model, tokenizer, source = load_pretrained(CLIPModel, target, "CLIP", "clip")
    side = int(model.config.vision_config.image_size)
    defaults = {"size": {"shortest_edge": side}, "crop_size": side, "do_center_crop": True, "resample": 3,
                "image_mean": OPENAI_CLIP_MEAN, "image_std": OPENAI_CLIP_STD}
    preprocessing = image_settings(source, defaults)
    return CLIPRewardModel(
        model.to(device),
        tokenizer,
        preprocessing,
        alpha=alpha,
        baseline=options.get("baseline") or DEFAULT_BASELINE,
        standardize=parse_flag(options, "standardize"),
    )
