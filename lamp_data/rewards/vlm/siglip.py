"""SigLIP reward models through ``transformers``: CLIP's reward on a sigmoid-loss image-text model.

Spec strings: ``siglip:google/siglip-base-patch16-224`` (a hub id already in the local Hugging
Face cache: nothing is downloaded) or ``siglip:/local/dir`` (a ``save_pretrained`` folder), with
the options of ``clip:`` (see :mod:`lamp_data.rewards.vlm.clip`) and one more:

* ``alpha=A``, ``baseline=TEXT``: VLM-RM's goal–baseline projection, exactly as for ``clip:``;
* ``standardize=1``: standardise each prompt's rewards over the episode;
* ``probability=1``: score with SigLIP's own pair probability ``σ(e^t x·g + b)`` (its learned
  temperature ``t`` and bias ``b``) instead of the cosine ``x·g``. A sigmoid-loss model scores
  each image–prompt pair on its own, so this is a calibrated "does the frame show the prompt"
  that, unlike a softmax over prompts, does not depend on the rest of the prompt set. It cannot
  be combined with ``alpha``.

As for ``clip:``, ``r_t = s(x_t, g) - s(x_0, g)``: the reward is relative to the first frame.

SigLIP differs from CLIP where its checkpoints say so: frames are resized straight to the
processor's height × width (no centre crop; bicubic, mean and std 0.5 from
``preprocessor_config.json``), and prompts are padded to the text tower's full length and encoded
without an attention mask, as SigLIP was trained: its text tower pools the last position, so a
prompt's embedding never depends on its batch.
"""

from __future__ import annotations

from typing import Any

import torch

from lamp_data.errors import LampError
from lamp_data.rewards.vlm.base import parse_flag, split_spec_options
from lamp_data.rewards.vlm.clip import DEFAULT_BASELINE, SPEC_OPTIONS as CLIP_SPEC_OPTIONS, TEXT_BATCH, CLIPRewardModel
from lamp_data.rewards.vlm.pretrained import image_settings, load_pretrained, parse_alpha

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
SPEC_OPTIONS = (*CLIP_SPEC_OPTIONS, "probability")


class SiglipRewardModel(CLIPRewardModel):
    """A frozen ``SiglipModel`` scoring frames by (projected) cosine similarity or pair probability.

    Args:
        model: The loaded ``transformers.SiglipModel``.
        tokenizer: Its tokenizer.
        preprocessing: ``resize``, ``crop``, ``mean``, ``std``, ``interpolation`` (see
            :func:`lamp_data.rewards.vlm.pretrained.image_settings`).
        alpha: Goal–baseline projection strength in [0, 1]; 0 is plain cosine similarity.
        baseline: Baseline prompt of the projection.
        standardize: Standardise each prompt's rewards over the episode.
        probability: Score with ``σ(e^t x·g + b)`` instead of the cosine (needs ``alpha = 0``).
    """

    family = "siglip"

    def __init__(self, model: Any, tokenizer: Any, preprocessing: dict[str, Any], alpha: float = 0.0, baseline: str = DEFAULT_BASELINE, standardize: bool = False, probability: bool = False):
        if probability and alpha:
            raise LampError("SigLIP options probability=1 and alpha cannot be combined (the projection is defined on cosines)")
        super().__init__(model, tokenizer, preprocessing, alpha=alpha, baseline=baseline, standardize=standardize)
        self.probability = probability
        self.max_length = int(model.config.text_config.max_position_embeddings)

    @property
    def text_call(self) -> dict[str, Any]:
        """SigLIP was trained on prompts padded to its full length, without an attention mask."""
        return {"padding": "max_length", "truncation": True, "max_length": self.max_length}

    def spec(self) -> dict[str, Any]:
        return {
            **super().spec(),
            "preprocessing": {**self.preprocessing, "antialias": True, "scale": "1/255"},
            "text": f"padded to {self.max_length} tokens, no attention mask",
            "reward": "s(x_t, g) - s(x_0, g), " + ("s = sigmoid(exp(t) x.g + b)" if self.probability else "s = 1 - 0.5 |P (x - g)|^2"),
            "probability": self.probability,
        }

    @torch.inference_mode()
    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for start in range(0, len(texts), TEXT_BATCH):
            tokens = self.tokenize(texts[start : start + TEXT_BATCH])
            features = self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device))
            features = getattr(features, "pooler_output", features)
            rows.append(torch.nn.functional.normalize(features.float(), dim=-1))
        return torch.cat(rows)

    def similarity(self, images: torch.Tensor, prompts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``s(x, g)`` for every image row and prompt, ``[N, P]``."""
        values = super().similarity(images, prompts)
        if not self.probability:
            return values
        return torch.sigmoid(values * self.model.logit_scale.float().exp() + self.model.logit_bias.float())


def load_siglip(argument: str, device: str = "cpu") -> SiglipRewardModel:
    """Factory for ``siglip:<hub id | folder>[?alpha=A&baseline=TEXT&standardize=1&probability=1]``."""
    target, options = split_spec_options(argument, SPEC_OPTIONS)
    alpha = parse_alpha(options, "SigLIP")
    from transformers import SiglipModel

    model, tokenizer, source = load_pretrained(SiglipModel, target, "SigLIP", "siglip")
    side = model.config.vision_config.image_size
    height, width = (side, side) if isinstance(side, int) else side
    defaults = {"size": {"height": height, "width": width}, "do_center_crop": False, "resample": 3, "image_mean": SIGLIP_MEAN, "image_std": SIGLIP_STD}
    preprocessing = image_settings(source, defaults)
    return SiglipRewardModel(
        model.to(device),
        tokenizer,
        preprocessing,
        alpha=alpha,
        baseline=options.get("baseline") or DEFAULT_BASELINE,
        standardize=parse_flag(options, "standardize"),
        probability=parse_flag(options, "probability"),
    )
