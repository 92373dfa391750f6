"""The agent's configuration: one frozen dataclass, with YAML presets on top.

``load_preset("tiny")`` reads ``lamp_agent/presets/tiny.yaml``; every key there must be a
field of :class:`AgentConfig`, and keyword overrides win over the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from lamp_data.errors import LampError

PRESETS = ("tiny", "small", "paper")
"""Names of the bundled presets."""

FRONTENDS = ("cnn", "mwm")
"""Visual front-ends: a CNN encoder/decoder, or Masked World Models' conv-stem ViT autoencoder."""


@dataclass(frozen=True)
class AgentConfig:
    """Sizes and learning settings of the world model, Plan2Explore ensemble and actor-critic."""

    preset: str = "custom"
    """Name of the preset this config came from (recorded in checkpoints)."""
    frontend: str = "cnn"
    """Visual front-end: ``cnn`` or ``mwm`` (conv stem + ViT masked autoencoder)."""

    batch_size: int = 16
    """Sequences per world-model batch."""
    seq_len: int = 50
    """Steps per training sequence."""

    cnn_depth: int = 32
    """Channels of the first conv layer (doubling per layer) of the CNN front-end."""
    cnn_min_resolution: int = 4
    """The CNN downsamples by 2 until the feature map is this many pixels wide."""
    token_units: int = 128
    """Width of the state/language token fed to the world model next to the image embedding."""

    mae_patch: int = 8
    """Pixels per side of one ViT token (the conv stem has log2(mae_patch) stride-2 layers)."""
    mae_stem_depth: int = 32
    """Channels of the conv stem's first layer."""
    mae_width: int = 128
    """Width of the ViT encoder tokens."""
    mae_layers: int = 2
    """Transformer layers in the MAE encoder."""
    mae_heads: int = 4
    """Attention heads of the MAE encoder and decoder."""
    mae_decoder_width: int = 64
    """Width of the MAE decoder tokens."""
    mae_decoder_layers: int = 1
    """Transformer layers in the MAE decoder."""
    mae_mask_ratio: float = 0.95
    """Share of image tokens hidden from the MAE encoder while it trains (MWM/LAMP: 0.95)."""
    mae_token_proj: int = 16
    """Each MAE token is projected to this many features before the world model flattens them."""
    mae_batch_size: int = 8
    """MAE batch: sequences (frames are drawn from the world-model batch)."""
    mae_seq_len: int = 16
    """MAE batch: frames per sequence; the MAE sees up to mae_batch_size * mae_seq_len frames."""
    mae_lr: float = 3e-4
    """Learning rate of the masked autoencoder."""

    deter: int = 256
    """Size of the RSSM's deterministic (GRU) state."""
    stoch_groups: int = 32
    """Number of categorical latent variables."""
    stoch_classes: int = 32
    """Classes per categorical latent variable."""
    hidden: int = 256
    """Width of the RSSM's internal layers."""
    unimix: float = 0.01
    """Share of the uniform distribution mixed into every categorical (DreamerV3)."""
    free_bits: float = 1.0
    """KL below this many nats is not penalised (DreamerV3 free bits)."""
    kl_dynamics: float = 0.5
    """Weight of the KL term that trains the prior."""
    kl_representation: float = 0.1
    """Weight of the KL term that regularises the posterior."""

    mlp_units: int = 256
    """Width of the reward, continue, decoder, actor and critic MLPs."""
    mlp_layers: int = 2
    """Hidden layers of those MLPs."""
    reward_bins: int = 255
    """Bins of the two-hot symlog reward and value distributions."""
    model_lr: float = 1e-4
    """Learning rate of the world model."""
    model_grad_clip: float = 1000.0
    """Gradient norm clip of the world model."""

    ensemble_size: int = 10
    """Plan2Explore heads (paper: 10)."""
    ensemble_units: int = 256
    """Width of each ensemble head."""
    ensemble_layers: int = 2
    """Hidden layers of each ensemble head."""
    ensemble_lr: float = 3e-4
    """Learning rate of the ensemble."""

    alpha: float = 0.9
    """Pretraining reward mix: alpha * norm(P2E) + (1 - alpha) * norm(VLM reward head)."""
    reward_norm_decay: float = 0.99
    """EMA decay of the mean magnitude used to normalise each reward stream before mixing."""

    horizon: int = 15
    """Imagination horizon of the actor-critic."""
    discount: float = 0.99
    """Discount factor."""
    lambda_: float = 0.95
    """Lambda of the lambda-returns."""
    actor_lr: float = 3e-5
    """Learning rate of the actor."""
    critic_lr: float = 3e-5
    """Learning rate of the critic."""
    ac_grad_clip: float = 100.0
    """Gradient norm clip of actor and critic."""
    actor_entropy: float = 3e-4
    """Weight of the actor's entropy bonus."""
    action_std_min: float = 0.1
    """Smallest standard deviation of the actor's Gaussian."""
    action_std_max: float = 1.0
    """Largest standard deviation of the actor's Gaussian."""
    slow_critic_fraction: float = 0.02
    """EMA rate of the slow target critic."""
    return_norm_decay: float = 0.99
    """EMA decay of the 5th/95th return percentiles used to scale advantages."""

    train_ratio: float = 0.5
    """Updates per environment step when pretraining keeps collecting data."""
    own_prompt_fraction: float = 0.5
    """Hindsight prompts: chance a sequence keeps its own prompt; otherwise any prompt of the set."""

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS:
            raise LampError(f"frontend must be one of {', '.join(FRONTENDS)}, got {self.frontend!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise LampError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.own_prompt_fraction <= 1.0:
            raise LampError(f"own_prompt_fraction must be in [0, 1], got {self.own_prompt_fraction}")
        if not 0.0 <= self.mae_mask_ratio < 1.0:
            raise LampError(f"mae_mask_ratio must be in [0, 1), got {self.mae_mask_ratio}")
        if self.mae_patch < 2 or self.mae_patch & (self.mae_patch - 1):
            raise LampError(f"mae_patch must be a power of two >= 2, got {self.mae_patch}")
        positive = ("batch_size", "seq_len", "deter", "stoch_groups", "stoch_classes", "horizon", "ensemble_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise LampError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.seq_len < 2:
            raise LampError("seq_len must be at least 2")
        if self.train_ratio <= 0:
            raise LampError(f"train_ratio must be positive, got {self.train_ratio}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, written into checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "AgentConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a :class:`LampError`."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise LampError(f"unknown agent config keys: {', '.join(unknown)}")
        return cls(**value)

    def replace(self, **changes: Any) -> "AgentConfig":
        """A copy with some fields changed (unknown names are a :class:`LampError`)."""
        return AgentConfig.from_dict({**self.to_dict(), **changes})


def load_preset(name: str, **overrides: Any) -> AgentConfig:
    """The bundled preset ``name`` (``tiny``, ``small`` or ``paper``) with ``overrides`` applied.

    Args:
        name: A preset name from :data:`PRESETS`.
        **overrides: Fields of :class:`AgentConfig` to change.

    Raises:
        LampError: For an unknown preset or field.
    """
    if name not in PRESETS:
        raise LampError(f"unknown agent preset '{name}' (known: {', '.join(PRESETS)})")
    text = resources.files("lamp_agent").joinpath("presets", f"{name}.yaml").read_text()
    values = yaml.safe_load(text) or {}
    return AgentConfig.from_dict({**values, "preset": name, **overrides})
