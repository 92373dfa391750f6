"""The networks of an R3M-style reward model: its config, the reward heads and the model.

See :mod:`lamp_data.rewards.vlm.r3m` for the parts and the choices recorded in every fingerprint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from lamp_data.errors import LampError
from lamp_data.rewards.text import DISTILBERT, MINILM, build_text_encoder
from lamp_data.rewards.vlm.resnet import TRUNKS, build_trunk

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HEAD_CHUNK_ELEMENTS = 1 << 24
"""Largest hidden activation (frames × prompts × hidden) the head computes at once."""
REWARD_FORMS = {
    "mlp": "G(e_0, e_t, l), raw MLP output",
    "mlp-gain": "G(e_0, e_t, l) - G(e_0, e_0, l), raw MLP outputs",
    "bilinear": "G(e_0, e_t, l) = h(e_0, e_t) · (W l + b) / sqrt(k)",
    "bilinear-gain": "G(e_0, e_t, l) = (h(e_0, e_t) - h(e_0, e_0)) · (W l + b) / sqrt(k)",
}
"""What each head's reward is, recorded in the reward model's spec."""
HEADS = ("mlp", "mlp-gain", "bilinear", "bilinear-gain")
"""Reward head forms: R3M's MLP on ``[e_0, e_t, l]``, or a dot product of an image MLP and a text
projection; the ``-gain`` forms subtract the head's value at ``e_t = e_0``, so ``G(e_0, e_0, l) = 0``."""


@dataclass(frozen=True)
class R3MConfig:
    """Architecture and preprocessing of an R3M-style reward model."""

    trunk: str = "resnet50"
    """Image trunk: resnet18, resnet34, resnet50 or conv-small."""
    image_size: int = 224
    """Side frames are resized to; 0 keeps the frame size (R3M's released models load with 0)."""
    text_encoder: str = DISTILBERT
    """``distilbert`` (R3M's, from the HF cache), ``minilm`` (bundled) or a local model folder."""
    lang_dim: int = 768
    """Size of the text embedding (768 for DistilBERT, 384 for MiniLM)."""
    head_hidden: int = 1024
    """Width of the reward MLP's hidden layers."""
    head_layers: int = 4
    """Hidden layers of the reward MLP (R3M: 4)."""
    text_max_length: int = 128
    """Tokens kept per prompt."""
    head: str = "mlp"
    """``mlp``: R3M's MLP on ``[e_0, e_t, l]``; ``bilinear``: ``h(e_0, e_t) · (W l + b) / sqrt(head_hidden)``
    with ``h`` an MLP of the same depth and width; ``mlp-gain`` / ``bilinear-gain``: the same less
    its value at ``e_t = e_0`` (see ``HEADS``)."""

    def __post_init__(self) -> None:
        if self.trunk not in TRUNKS:
            raise LampError(f"unknown R3M trunk '{self.trunk}' (known: {', '.join(TRUNKS)})")
        if self.image_size != 0 and not 16 <= self.image_size <= 1024:
            raise LampError(f"R3M image_size must be 0 (frame size) or 16–1024, got {self.image_size}")
        if self.head_layers < 1 or self.head_hidden < 1 or self.lang_dim < 1:
            raise LampError("R3M head_layers, head_hidden and lang_dim must be positive")
        if self.head not in HEADS:
            raise LampError(f"unknown R3M head '{self.head}' (known: {', '.join(HEADS)})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored in checkpoints; the default ``mlp`` head is left out, so R3M-head
        models keep the form (and fingerprints) they had before heads were selectable."""
        value = asdict(self)
        if value["head"] == "mlp":
            del value["head"]
        return value

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "R3MConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a LampError."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise LampError(f"R3M config has unknown fields: {', '.join(unknown)}")
        return cls(**value)

    @classmethod
    def tiny(cls, text_encoder: str = MINILM, lang_dim: int = 384) -> "R3MConfig":
        """A small model for tests and CPU demos."""
        return cls(trunk="conv-small", image_size=32, text_encoder=text_encoder, lang_dim=lang_dim, head_hidden=64, head_layers=2)


class LanguageRewardHead(nn.Module):
    """R3M's ``LanguageReward``: an MLP on ``[e_0, e_t, l]`` whose Sequential is named ``pred``."""

    def __init__(self, image_dim: int, lang_dim: int, hidden: int, layers: int, gain: bool = False):
        super().__init__()
        modules: list[nn.Module] = [nn.Linear(2 * image_dim + lang_dim, hidden), nn.ReLU(inplace=True)]
        for _ in range(layers - 1):
            modules += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        modules.append(nn.Linear(hidden, 1))
        self.pred = nn.Sequential(*modules)
        self.image_dim = image_dim
        self.gain = gain

    def forward(self, e0: torch.Tensor, et: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        value = self.pred(torch.cat([e0, et, lang], -1)).squeeze(-1)
        return value - self.pred(torch.cat([e0, e0, lang], -1)).squeeze(-1) if self.gain else value

    @property
    def first(self) -> nn.Linear:
        """The first linear layer, the one that splits."""
        return self.pred[0]

    def split_first(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``W_0``, ``W_t``, ``W_l`` column blocks of the first layer's weight."""
        weight = self.first.weight
        d = self.image_dim
        return weight[:, :d], weight[:, d : 2 * d], weight[:, 2 * d :]

    def tail(self, hidden: torch.Tensor) -> torch.Tensor:
        """The layers after the first linear one (ReLU onwards), output squeezed."""
        return self.pred[1:](hidden).squeeze(-1)

    def prompt_terms(self, lang: torch.Tensor) -> torch.Tensor:
        """``W_l l + b`` per prompt, ``[P, hidden]``."""
        _, _, weight = self.split_first()
        return lang @ weight.T + self.first.bias

    def frame_terms(self, e0: torch.Tensor, et: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``W_0 e_0`` and ``W_t e_t`` (the gain form appends the row ``W_t e_0``)."""
        weight_first, weight_frame, _ = self.split_first()
        frames = torch.cat([et, e0]) if self.gain else et
        return e0 @ weight_first.T, frames @ weight_frame.T

    def pair_rewards(self, frames: torch.Tensor, prompt_term: torch.Tensor) -> torch.Tensor:
        """Rewards ``[N, P']`` of summed frame terms ``[N, hidden]`` against prompt terms ``[P', hidden]``
        (gain form: ``N + 1`` rows in, the last one, at ``e_t = e_0``, subtracted from the others)."""
        rewards = self.tail(frames[:, None, :] + prompt_term[None, :, :])
        return rewards[:-1] - rewards[-1:] if self.gain else rewards


class BilinearRewardHead(nn.Module):
    """``G(e_0, e_t, l) = h(e_0, e_t) · (W l + b) / sqrt(k)``: an image MLP met by a text projection.

    ``h`` is an MLP on ``[e_0, e_t]`` (``image``) ending in ``k = hidden`` outputs; ``text`` is one
    linear layer on the frozen text embedding. The reward is linear in the text embedding, so an
    unseen instruction scores like the trained texts it lies close to in the encoder's space.
    """

    def __init__(self, image_dim: int, lang_dim: int, hidden: int, layers: int, gain: bool = False):
        super().__init__()
        modules: list[nn.Module] = [nn.Linear(2 * image_dim, hidden)]
        for _ in range(layers - 1):
            modules += [nn.ReLU(inplace=True), nn.Linear(hidden, hidden)]
        modules += [nn.ReLU(inplace=True), nn.Linear(hidden, hidden)]
        self.image = nn.Sequential(*modules)
        self.text = nn.Linear(lang_dim, hidden)
        self.image_dim = image_dim
        self.scale = hidden ** -0.5
        self.gain = gain

    def image_term(self, e0: torch.Tensor, et: torch.Tensor) -> torch.Tensor:
        """``h(e_0, e_t)``, less ``h(e_0, e_0)`` for the gain form."""
        e0, et = torch.broadcast_tensors(e0, et)
        value = self.image(torch.cat([e0, et], -1))
        return value - self.image(torch.cat([e0, e0], -1)) if self.gain else value

    def forward(self, e0: torch.Tensor, et: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        return (self.image_term(e0, et) * self.text(lang)).sum(-1) * self.scale

    def prompt_terms(self, lang: torch.Tensor) -> torch.Tensor:
        """``(W l + b) / sqrt(k)`` per prompt, ``[P, k]``."""
        return self.text(lang) * self.scale

    def frame_terms(self, e0: torch.Tensor, et: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[1, k]`` zeros and ``h`` (less ``h(e_0, e_0)`` for the gain form) ``[N, k]`` per frame."""
        return torch.zeros_like(e0[:, :1]), self.image_term(e0, et)

    def pair_rewards(self, frames: torch.Tensor, prompt_term: torch.Tensor) -> torch.Tensor:
        """Rewards ``[N, P']`` of image terms against prompt terms."""
        return frames @ prompt_term.T


def build_reward_head(config: "R3MConfig", image_dim: int) -> nn.Module:
    """The reward head ``config.head`` names."""
    if config.head in ("mlp", "mlp-gain"):
        return LanguageRewardHead(image_dim, config.lang_dim, config.head_hidden, config.head_layers, gain=config.head == "mlp-gain")
    return BilinearRewardHead(image_dim, config.lang_dim, config.head_hidden, config.head_layers, gain=config.head == "bilinear-gain")


class R3M(nn.Module):
    """An R3M-style language-reward model (see :mod:`lamp_data.rewards.vlm.r3m`).

    Args:
        config: Architecture and preprocessing.
        text_encoder: A built text encoder; built from ``config.text_encoder`` when None.
    """

    def __init__(self, config: R3MConfig, text_encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.convnet = build_trunk(config.trunk)
        self.lang_enc = text_encoder if text_encoder is not None else build_text_encoder(config.text_encoder, config.text_max_length)
        if self.lang_enc.dim != config.lang_dim:
            raise LampError(f"text encoder '{config.text_encoder}' gives {self.lang_enc.dim}-d embeddings, config says lang_dim={config.lang_dim}")
        for parameter in self.lang_enc.parameters():
            parameter.requires_grad_(False)
        self.lang_rew = build_reward_head(config, self.convnet.out_dim)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def image_dim(self) -> int:
        """Size of a frame embedding."""
        return self.convnet.out_dim

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` → normalised float ``[N, 3, S, S]``."""
        images = frames.permute(0, 3, 1, 2).float() / 255.0
        size = self.config.image_size
        if size and images.shape[-2:] != (size, size):
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (images - self.pixel_mean) / self.pixel_std

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame embeddings ``[N, E]`` of uint8 frames ``[N, H, W, 3]``."""
        return self.convnet(self.preprocess(frames.to(self.pixel_mean.device)))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings ``[P, D]``, each prompt encoded on its own."""
        return self.lang_enc(list(texts))

    def reward(self, e0: torch.Tensor, et: torch.Tensor, lang: torch.Tensor) -> torch.Tensor:
        """The naive head ``G(e_0, e_t, l)`` on matching (broadcast) rows."""
        return self.lang_rew(e0, et, lang)

    def prompt_terms(self, lang: torch.Tensor) -> torch.Tensor:
        """The head's prompt term (MLP: ``W_l l + b``), ``[P, hidden]``: computed once per prompt set."""
        return self.lang_rew.prompt_terms(lang)

    def frame_terms(self, e0: torch.Tensor, et: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's first-frame ``[1, hidden]`` and frame ``[N, hidden]`` terms (MLP: ``W_0 e_0``,
        ``W_t e_t``): computed once per frame."""
        return self.lang_rew.frame_terms(e0, et)

    def split_rewards(self, first_term: torch.Tensor, frame_term: torch.Tensor, prompt_term: torch.Tensor) -> torch.Tensor:
        """Rewards ``[N, P]`` from precomputed terms; equal to :meth:`reward` on every pair."""
        frames = first_term + frame_term
        count, hidden = frames.shape
        chunk = max(1, HEAD_CHUNK_ELEMENTS // max(1, count * hidden))
        columns = []
        for start in range(0, prompt_term.shape[0], chunk):
            columns.append(self.lang_rew.pair_rewards(frames, prompt_term[start : start + chunk]))
        return torch.cat(columns, dim=1)


def build_r3m(config: R3MConfig, text_encoder: nn.Module | None = None, seed: int | None = None) -> R3M:
    """A randomly initialised R3M (the text encoder is the pretrained one named in ``config``)."""
    if seed is not None:
        torch.manual_seed(seed)
    return R3M(config, text_encoder).eval()
