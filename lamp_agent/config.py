"""The agent's configuration (one frozen dataclass, with YAML presets on top) and a pretraining run's.

``load_preset("tiny")`` reads ``lamp_agent/presets/tiny.yaml``; every key there must be a
field of :class:`AgentConfig` (but ``base``, and ``env``: the env settings a run from scratch
acts with, :func:`preset_env`), and keyword overrides win over the file. :class:`PretrainConfig`
says what :func:`lamp_agent.pretrain.pretrain` trains on; like the rest of this module it needs
no torch, so the CLI reads its defaults without importing it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lamp_data import schema
from lamp_data.errors import LampError, check_number, check_on_damage
from lamp_data.rewards.text_names import MINILM

PRESETS = ("tiny", "cpu", "cpu-v1", "small", "paper")
"""Names of the bundled presets (``cpu-v1``: the ``cpu`` preset before its experiment-chosen
settings, kept so that runs made with it stay reproducible)."""

FRONTENDS = ("cnn", "mwm")
"""Visual front-ends: a CNN encoder/decoder, or Masked World Models' conv-stem ViT autoencoder."""

FINETUNE_CRITICS = ("probe", "full")
"""How finetuning starts from a pretrained critic (:attr:`AgentConfig.finetune_critic`)."""

PRECISIONS = ("fp32", "bf16", "auto")
"""Training precisions: plain float32, bfloat16 autocast of the forward passes, or ``auto``:
bf16 where the hardware computes it natively (a GPU with bf16 support, a CPU with AMX or
AVX512-BF16), else fp32 (:func:`lamp_agent.precision.resolve_precision`)."""


@dataclass(frozen=True)
class AgentConfig:
    """Sizes and learning settings of the world model, Plan2Explore ensemble and actor-critic."""

    preset: str = "custom"
    """Name of the preset this config came from (recorded in checkpoints)."""
    frontend: str = "cnn"
    """Visual front-end: ``cnn`` or ``mwm`` (conv stem + ViT masked autoencoder)."""
    cameras: tuple[str, ...] | None = None
    """Camera views the agent encodes (``front``, ``wrist``; LAMP: both). None: every camera the
    pretraining data has, or the front camera alone for an agent trained from scratch."""

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
    lr_warmup: int = 0
    """Updates over which every learning rate rises linearly from ``lr / lr_warmup`` to ``lr``
    (DreamerV3: 1000); counted per optimizer, so finetuning warms up afresh. 0: no warm-up."""
    image_loss_fraction: float = 1.0
    """Share of a batch's frames the image (or MAE feature) decoder reconstructs each update, drawn
    at random; the loss is their mean, an unbiased estimate of the whole batch's. 1: every frame."""

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
    actor_init_scale: float = 1.0
    """Factor on the initial weights of the actor's output layer (its bias starts at zero when
    this is not 1): small values start every action's mean near 0 and its spread near the same
    value, whatever the input."""
    repval_loss: float = 0.0
    """Weight of DreamerV3's replay value loss in finetuning: the critic also regresses, on the
    replayed sequences, lambda-returns of the recorded rewards bootstrapped with the imagined
    returns from each replayed state. 0: the critic learns in imagination only."""
    finetune_critic: str = "probe"
    """How finetuning starts from a pretrained critic, whose output head is always fresh:
    ``probe`` (LAMP) freezes its body and trains the linear head alone; ``full`` trains the body
    too. Scratch agents train all of the critic either way."""
    slow_critic_fraction: float = 0.02
    """EMA rate of the slow target critic."""
    return_norm_decay: float = 0.99
    """EMA decay of the 5th/95th return percentiles used to scale advantages."""

    prioritize_ends: bool = False
    """Finetuning replay: draw a window's start uniformly over every frame of the episode and clip
    it to the last window, so episode ends are replayed more often (MWM, DreamerV2)."""

    replay_ratio: float = 64.0
    """Replayed steps per env step (DreamerV3's train ratio): one update replays
    ``batch_size * seq_len`` steps, so an update runs every ``batch_size * seq_len / replay_ratio``
    env steps. Applies to finetuning and to the data pretraining collects."""
    prefill: int = 0
    """Env steps of uniformly random actions that open a finetuning run (counted in its budget)."""
    initial_updates: int = 0
    """World-model updates run at once when the prefill is done, before the replay ratio takes over
    (the actor and critic wait until the model has seen the prefill data)."""
    reward_lang: bool = True
    """Condition the reward head on the prompt embedding (pretraining relabels rewards per prompt)."""
    mae_reward_weight: float = 1.0
    """Weight of the MAE's auxiliary reward prediction (MWM); ``mwm`` front-end only, 0 turns it off."""
    own_prompt_fraction: float = 0.5
    """Hindsight prompts: chance a sequence keeps its own prompt; otherwise any prompt of the set."""

    precision: str = "fp32"
    """Training precision: ``fp32``, or ``bf16`` autocast of the update's forward passes (losses,
    parameters and optimizer steps stay float32; acting stays float32)."""
    channels_last: bool = False
    """Keep the CNN front-end's conv weights and activations in channels-last memory format."""

    def __post_init__(self) -> None:
        if self.cameras is not None:
            object.__setattr__(self, "cameras", schema.check_cameras(self.cameras))
        for field in dataclasses.fields(self):
            if isinstance(field.default, (int, float)) and not isinstance(field.default, bool):
                value = getattr(self, field.name)
                check_number(field.name, value)
                if isinstance(field.default, int) and not isinstance(value, int):
                    raise LampError(f"{field.name} must be a whole number, got {value!r}")
                if field.name.endswith("_lr") and not value > 0:
                    raise LampError(f"{field.name} must be positive, got {value!r}")
        if self.frontend not in FRONTENDS:
            raise LampError(f"frontend must be one of {', '.join(FRONTENDS)}, got {self.frontend!r}")
        if self.finetune_critic not in FINETUNE_CRITICS:
            raise LampError(f"finetune_critic must be one of {', '.join(FINETUNE_CRITICS)}, got {self.finetune_critic!r}")
        if self.precision not in PRECISIONS:
            raise LampError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
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
        if not self.replay_ratio > 0:
            raise LampError(f"replay_ratio must be positive (replayed steps per env step), got {self.replay_ratio}")
        if self.prefill < 0 or self.initial_updates < 0:
            raise LampError("prefill and initial_updates must be non-negative")
        if self.mae_reward_weight < 0:
            raise LampError(f"mae_reward_weight must be non-negative, got {self.mae_reward_weight}")
        if self.lr_warmup < 0:
            raise LampError(f"lr_warmup must be non-negative, got {self.lr_warmup}")
        if not 0.0 < self.image_loss_fraction <= 1.0:
            raise LampError(f"image_loss_fraction must be in (0, 1], got {self.image_loss_fraction}")
        if not self.actor_init_scale > 0:
            raise LampError(f"actor_init_scale must be positive, got {self.actor_init_scale}")
        if self.repval_loss < 0:
            raise LampError(f"repval_loss must be non-negative, got {self.repval_loss}")

    @property
    def updates_per_env_step(self) -> float:
        """Gradient updates one env step pays for: ``replay_ratio / (batch_size * seq_len)``."""
        return self.replay_ratio / (self.batch_size * self.seq_len)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, written into checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "AgentConfig":
        """Inverse of :meth:`to_dict`; unknown keys are a :class:`LampError`.

        Configs written before the replay ratio are converted: their ``train_ratio`` (updates per
        env step) becomes ``replay_ratio = train_ratio * batch_size * seq_len``, and their reward
        heads, which read no prompt and had no MAE reward prediction, keep that architecture. The
        action repeat of configs written when the agent held it is dropped: it is the env's
        (:func:`lamp_agent.online.init_action_repeat` reads a checkpoint's).
        """
        value = {key: item for key, item in _upgrade(value).items() if key not in PRESET_ENV_KEYS}
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise LampError(f"unknown agent config keys: {', '.join(unknown)}")
        return cls(**value)

    def replace(self, **changes: Any) -> "AgentConfig":
        """A copy with some fields changed (unknown names are a :class:`LampError`)."""
        _refuse_env_keys(changes)
        return AgentConfig.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class PretrainConfig:
    """What to pretrain on, for how long, and where to write."""

    data: str
    """Dataset folder (``lamp-data collect``)."""
    rewards: str
    """Fingerprint of the dataset's reward set to learn from (``lamp-data info`` lists them)."""
    out: str
    """Run folder for checkpoints, logs and cached prompt embeddings."""
    steps: int
    """Total agent updates (a resumed run stops at the same total)."""
    preset: str = "cpu"
    """Agent preset: tiny, cpu, small, paper, or a YAML file of config fields."""
    alpha: float | None = None
    """P2E share of the reward (1: pure novelty, 0: pure VLM reward); None keeps the preset's 0.9."""
    device: str = "cpu"
    """Torch device."""
    seed: int = 0
    """Seeds the agent, the replay stream and the prompt draws."""
    collect_every: int = 0
    """Updates between rounds of collecting new episodes with the current policy; 0 never collects."""
    checkpoint_every: int = 0
    """Updates between checkpoints when not collecting; 0 means only at the end."""
    resume: bool = False
    """Continue the run in ``out`` from its latest checkpoint. A folder with no run in it is
    refused; a run stopped before its first checkpoint (``run.json`` only) starts again at step 0."""
    text_encoder: str = MINILM
    """Sentence encoder for the prompts: ``minilm`` or a local model folder."""
    log_every: int = 10
    """Updates between TensorBoard writes."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept (older ones are removed)."""
    agent_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Agent config fields changed on top of the preset (e.g. ``{"seq_len": 8}``)."""
    on_damage: str = "fail"
    """A damaged shard or reward shard: ``fail`` stops with an error naming it (the last checkpoint
    stays); ``skip`` trains without it and lists it in the summary and ``skipped_shards.json``."""

    def __post_init__(self) -> None:
        if self.alpha is not None:
            check_number("alpha", self.alpha, low=0.0, high=1.0)
        if self.steps < 1:
            raise LampError(f"steps must be at least 1, got {self.steps}")
        if self.collect_every < 0 or self.checkpoint_every < 0:
            raise LampError("collect_every and checkpoint_every must be non-negative")
        if self.log_every < 1 or self.keep_checkpoints < 1:
            raise LampError("log_every and keep_checkpoints must be at least 1")
        check_on_damage(self.on_damage)

    @property
    def chunk(self) -> int:
        """Updates per training chunk (each ends with collection and/or a checkpoint)."""
        return self.collect_every or self.checkpoint_every or self.steps



def _upgrade(value: dict[str, Any]) -> dict[str, Any]:
    """A config dict from before ``replay_ratio`` in today's terms (others are returned as is)."""
    if "train_ratio" not in value:
        return value
    value = dict(value)
    train_ratio = float(value.pop("train_ratio"))
    if "replay_ratio" not in value:
        defaults = AgentConfig.__dataclass_fields__
        batch = int(value.get("batch_size", defaults["batch_size"].default))
        length = int(value.get("seq_len", defaults["seq_len"].default))
        value["replay_ratio"] = train_ratio * batch * length
    value.setdefault("reward_lang", False)
    value.setdefault("mae_reward_weight", 0.0)
    return value


PRESET_ENV_KEYS = ("action_repeat",)
"""Env settings a preset may give in its ``env:`` section: the env's
(:class:`~lamp_data.envs.base.EnvConfig`), not the agent's, so a checkpoint does not carry them;
a scratch run of the preset acts with them unless the run sets its own."""


def _refuse_env_keys(changes: Mapping[str, Any]) -> None:
    """A :class:`LampError` for changes that set an env setting on the agent."""
    env_keys = sorted(set(changes) & set(PRESET_ENV_KEYS))
    if env_keys:
        raise LampError(
            f"{', '.join(env_keys)} is the env's, not the agent's: a pretrained agent acts at its dataset's "
            "(lamp-data collect --action-repeat), a run from scratch at its preset's or its own --action-repeat"
        )


def _read_preset(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A preset's agent config fields (the whole config, defaults filled in) and its env settings,
    each on top of its base's."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise LampError(f"cannot read agent preset file {path}: {str(error).splitlines()[0]}") from None
        if not isinstance(values, dict):
            raise LampError(f"agent preset file {path} must hold a mapping of config fields")
        label = path.stem
        base = values.pop("base", None)
        if base and str(base).endswith((".yaml", ".yml")) and not Path(str(base)).is_absolute():
            base = path.parent / str(base)  # a base file is named relative to the file that names it
    else:
        if name not in PRESETS:
            raise LampError(f"unknown agent preset '{name}' (known: {', '.join(PRESETS)}, or a .yaml file)")
        label = name
        values = yaml.safe_load(resources.files("lamp_agent").joinpath("presets", f"{name}.yaml").read_text()) or {}
        base = values.pop("base", None)
    env = values.pop("env", None) or {}
    if not isinstance(env, dict):
        raise LampError(f"agent preset '{name}': env must be a mapping of env settings ({', '.join(PRESET_ENV_KEYS)})")
    # presets written before the env section gave the action repeat among the agent's fields
    env = {**{key: values.pop(key) for key in PRESET_ENV_KEYS if key in values}, **env}
    unknown = sorted(set(env) - set(PRESET_ENV_KEYS))
    if unknown:
        raise LampError(f"agent preset '{name}': unknown env settings {', '.join(unknown)} (known: {', '.join(PRESET_ENV_KEYS)})")
    start, start_env = _read_preset(str(base)) if base else ({}, {})
    return AgentConfig.from_dict({**start, **values, "preset": label}).to_dict(), {**start_env, **env}


def load_preset(name: str, **overrides: Any) -> AgentConfig:
    """A bundled preset, or a YAML file of config fields, with ``overrides`` applied.

    A preset may start from a bundled preset or another file with ``base: <preset>`` (a file
    named relative to the one that names it) and change some fields; the config's ``preset``
    field records the name given (a file's stem). Its ``env:`` section is read by
    :func:`preset_env`.

    Args:
        name: A preset name from :data:`PRESETS` (``tiny`` for tests, ``cpu`` for CPU runs,
            ``small``, ``paper`` for a GPU), or the path of a ``.yaml`` file.
        **overrides: Fields of :class:`AgentConfig` to change.

    Raises:
        LampError: For an unknown preset, an unreadable file or an unknown field, or an
            override of an env setting.
    """
    _refuse_env_keys(overrides)
    return AgentConfig.from_dict({**_read_preset(name)[0], **overrides})


def preset_env(name: str) -> dict[str, Any]:
    """The env settings of a preset's ``env:`` section (of :data:`PRESET_ENV_KEYS`), its base's
    included: what a run from scratch with the preset acts with unless it sets its own."""
    return _read_preset(name)[1]
