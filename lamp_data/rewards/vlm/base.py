"""The reward-model protocol, the family registry and reward-set fingerprints.

Every reward model scores an episode's frames against a prompt set relative to the episode's
first frame: ``r[t, p] = G(φ(o_0), φ(o_t), ψ(prompt_p))`` for ``t = 0..T`` (row 0 scores the
first frame against itself). Prompts are embedded once per prompt set, frames once each.
"""

from __future__ import annotations

import abc
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from lamp_data.errors import LampError
from lamp_data.provenance import stable_hash
from lamp_data.registry import Registry
from lamp_data.rewards.vlm.shipped import SHIPPED_MODELS


class RewardModel(abc.ABC):
    """A frozen reward model. Subclasses implement the three ``embed``/``score`` steps."""

    family: str = ""
    """Registry name of the family (``"r3m"``, ``"clip"``, ``"siglip"``, ``"xclip"``)."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-able identity: spec string, weights hash, preprocessing and every setting
        that changes the rewards. Two models with equal ``spec()`` give equal rewards."""

    @abc.abstractmethod
    def embed_prompts(self, prompts: list[str]) -> Any:
        """Embed a prompt set once; the result is opaque to callers and passed to ``score``."""

    @abc.abstractmethod
    def embed_frames(self, frames: np.ndarray) -> Any:
        """Embed uint8 frames ``[N, H, W, 3]`` (0–255, any size), batched by the caller."""

    @abc.abstractmethod
    def score(self, first: Any, frames: Any, prompts: Any) -> np.ndarray:
        """Rewards float32 ``[N, P]`` of frame embeddings against the first frame's embedding
        (``first``, one row) and the embedded prompts."""

    def episode_rewards(self, frames: np.ndarray, prompts: Any, batch_size: int = 64) -> np.ndarray:
        """Rewards float16 ``[T+1, P]`` of one episode's frames ``[T+1, H, W, 3]``."""
        embedded = [self.embed_frames(frames[i : i + batch_size]) for i in range(0, len(frames), batch_size)]
        rows = [self.score(embedded[0][:1], chunk, prompts) for chunk in embedded]
        return np.concatenate(rows).astype(np.float16)


def split_spec_options(argument: str, allowed: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Split ``"target?key=value&key=value"`` into the target and its options.

    Options let a spec string carry settings that change the rewards, e.g.
    ``clip:/models/clip?alpha=0.5&standardize=1``. An option not in ``allowed`` is a LampError.
    """
    target, _, query = argument.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LampError(f"unknown option(s) {', '.join(unknown)} in '{argument}' (allowed: {', '.join(allowed) or 'none'})")
    if not target:
        raise LampError(f"reward model spec '{argument}' names no model")
    return target, options


def parse_flag(options: dict[str, str], key: str) -> bool:
    """A 0/1 (or false/true) option, False when absent."""
    value = options.get(key, "0").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise LampError(f"option {key}={options[key]} must be 0 or 1")


def state_dict_digest(module: Any) -> str:
    """sha256 (16 hex digits) over a torch module's parameters and buffers, in key order.

    Hashing the loaded tensors names the weights the same way whatever file or cache they came
    from, and covers weights that were not in the checkpoint (a text encoder from a folder).
    """
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


STANDARDIZE_EPSILON = 1e-6
"""Added to the standard deviation when standardising rewards."""


def standardize_per_prompt(rewards: np.ndarray) -> np.ndarray:
    """Each prompt's column of one episode shifted to mean 0 and scaled to std 1 (float32).

    LAMP standardises each prompt's reward with running statistics of recent frames; stored
    rewards use one episode's frames instead, so a reward never depends on which episodes
    were scored before it (relabel and inline collection give equal rewards).
    """
    rewards = rewards.astype(np.float32)
    mean = rewards.mean(axis=0, keepdims=True)
    std = rewards.std(axis=0, keepdims=True)
    return (rewards - mean) / (std + STANDARDIZE_EPSILON)


REWARD_MODELS: Registry[RewardModel] = Registry("reward model family")
"""Families by name; each factory takes ``(rest_of_spec: str, device: str)``."""

REWARD_MODELS.register("r3m", "lamp_data.rewards.vlm.r3m.scorer:load_r3m", description="R3M language-reward head")
REWARD_MODELS.register("clip", "lamp_data.rewards.vlm.clip:load_clip", description="CLIP-style cosine reward")
REWARD_MODELS.register("siglip", "lamp_data.rewards.vlm.siglip:load_siglip", description="SigLIP cosine or pair-probability reward")
REWARD_MODELS.register("xclip", "lamp_data.rewards.vlm.xclip:load_xclip", description="X-CLIP video-text reward of the clip ending at each frame")


def parse_reward_spec(spec: str) -> tuple[str, str]:
    """The family and its argument of ``"family:argument"`` or of a shipped model's name, the
    family checked against :data:`REWARD_MODELS` (nothing is loaded).

    Raises:
        LampError: a spec of another form, or an unknown family.
    """
    family, separator, argument = spec.partition(":")
    shipped = SHIPPED_MODELS.get(spec.partition("?")[0]) if not separator else None
    if shipped is not None:
        return shipped.family, spec
    if not separator or not argument:
        raise LampError(
            f"reward model spec '{spec}' must look like 'family:name-or-path' (families: {', '.join(REWARD_MODELS.names())}) "
            f"or name a shipped model ({', '.join(sorted(SHIPPED_MODELS))})"
        )
    if family not in REWARD_MODELS:
        raise LampError(f"unknown reward model family '{family}' in '{spec}' (known: {', '.join(REWARD_MODELS.names())})")
    return family, argument


def check_reward_spec(spec: str) -> None:
    """Refuse a reward model spec that cannot load, before anything is written: another form, an
    unknown family, or a file or folder it names (a path: ``/``, ``.`` or ``~`` first) that is not there.

    Raises:
        LampError: saying which.
    """
    _, argument = parse_reward_spec(spec)
    target = argument.partition("?")[0]
    if target.startswith(("/", ".", "~")) and not Path(target).expanduser().exists():
        raise LampError(f"reward model spec '{spec}': {target} does not exist")


def load_reward_model(spec: str, device: str = "cpu") -> RewardModel:
    """Load a reward model from ``"family:argument"`` or a shipped model's name (see the module docstring)."""
    family, argument = parse_reward_spec(spec)
    return REWARD_MODELS.create(family, argument, device)


def reward_fingerprint(model_spec: dict[str, Any], prompt_hash: str) -> str:
    """Name of a reward set: family, short model name and a hash of everything that matters.

    ``model_spec`` is ``RewardModel.spec()``; ``prompt_hash`` is the prompt set's content hash.
    """
    family = str(model_spec.get("family", "vlm"))
    digest = stable_hash({"model": model_spec, "prompts": prompt_hash}, length=12)
    return f"{family}-{digest}"
