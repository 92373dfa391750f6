"""The LAMP agent: a language-conditioned world model pretrained with Plan2Explore and VLM rewards.

``Agent`` is the world model (RSSM with discrete latents, CNN or Masked World Models
front-end), the Plan2Explore ensemble and the actor-critic; ``pretrain`` trains one from a
dataset's shards and reward set while collecting new episodes into it.

The configs import without torch; ``Agent`` imports it when first asked for, and pretraining lives
in :mod:`lamp_agent.pretrain` (``from lamp_agent.pretrain import pretrain``), so reading a config
(as ``lamp-agent --help`` does) stays light.
"""

import importlib
from typing import Any

from lamp_agent.config import PRESETS, AgentConfig, PretrainConfig, load_preset

__all__ = ["PRESETS", "Agent", "AgentConfig", "PretrainConfig", "load_preset"]


def __getattr__(name: str) -> Any:
    """``Agent`` is imported (with torch) when first asked for."""
    if name != "Agent":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return importlib.import_module("lamp_agent.agent").Agent


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Agent"})
