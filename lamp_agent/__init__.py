"""The LAMP agent: a language-conditioned world model pretrained with Plan2Explore and VLM rewards.

``Agent`` is the world model (RSSM with discrete latents, CNN or Masked World Models
front-end), the Plan2Explore ensemble and the actor-critic; ``pretrain`` trains one from a
dataset's shards and reward set while collecting new episodes into it.

The configs import without torch; ``Agent``, ``pretrain`` and ``PretrainSummary`` import it when
first asked for, so reading a config (as ``lamp-agent --help`` does) stays light.
"""

import importlib
import sys
import types
from typing import Any

from lamp_agent.config import PRESETS, AgentConfig, PretrainConfig, load_preset

_TORCH_BACKED = {"Agent": "lamp_agent.agent", "PretrainSummary": "lamp_agent.pretrain", "pretrain": "lamp_agent.pretrain"}
"""Public names, and the torch-backed module each is imported from on first use."""

__all__ = ["PRESETS", "Agent", "AgentConfig", "PretrainConfig", "PretrainSummary", "load_preset", "pretrain"]


def __getattr__(name: str) -> Any:
    if name not in _TORCH_BACKED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_TORCH_BACKED[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TORCH_BACKED))


class _Package(types.ModuleType):
    """This package, whose public ``pretrain`` stays the function when the module of the same name
    is imported (the import system sets a package attribute for every submodule it imports)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _TORCH_BACKED and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
