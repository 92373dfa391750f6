"""What the ``transformers`` families (``clip:``, ``siglip:``, ``xclip:``) share: loading a checkpoint
offline, reading its image-processor settings, and turning frames into pixels in torch.

A target is a ``save_pretrained`` folder or a hub id that must already be in the local Hugging
Face cache (nothing is downloaded). Frames are prepared the way the model's image processor
prepares images, but in torch on the model's device and without PIL, so batches never leave it.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

from lamp_data.errors import LampError
from lamp_data.provenance import stable_hash
from lamp_data.rewards.text import quiet_transformers, tokenizer_definition
from lamp_data.rewards.vlm.base import RewardModel, state_dict_digest

INTERPOLATIONS = {2: "bilinear", 3: "bicubic"}
"""PIL resampling codes of ``preprocessor_config.json`` that frames can be resized with."""


def load_pretrained(model_class: Any, target: str, label: str, model_type: str) -> tuple[Any, Any, str]:
    """Load ``model_class`` and its tokenizer from a folder or the local cache, offline.

    Args:
        model_class: A ``transformers`` model class, e.g. ``SiglipModel``.
        target: A folder or hub id.
        label: The family's name in messages (``"SigLIP"``).
        model_type: The ``model_type`` the checkpoint's config must have; another model's
            checkpoint would otherwise load with freshly initialised weights and score at random.

    Returns:
        The model (in eval mode), its tokenizer and the source it was read from.
    """
    from transformers import AutoConfig, AutoTokenizer

    quiet_transformers()
    is_folder = Path(target).expanduser().is_dir()
    source = str(Path(target).expanduser()) if is_folder else target
    if not is_folder and (target.startswith((".", "/", "~")) or target.count("/") > 1):
        raise LampError(f"{label} model folder '{target}' does not exist")
    where = "folder" if is_folder else "hub id (not in the local Hugging Face cache; nothing is downloaded)"
    try:
        found = AutoConfig.from_pretrained(source, local_files_only=True).model_type
        if found != model_type:
            raise LampError(f"'{target}' holds a {found} model, not {label} ({model_type})")
        model = model_class.from_pretrained(source, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, ImportError) as error:
        raise LampError(f"cannot load {label} model '{target}' from this {where}: {str(error).splitlines()[0]}") from error
    return model.eval(), tokenizer, source


def tokenizer_digest(tokenizer: Any, **call: Any) -> str:
    """A hash of a tokenizer's full definition as called with ``call``
    (:func:`~lamp_data.rewards.text.tokenizer_definition`), else of its vocabulary."""
    definition = tokenizer_definition(tokenizer, **call)
    return stable_hash(definition if definition is not None else sorted(tokenizer.get_vocab().items()))


def processor_config(source: str) -> dict[str, Any]:
    """The model's ``preprocessor_config.json`` from its folder or the local cache ({} if it has none)."""
    config_path: str | None = None
    if Path(source).is_dir():
        candidate = Path(source) / "preprocessor_config.json"
        config_path = str(candidate) if candidate.is_file() else None
    else:
        from transformers.utils import cached_file

        try:
            config_path = cached_file(source, "preprocessor_config.json", local_files_only=True, _raise_exceptions_for_missing_entries=False)
        except OSError:
            config_path = None
    return json.loads(Path(config_path).read_text()) if config_path else {}


def image_settings(source: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Resize, crop, mean, std and interpolation from the model's ``preprocessor_config.json``.

    ``defaults`` is a processor config of the family's own (``size``, ``crop_size``,
    ``do_center_crop``, ``image_mean``, ``image_std``, ``resample``) that the model's file
    overrides key by key. In the result ``resize`` is an int (the shorter side, keeping the aspect
    ratio) for ``shortest_edge`` or a bare number, else ``[height, width]`` (an exact resize, as
    SigLIP's processor does); ``crop`` is the centre crop's side, or None when the processor does
    not crop.
    """
    value = {**defaults, **processor_config(source)}
    size = value["size"]
    if isinstance(size, dict) and "shortest_edge" not in size:
        resize: int | list[int] = [int(size["height"]), int(size["width"])]
    else:
        resize = int(size["shortest_edge"] if isinstance(size, dict) else size)
    crop = value.get("crop_size")
    crop_side = int(crop["height"] if isinstance(crop, dict) else crop) if crop is not None else None
    resample = value.get("resample", 3)
    if resample not in INTERPOLATIONS:
        raise LampError(f"{source}: image resampling {resample} is not supported (only bilinear 2 and bicubic 3)")
    return {
        "resize": resize,
        "crop": crop_side if value.get("do_center_crop") and crop_side else None,
        "mean": [float(v) for v in value["image_mean"]],
        "std": [float(v) for v in value["image_std"]],
        "interpolation": INTERPOLATIONS[resample],
    }


def to_pixels(frames: torch.Tensor, resize: int | list[int], crop: int | None, mean: torch.Tensor, std: torch.Tensor, interpolation: str = "bicubic") -> torch.Tensor:
    """uint8 frames ``[N, H, W, 3]`` → normalised ``[N, 3, h, w]``: scale to [0, 1], resize
    (antialiased; an int is the shorter side, a pair is exact), centre crop, normalise.

    ``mean`` and ``std`` are ``[1, 3, 1, 1]`` tensors on the frames' device.
    """
    images = frames.permute(0, 3, 1, 2).float() / 255.0
    height, width = images.shape[-2:]
    if isinstance(resize, int):
        scale = resize / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
    else:
        size = (int(resize[0]), int(resize[1]))
    if size != (height, width):
        images = torch.nn.functional.interpolate(images, size=size, mode=interpolation, align_corners=False, antialias=True)
    if crop is not None:
        top, left = max(0, (size[0] - crop) // 2), max(0, (size[1] - crop) // 2)
        images = images[:, :, top : top + crop, left : left + crop]
    return (images - mean) / std


class PretrainedRewardModel(RewardModel):
    """What every ``transformers`` family holds: the frozen model on its device, its tokenizer,
    its image preprocessing (:func:`image_settings`; :meth:`preprocess` applies it), and the
    identity of all three for the fingerprint (:meth:`identity`)."""

    @property
    def text_call(self) -> dict[str, Any]:
        """How the family's tokenizer is called on prompts (truncation and padding)."""
        return {"padding": True, "truncation": True, "max_length": self.model.config.text_config.max_position_embeddings}

    def tokenize(self, texts: list[str]) -> Any:
        """Token tensors of ``texts``, as :attr:`text_call` says."""
        return self.tokenizer(texts, **self.text_call, return_tensors="pt")

    def __init__(self, model: Any, tokenizer: Any, preprocessing: dict[str, Any], standardize: bool = False):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.standardize = standardize
        self.device = next(model.parameters()).device
        self.weights_digest = state_dict_digest(model)
        self._mean = torch.tensor(preprocessing["mean"], device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(preprocessing["std"], device=self.device).view(1, 3, 1, 1)

    @functools.cached_property
    def tokenizer_digest(self) -> str:
        """:func:`tokenizer_digest` of the tokenizer as :attr:`text_call` leaves it."""
        return tokenizer_digest(self.tokenizer, **self.text_call)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, 3]`` → normalised ``[N, 3, h, w]``, as the model's image processor."""
        settings = self.preprocessing
        return to_pixels(frames.to(self.device), settings["resize"], settings["crop"], self._mean, self._std, settings["interpolation"])

    def identity(self) -> dict[str, Any]:
        """Family, weights, architecture, tokenizer and standardisation: the part of
        :meth:`spec` every family shares."""
        return {
            "family": self.family,
            "weights": self.weights_digest,
            "architecture": type(self.model).__name__,
            "tokenizer": self.tokenizer_digest,
            "standardize": "per episode and prompt" if self.standardize else "none",
        }


def parse_alpha(options: dict[str, str], label: str) -> float:
    """The goal–baseline ``alpha`` option (0 when absent) of the ``label`` family."""
    try:
        return float(options.get("alpha", "0"))
    except ValueError:
        raise LampError(f"{label} option alpha={options['alpha']} is not a number") from None
