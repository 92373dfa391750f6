"""R3M's language-reward model, as LAMP uses it, configurable for in-domain models.

The model has three parts, named as in R3M's own checkpoints (``{"r3m": state_dict}`` saved from
a ``DataParallel`` wrapper, so every key starts with ``module.``):

* ``convnet``: the image trunk (torchvision-layout ResNet-18/34/50, or a small conv net for
  in-domain models), fed uint8 frames scaled to 0–1 and ImageNet-normalised;
* ``lang_enc.model``: the frozen text encoder (DistilBERT in R3M; its last hidden state is
  mean-pooled over every token, 768-d);
* ``lang_rew.pred``: the reward MLP ``G(e_0, e_t, l)`` on the concatenation ``[e_0, e_t, l]``
  (for ResNet-50: 4864 → 1024 → 1024 → 1024 → 1024 → 1), LAMP's reward for frame ``t``.

Two choices are fixed here and recorded in every fingerprint:

* **Text embedding.** R3M tokenizes a batch with padding and averages the last hidden state
  over all positions, padding included, so an embedding depends on its batch. Here each
  prompt is tokenized and encoded on its own (no padding), which equals R3M's result for a
  batch of one.
* **Frame size.** ``image_size = 0`` feeds frames at the size they come in, as R3M and LAMP do:
  R3M's ``forward`` only scales to 0–1 and normalises unless told another input shape, and LAMP
  hands it its 128 × 128 renders. R3M's own checkpoints carry no config and load this way. Any
  other ``image_size`` resizes frames (bilinear, antialiased, the whole frame, no crop) to that
  side when they differ; our in-domain checkpoints store the size they were trained at.

The first linear layer splits into three matmuls, ``W [e_0, e_t, l] + b = W_0 e_0 + W_t e_t +
(W_l l + b)``, so the prompt term is computed once per prompt and the frame terms once per
frame; only the later layers run per (frame, prompt) pair.

Spec strings: ``r3m:resnet50`` (also resnet18/34) reads ``~/.r3m/r3m_50/model.pt``, R3M's own
cache (``$R3M_HOME`` overrides ``~/.r3m``); ``r3m:lamp-r3m-metaworld`` reads the model shipped with
the package (:mod:`lamp_data.vlm.shipped`); ``r3m:/path/model.pt`` reads that file. Names come
before paths: write ``r3m:./resnet50`` for a file called ``resnet50``. Options:
``?text=FOLDER`` takes the tokenizer (and, if the checkpoint lacks them, the text weights) from a
local folder; ``?image_size=224`` resizes frames to 224 × 224 (``0``: their own size) in place of
the checkpoint's setting; ``?standardize=1`` standardises each prompt's rewards over the episode.
Options join with ``&``. The frame size is part of the reward fingerprint, so rewards at native
size and resized ones are separate reward sets; an option equal to the checkpoint's own setting
changes nothing, fingerprint included.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lamp_data.errors import LampError
from lamp_data.schema import CHECKPOINT_FORMAT_VERSION
from lamp_data.text import MINILM, TextEncoder
from lamp_data.vlm.base import (
    RewardModel,
    parse_flag,
    split_spec_options,
    standardize_per_prompt,
    state_dict_digest,
)
from lamp_data.vlm.resnet import TRUNKS, build_trunk, infer_trunk
from lamp_data.vlm.shipped import SHIPPED_MODELS, shipped_model_path

DISTILBERT = "distilbert"
"""Name of R3M's text encoder, ``distilbert-base-uncased`` from the Hugging Face cache."""
DISTILBERT_HUB_ID = "distilbert-base-uncased"
"""Hub id R3M loads its text encoder from."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONFIG_KEY = "lamp_config"
"""Key of our JSON config string inside a checkpoint (R3M's own checkpoints lack it)."""
CACHE_FOLDERS = {"resnet18": "r3m_18", "resnet34": "r3m_34", "resnet50": "r3m_50"}
"""Folder under R3M's cache dir for each released model."""
HEAD_CHUNK_ELEMENTS = 1 << 24
"""Largest hidden activation (frames × prompts × hidden) the head computes at once."""
SPEC_OPTIONS = ("text", "image_size", "standardize")
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


def _hf_quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class TransformerTextEncoder(nn.Module):
    """A frozen transformers encoder whose last hidden state is averaged over every token (R3M).

    Args:
        source: ``"distilbert"`` (``distilbert-base-uncased`` from the local HF cache) or a folder.
        max_length: Tokens kept per prompt.
    """

    def __init__(self, source: str, max_length: int = 128):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        _hf_quiet()
        name = DISTILBERT_HUB_ID if source == DISTILBERT else source
        if source != DISTILBERT and not (Path(source) / "config.json").is_file():
            raise LampError(f"text encoder '{source}' is neither 'distilbert', 'minilm' nor a local model folder")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
            self.model = AutoModel.from_pretrained(name, local_files_only=True)
        except OSError as error:
            raise LampError(
                f"text encoder '{name}' is not available offline; put it in the Hugging Face cache "
                "or pass a local folder (r3m:...?text=/path/to/distilbert)"
            ) from error
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    def identity(self) -> dict[str, Any]:
        """What, besides the weights, decides the embeddings: tokenizer and pooling."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        tokenizer = backend.to_str() if backend is not None else json.dumps(sorted(self.tokenizer.get_vocab().items()))
        from lamp_data.provenance import stable_hash

        return {"kind": type(self.model).__name__, "tokenizer": stable_hash(tokenizer), "pooling": "mean over all tokens, one prompt per batch", "max_length": self.max_length}

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        rows = []
        for text in texts:
            tokens = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=self.max_length).to(device)
            rows.append(self.model(**tokens).last_hidden_state[0].mean(0))
        if not rows:
            return torch.zeros(0, self.dim, device=device)
        return torch.stack(rows)


class MiniLMTextEncoder(nn.Module):
    """The bundled all-MiniLM-L6-v2 (:class:`lamp_data.text.TextEncoder`) as a module."""

    def __init__(self, max_length: int = 128):
        super().__init__()
        _hf_quiet()
        self.encoder = TextEncoder(MINILM, max_length=max_length)
        self.model = self.encoder.model
        self.dim = self.encoder.dim

    def identity(self) -> dict[str, Any]:
        """Tokenizer and pooling, as for :class:`TransformerTextEncoder`."""
        return {"kind": "minilm", "pooling": "masked mean, L2-normalised, one prompt per batch", "max_length": self.encoder.max_length}

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        self.encoder.device = device
        return torch.from_numpy(self.encoder.encode(texts)).to(device)


def build_text_encoder(source: str, max_length: int = 128) -> nn.Module:
    """The frozen text encoder named by ``R3MConfig.text_encoder``."""
    if source == MINILM:
        return MiniLMTextEncoder(max_length)
    return TransformerTextEncoder(source, max_length)


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
    """An R3M-style language-reward model (see the module docstring).

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


def save_r3m_checkpoint(model: R3M, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` in R3M's checkpoint layout plus our config, atomically.

    The file is ``{"r3m": {"module.<key>": tensor}, "lamp_config": "<json>"}``: tensors and one
    string only, so ``torch.load(path, weights_only=True)`` reads it, R3M's own loader reads
    the ``r3m`` part, and :func:`load_r3m_checkpoint` rebuilds the exact model. ``extra``
    (JSON-able: training data, steps, ...) is stored inside the config string.
    """
    from lamp_data.atomic import atomic_path
    from lamp_data.provenance import provenance

    state = {f"module.{key}": tensor.detach().cpu().contiguous() for key, tensor in model.state_dict().items()}
    config_text = json.dumps(
        {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "family": "r3m",
            "config": model.config.to_dict(),
            "extra": extra or {},
            "provenance": provenance(),
        },
        sort_keys=True,
    )
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save({"r3m": state, CONFIG_KEY: config_text}, temporary)
    return path


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key[len("module."):] if key.startswith("module.") else key: value for key, value in state.items()}


def infer_config(state: dict[str, torch.Tensor]) -> R3MConfig:
    """The config of an R3M checkpoint that carries none (R3M's released files).

    The architecture is read off the weights; frames keep their own size (``image_size = 0``),
    as in R3M's ``forward``.
    """
    trunk = infer_trunk(state)
    linear_weights = sorted(
        (int(key.split(".")[2]), value) for key, value in state.items() if key.startswith("lang_rew.pred.") and key.endswith(".weight")
    )
    if not linear_weights:
        raise LampError("checkpoint has no language-reward head ('lang_rew.pred.*'); it cannot score prompts")
    first = linear_weights[0][1]
    image_dim = 2048 if trunk == "resnet50" else 512
    lang_dim = int(first.shape[1]) - 2 * image_dim
    if lang_dim < 1:
        raise LampError(f"checkpoint's reward head takes {first.shape[1]} inputs, too few for a {trunk} trunk")
    return R3MConfig(trunk=trunk, image_size=0, text_encoder=DISTILBERT, lang_dim=lang_dim, head_hidden=int(first.shape[0]), head_layers=len(linear_weights) - 1)


def read_r3m_checkpoint(path: str | os.PathLike) -> tuple[R3MConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, state dict (``module.`` stripped) and our stored metadata of a checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise LampError(f"R3M checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise LampError(f"cannot read R3M checkpoint {path}: {str(error).splitlines()[0]}") from error
    if not isinstance(payload, dict) or not isinstance(payload.get("r3m"), dict):
        raise LampError(f"{path} is not an R3M checkpoint (no 'r3m' state dict)")
    state = _strip_module(payload["r3m"])
    metadata: dict[str, Any] = {}
    if CONFIG_KEY in payload:
        try:
            metadata = json.loads(payload[CONFIG_KEY])
        except (TypeError, json.JSONDecodeError) as error:
            raise LampError(f"{path}: stored config is not JSON ({error})") from error
        if metadata.get("format_version") != CHECKPOINT_FORMAT_VERSION:
            raise LampError(f"{path}: checkpoint format_version {metadata.get('format_version')} is not supported (expected {CHECKPOINT_FORMAT_VERSION})")
        config = R3MConfig.from_dict(metadata["config"])
    else:
        config = infer_config(state)
    return config, state, metadata


def load_r3m_checkpoint(
    path: str | os.PathLike, device: str = "cpu", text_source: str | None = None, image_size: int | None = None
) -> tuple[R3M, dict[str, Any]]:
    """Rebuild the model stored at ``path`` (R3M's files and ours alike).

    Args:
        path: The checkpoint file.
        device: Torch device to put the model on.
        text_source: Folder to take the text encoder from instead of ``config.text_encoder``.
        image_size: Frame side to use instead of ``config.image_size`` (0: frames' own size).

    Returns:
        The model in eval mode and the metadata stored with it (empty for R3M's own files).
    """
    config, state, metadata = read_r3m_checkpoint(path)
    if text_source:
        config = replace(config, text_encoder=text_source)
    if image_size is not None:
        config = replace(config, image_size=image_size)
    model = R3M(config)
    text_keys = [key for key in state if key.startswith("lang_enc.")]
    own = model.state_dict()
    for key in text_keys:
        if key not in own and key.endswith("position_ids"):
            state.pop(key)
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("lang_enc.") or text_keys]
    if missing or result.unexpected_keys:
        problems = (missing + result.unexpected_keys)[:4]
        raise LampError(f"{path} does not fit a {config.trunk} R3M model (mismatched keys: {', '.join(problems)} ...)")
    return model.to(device).eval(), metadata


def r3m_cache_path(name: str) -> Path:
    """Where R3M keeps a released model: ``$R3M_HOME`` or ``~/.r3m``, then ``r3m_50/model.pt``."""
    home = Path(os.environ.get("R3M_HOME", Path.home() / ".r3m"))
    return home / CACHE_FOLDERS[name] / "model.pt"


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
