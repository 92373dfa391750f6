"""R3M checkpoint files: R3M's own layout plus our config, written atomically and read back.

A file is ``{"r3m": {"module.<key>": tensor}, "lamp_config": "<json>"}``: tensors and one string
only, so ``torch.load(path, weights_only=True)`` reads it and R3M's own loader reads the ``r3m``
part. R3M's released files lack ``lamp_config``; their architecture is read off the weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from lamp_data.atomic import atomic_path
from lamp_data.errors import LampError
from lamp_data.provenance import provenance
from lamp_data.rewards.text import DISTILBERT
from lamp_data.rewards.vlm.r3m.networks import R3M, R3MConfig
from lamp_data.rewards.vlm.resnet import infer_trunk
from lamp_data.schema import CHECKPOINT_FORMAT_VERSION

CONFIG_KEY = "lamp_config"
"""Key of our JSON config string inside a checkpoint (R3M's own checkpoints lack it)."""
CACHE_FOLDERS = {"resnet18": "r3m_18", "resnet34": "r3m_34", "resnet50": "r3m_50"}
"""Folder under R3M's cache dir for each released model."""


def save_r3m_checkpoint(model: R3M, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` in R3M's checkpoint layout plus our config, atomically.

    The file is ``{"r3m": {"module.<key>": tensor}, "lamp_config": "<json>"}``: tensors and one
    string only, so ``torch.load(path, weights_only=True)`` reads it, R3M's own loader reads
    the ``r3m`` part, and :func:`load_r3m_checkpoint` rebuilds the exact model. ``extra``
    (JSON-able: training data, steps, ...) is stored inside the config string.
    """
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
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise LampError(f"cannot read R3M checkpoint {path}: {reason}") from error
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
