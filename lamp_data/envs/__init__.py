"""Simulator backends behind one Gymnasium interface, found by name.

``make_env("mw-pretrain")`` is the embedded pretraining env (a task and goal sampled per
episode from the pretraining split); ``make_env("mw-pick-place")`` is one Meta-World task;
``make_env("dummy")`` is a 5-step toy env for tests; ``rlbench-<task>`` needs the
``rlbench`` extra. See :mod:`lamp_data.envs.base` for the contract.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402

from lamp_data.envs.base import EnvConfig, RandomizationConfig  # noqa: E402
from lamp_data.registry import Registry  # noqa: E402

ENVS: Registry[gym.Env] = Registry("env")
"""Env factories; each takes ``(config: EnvConfig)`` and returns a gymnasium env."""

ENVS.register("dummy", "lamp_data.envs.dummy:DummyEnv", description="5-step toy env for tests")

DEFAULT_ENV = "mw-pretrain"
"""The embedded pretraining env."""


def make_env(name: str = DEFAULT_ENV, config: EnvConfig | None = None, **overrides: Any) -> gym.Env:
    """Build the env registered as ``name``.

    Args:
        name: A registered env name (``lamp-data tasks`` lists them).
        config: Image size, episode length and randomization; defaults to ``EnvConfig()``.
        **overrides: Fields of ``EnvConfig`` to change, e.g. ``image_size=96``.
    """
    config = config or EnvConfig()
    if overrides:
        config = EnvConfig(**{**config.to_dict(), **overrides, "randomization": overrides.get("randomization", config.randomization)})
    return ENVS.create(name, config)


def env_names() -> list[str]:
    """Every registered env name."""
    return ENVS.names()


__all__ = ["DEFAULT_ENV", "ENVS", "EnvConfig", "RandomizationConfig", "env_names", "make_env"]
