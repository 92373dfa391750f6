"""The contract every simulator backend meets, and the config that builds one.

An env is a ``gymnasium.Env`` with

* ``observation_space = Dict(image=Box(uint8, [H, W, 3]), state=Box(float32, [S]))``,
* ``action_space = Box(-1, 1, [A])`` (A = 4 on the embedded suite: xyz delta, gripper),
* ``reset(seed=s)`` fully determines the episode (task, goal, randomization, frames);
  its ``info`` holds ``task``, ``instruction`` and ``randomization`` (JSON-able dict),
* ``step`` returns ``info`` with ``success`` (bool) and ``task_reward`` (float, the task's
  dense reward, also returned as the step reward); ``truncated`` becomes True after
  ``episode_length`` steps, ``terminated`` is always False on manipulation tasks,
* ``expert_action(noise=0.0, rng=None)``: the scripted expert's action for the current state,
  or :class:`~lamp_data.errors.LampError` when the backend has none,
* ``spec_dict()``: a JSON-able description (backend, tasks, sizes, randomization config)
  recorded in every dataset made from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from lamp_data.errors import LampError

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 512


@dataclass(frozen=True)
class RandomizationConfig:
    """Per-episode domain randomization; ``canonical()`` turns all of it off."""

    textures: bool = True
    """Random table/floor/wall textures (photo and procedural)."""
    colors: bool = True
    """Random colours of robot and objects."""
    lighting: bool = True
    """Random light direction, colour and intensity."""
    camera_jitter: float = 0.03
    """Max camera position jitter in metres (orientation jitter scales with it)."""
    max_distractors: int = 3
    """Up to this many distractor objects per episode (0 disables them)."""

    @classmethod
    def canonical(cls) -> "RandomizationConfig":
        """No randomization at all: the evaluation setting."""
        return cls(textures=False, colors=False, lighting=False, camera_jitter=0.0, max_distractors=0)

    @property
    def enabled(self) -> bool:
        """True if anything is randomized."""
        return self != RandomizationConfig.canonical()


@dataclass(frozen=True)
class EnvConfig:
    """What every backend is built from."""

    image_size: int = 64
    """Square camera image side in pixels."""
    episode_length: int = 150
    """Steps before ``truncated`` (LAMP used 150)."""
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    """Domain randomization applied at every reset."""

    def __post_init__(self) -> None:
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise LampError(
                f"image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px, got {self.image_size}"
            )
        if self.episode_length < 1:
            raise LampError(f"episode length must be at least 1, got {self.episode_length}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, recorded in dataset metadata."""
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "EnvConfig":
        """Inverse of :meth:`to_dict`."""
        value = dict(value)
        value["randomization"] = RandomizationConfig(**value.get("randomization", {}))
        return cls(**value)


def image_state_space(image_size: int, state_dim: int) -> gym.spaces.Dict:
    """The observation space shared by all backends."""
    return gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "state": gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32),
        }
    )
