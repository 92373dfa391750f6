"""Simulator backends behind one Gymnasium interface, found by name.

``make_env("mw-pretrain")`` is the embedded pretraining env (a task and goal sampled per
episode from the pretraining split); ``make_env("mw-pick-place")`` is one Meta-World task;
``make_env("dummy")`` is a 5-step toy env for tests; ``rlbench-<task>`` needs the
``rlbench`` extra. See :mod:`lamp_data.envs.base` for the contract.

Importing this package also registers every env with Gymnasium, without importing a simulator:
``gymnasium.make("lamp/MetaWorld-pick-place-v0", image_size=96)`` (see
:mod:`lamp_data.envs.gym_registration`).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from lamp_data.envs.base import EnvConfig, RandomizationConfig  # noqa: E402
from lamp_data.envs.factory import DEFAULT_ENV, ENVS, env_names, make_env  # noqa: E402
from lamp_data.envs.gym_registration import gym_id, register_gym_envs  # noqa: E402

register_gym_envs(ENVS.names())

__all__ = ["DEFAULT_ENV", "ENVS", "EnvConfig", "RandomizationConfig", "env_names", "gym_id", "make_env"]
