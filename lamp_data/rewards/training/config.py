"""How to train an in-domain reward model: :class:`RewardModelTrainConfig`, without torch.

The config imports no torch, so the CLI reads its defaults cheaply; checking the trunk, image
size and head against the reward model's architecture (:class:`lamp_data.rewards.vlm.r3m.networks.R3MConfig`)
imports it when a config is made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lamp_data.errors import LampError, check_number
from lamp_data.rewards.text_names import MINILM

if TYPE_CHECKING:
    from lamp_data.rewards.vlm.r3m.networks import R3MConfig

TEXT_NEGATIVES = ("one", "all")
"""Ways to contrast an episode's own text with other tasks' texts (see ``text_negatives``)."""


@dataclass(frozen=True)
class RewardModelTrainConfig:
    """How to train an in-domain R3M-style reward model."""

    steps: int = 3000
    """Total optimizer steps (a resumed run continues up to this many); 0 writes the randomly
    initialised model, the baseline a trained one is compared with."""
    batch_size: int = 32
    """Episodes per batch; four frames are embedded per episode."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    seed: int = 0
    """Seeds the initial weights and every batch."""
    image_size: int = 64
    """Side frames are resized to before the trunk."""
    trunk: str = "conv-small"
    """Image trunk (see ``lamp_data.rewards.vlm.resnet.TRUNKS``)."""
    text_encoder: str = MINILM
    """Frozen text encoder: ``minilm`` or a local transformers model folder."""
    head_hidden: int = 256
    """Width of the reward head's hidden layers."""
    head_layers: int = 2
    """Hidden layers of the reward head."""
    head: str = "mlp"
    """Reward head form (``lamp_data.rewards.vlm.r3m.networks.HEADS``): ``mlp`` (R3M's), ``mlp-gain``, ``bilinear``, ``bilinear-gain``."""
    tcn_weight: float = 1.0
    """Weight of the time-contrastive loss."""
    language_weight: float = 1.0
    """Weight of the language-alignment loss."""
    l1_weight: float = 1e-5
    """Weight of the L1 norm of frame embeddings (R3M: 1e-5)."""
    l2_weight: float = 1e-5
    """Weight of the L2 norm of frame embeddings (R3M: 1e-5)."""
    text_negatives: str = "one"
    """``one``: each episode's late frame is compared with one text of another task (R3M);
    ``all``: a softmax over its own text and every text of the other tasks."""
    max_shift: int = 4
    """Random shift augmentation in pixels, one offset per episode (0 turns it off)."""
    failure_contrast: bool = False
    """Rank a successful episode's late frame above frames of failed episodes of the same task
    (needs failed episodes in the data: noisy-expert misses or random episodes)."""
    checkpoint_every: int = 250
    """Steps between checkpoints (the last step always writes one)."""
    threads: int = 1
    """Torch CPU threads while training (0 keeps torch's setting). One thread is fastest for
    these small models on a shared CPU; more threads change the last bits of the results."""

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise LampError(f"steps must be non-negative (0 saves the untrained model), got {self.steps}")
        for name in ("batch_size", "checkpoint_every", "head_hidden", "head_layers"):
            if getattr(self, name) < 1:
                raise LampError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}")
        if self.threads < 0:
            raise LampError(f"threads must be non-negative, got {self.threads}")
        for name in ("learning_rate", "tcn_weight", "language_weight", "l1_weight", "l2_weight"):
            check_number(name.replace("_", " "), getattr(self, name), low=0.0)
        if self.learning_rate <= 0:
            raise LampError(f"learning rate must be positive, got {self.learning_rate}")
        if self.text_negatives not in TEXT_NEGATIVES:
            raise LampError(f"text negatives must be one of {', '.join(TEXT_NEGATIVES)}, got '{self.text_negatives}'")
        if self.seed < 0 or self.max_shift < 0:
            raise LampError("seed and max shift must be non-negative")
        from lamp_data.rewards.vlm.r3m.networks import R3MConfig

        R3MConfig(trunk=self.trunk, image_size=self.image_size, head=self.head)

    def r3m_config(self, lang_dim: int) -> R3MConfig:
        """The architecture this config trains, for a text encoder of ``lang_dim`` dimensions."""
        from lamp_data.rewards.vlm.r3m.networks import R3MConfig

        return R3MConfig(
            trunk=self.trunk,
            image_size=self.image_size,
            text_encoder=self.text_encoder,
            lang_dim=lang_dim,
            head_hidden=self.head_hidden,
            head_layers=self.head_layers,
            head=self.head,
        )

    def training_identity(self) -> dict[str, Any]:
        """Every setting except ``steps``, ``checkpoint_every`` and ``threads``: what must match to resume
        (the default ``mlp`` head and an unset ``failure_contrast`` are left out, as runs saved
        before they were selectable lack them)."""
        identity = {key: value for key, value in asdict(self).items() if key not in ("steps", "checkpoint_every", "threads")}
        if identity["head"] == "mlp":
            del identity["head"]
        if not identity["failure_contrast"]:
            del identity["failure_contrast"]
        return identity

    @classmethod
    def tiny(cls, **overrides: Any) -> "RewardModelTrainConfig":
        """A small, fast setting for tests and CPU smoke runs."""
        values = dict(steps=10, batch_size=8, image_size=32, head_hidden=32, head_layers=1, max_shift=2, checkpoint_every=5)
        values.update(overrides)
        return cls(**values)
