"""Reward models shipped inside the package, found by name from any install.

``shipped_model_path("lamp-r3m-metaworld")`` is the checkpoint of the in-domain reward model;
the specs ``lamp-r3m-metaworld`` and ``r3m:lamp-r3m-metaworld`` load it in a source checkout,
an editable install or an installed wheel alike. The files live in ``lamp_data/models/<name>/``
(package data); the wheel carries the checkpoint and its cards, not the training state.

A model's fingerprint is computed from its loaded weights and settings, never from the spec
string, so the name and a path to the same file give the same reward set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lamp_data.errors import LampError

MODELS_ROOT = Path(__file__).resolve().parents[2] / "models"
"""Folder holding one sub-folder per shipped model."""


@dataclass(frozen=True)
class ShippedModel:
    """A reward model that comes with the package."""

    family: str
    """Reward model family that loads it (a name in ``REWARD_MODELS``)."""
    checkpoint: str
    """The file the family loads, inside ``MODELS_ROOT / name``."""
    description: str
    """One line for listings and errors."""


SHIPPED_MODELS: dict[str, ShippedModel] = {
    "lamp-r3m-metaworld": ShippedModel(
        family="r3m",
        checkpoint="model.pt",
        description="in-domain R3M-style model of the 39 Meta-World pretraining tasks (conv trunk at 64 px, MiniLM text, gain head)",
    ),
}
"""Shipped models by name; each has a ``README.md`` and ``model_card.md`` beside its checkpoint."""


def shipped_model_path(name: str) -> Path:
    """The checkpoint file of the shipped reward model ``name``.

    Raises:
        LampError: ``name`` is not a shipped model, or its file is missing from this install.
    """
    if name not in SHIPPED_MODELS:
        raise LampError(f"unknown shipped reward model '{name}' (known: {', '.join(sorted(SHIPPED_MODELS))})")
    path = MODELS_ROOT / name / SHIPPED_MODELS[name].checkpoint
    if not path.is_file():
        raise LampError(
            f"the shipped reward model '{name}' is missing from this install (expected {path}); "
            "reinstall lamp-toolkit, or train one with lamp-data train-reward-model and pass its path"
        )
    return path
