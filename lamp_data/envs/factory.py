"""The env registry: every env by name, and ``make_env`` that builds one (simulators imported on demand)."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from lamp_data.envs.base import ActionRepeat, EnvConfig
from lamp_data.envs.tasks import list_tasks
from lamp_data.registry import Registry

ENVS: Registry[gym.Env] = Registry("env")
"""Env factories; each takes ``(config: EnvConfig)`` and returns a gymnasium env."""

ENVS.register("dummy", "lamp_data.envs.dummy:DummyEnv", description="5-step toy env for tests")


def _register_simulators() -> None:
    """Register ``mw-pretrain``, ``mw-<task>`` and ``rlbench-<task>`` without importing backends."""
    ENVS.register(
        "mw-pretrain",
        "lamp_data.envs.metaworld_suite:make_pretrain_env",
        description="Meta-World: a pretraining task and goal per episode",
    )
    for task in list_tasks(backend="metaworld"):
        ENVS.register(
            f"mw-{task.name}",
            functools.partial(_metaworld_task_env, task.name),
            description=f"Meta-World {task.name} ({task.split}): {task.instruction}",
        )
    for task in list_tasks(backend="rlbench"):
        ENVS.register(
            f"rlbench-{task.name}",
            functools.partial(_rlbench_task_env, task.name),
            extra="rlbench",
            description=f"RLBench {task.name} ({task.split}): {task.instruction}",
        )


def _metaworld_task_env(task: str, config: EnvConfig | None = None) -> gym.Env:
    from lamp_data.envs.metaworld_suite import make_task_env

    return make_task_env(task, config)


def _rlbench_task_env(task: str, config: EnvConfig | None = None) -> gym.Env:
    from lamp_data.envs.rlbench_backend import make_rlbench_env

    return make_rlbench_env(task, config)


_register_simulators()

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
    env = ENVS.create(name, config)
    if config.action_repeat > 1 and not getattr(env, "handles_action_repeat", False):
        env = ActionRepeat(env, config.action_repeat)
    return env


def env_names() -> list[str]:
    """Every registered env name."""
    return ENVS.names()

