"""The contract every simulator backend meets, and the config that builds one.

An env is a ``gymnasium.Env`` with

* ``observation_space = Dict(image=Box(uint8, [H, W, 3]), state=Box(float32, [S]))``, plus
  ``image_wrist`` (same shape) when ``config.cameras`` holds ``wrist``
  (:data:`lamp_data.schema.CAMERA_KEYS`); ``image`` is always the front camera,
* ``action_space = Box(-1, 1, [A])`` (A = 4 on the embedded suite: xyz delta, gripper),
* ``reset(seed=s)`` fully determines the episode (task, goal, randomization, frames);
  its ``info`` holds ``task``, ``instruction`` and ``randomization`` (JSON-able dict),
* ``step`` returns ``info`` with ``success`` (bool) and ``task_reward`` (float, the task's
  dense reward, also returned as the step reward); ``truncated`` becomes True after
  ``episode_length`` steps, ``terminated`` is always False on manipulation tasks,
* ``expert_action(noise=0.0, rng=None)``: the scripted expert's action for the current state,
  or :class:`~lamp_data.errors.LampError` when the backend has none,
* ``spec_dict()``: a JSON-able description (backend, tasks, sizes, randomization config)
  recorded in every dataset made from it,
* ``render()`` returns the latest frame (``metadata["render_modes"] == ["rgb_array"]``).

Every env is also registered with Gymnasium (``gymnasium.make("lamp/Dummy-v0")``, see
:mod:`lamp_data.envs.gym_registration`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from lamp_data import schema
from lamp_data.errors import LampError, check_count

MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 512
MAX_EPISODE_LENGTH = 10_000
MAX_ACTION_REPEAT = 1000
"""Longest episode in env steps: an episode is held in memory until it ends (Meta-World's own
limit is 500 steps)."""


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
    """What every backend is built from, and the one place the env's settings are declared:
    a config that builds envs (collection's, a finetuning run's, the demo's) holds one."""

    image_size: int = 64
    """Square camera image side in pixels."""
    episode_length: int = 150
    """Steps before ``truncated`` (LAMP used 150)."""
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    """Domain randomization applied at every reset."""
    action_repeat: int = 1
    """Simulator steps per ``step()`` call, repeating the action (MWM on Meta-World: 2). Rewards
    add up, ``success`` is true if any repeated step succeeded, and ``episode_length`` still
    counts simulator steps."""
    cameras: tuple[str, ...] = schema.DEFAULT_CAMERAS
    """Cameras rendered at every step: ``front`` (the scene camera, ``image``) and optionally
    ``wrist`` (a camera on the gripper, ``image_wrist``), each at ``image_size``."""
    goal_marker: bool = False
    """Draw a marker at the goal of tasks whose goal nothing in the frame shows
    (``lamp_data.envs.tasks.TaskSpec.goal_visible``; Meta-World: ``reach``, ``push``, ``pick-place``...),
    so that success can be seen in a frame. Other tasks' frames are unchanged."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", schema.check_cameras(self.cameras))
        for name, limit in (("image_size", MAX_IMAGE_SIZE), ("episode_length", MAX_EPISODE_LENGTH), ("action_repeat", MAX_ACTION_REPEAT)):
            check_count(name, getattr(self, name), limit)
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise LampError(
                f"image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} px, got {self.image_size}"
            )
        if self.action_repeat > self.episode_length:
            raise LampError(
                f"an episode of {self.episode_length} env steps is shorter than one decision at action repeat "
                f"{self.action_repeat}; give an episode length of at least {self.action_repeat}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, recorded in dataset metadata.

        ``cameras`` is left out while it is the front camera alone and ``goal_marker`` while it
        is off, so the record of such a config (and everything keyed by it: dataset compatibility
        checks, cached baselines) is the same as before those options existed.
        """
        value = asdict(self)
        value["cameras"] = list(self.cameras)
        if self.cameras == schema.DEFAULT_CAMERAS:
            del value["cameras"]
        if not self.goal_marker:
            del value["goal_marker"]
        return value

    @classmethod
    def of(cls, canonical: bool = False, **fields: Any) -> "EnvConfig":
        """An env config from flat options, as the command line names them: ``canonical`` turns
        domain randomization off; the other keywords are fields."""
        return cls(randomization=RandomizationConfig.canonical() if canonical else RandomizationConfig(), **fields)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> "EnvConfig":
        """Inverse of :meth:`to_dict`."""
        value = dict(value)
        value["randomization"] = RandomizationConfig(**value.get("randomization", {}))
        return cls(**value)


class ActionRepeat(gym.Wrapper):
    """Repeats each action ``action_repeat`` times on a backend that does not do it itself
    (see :class:`EnvConfig`; a backend that does sets ``handles_action_repeat = True`` and may
    skip rendering the frames in between).

    ``info["env_steps"]`` says how many simulator steps a call took (fewer at the episode's end).

    The wrapped env's own methods of the contract (``expert_action``, ``spec_dict``, ``task``...)
    stay reachable as attributes of the wrapper.
    """

    def __init__(self, env: gym.Env, action_repeat: int):
        super().__init__(env)
        self.action_repeat = int(action_repeat)

    def step(self, action):
        """Up to ``action_repeat`` simulator steps with ``action``, stopping when the episode ends."""
        total, success = 0.0, False
        taken = 0
        for _ in range(self.action_repeat):
            observation, reward, terminated, truncated, info = self.env.step(action)
            taken += 1
            total += float(reward)
            success = success or bool(info.get("success", False))
            if terminated or truncated:
                break
        info = {**info, "success": success, "env_steps": taken}
        if "task_reward" in info:
            info["task_reward"] = total
        return observation, total, terminated, truncated, info

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)


def image_state_space(
    image_size: int,
    state_dim: int,
    state_low: float | np.ndarray = -np.inf,
    state_high: float | np.ndarray = np.inf,
    cameras: tuple[str, ...] = schema.DEFAULT_CAMERAS,
) -> gym.spaces.Dict:
    """The observation space shared by all backends.

    Args:
        image_size: Square frame side in pixels.
        state_dim: Entries of the proprioceptive state.
        state_low: Lower bound of each state entry (a scalar or ``[state_dim]``); a backend gives
            the bounds its simulator guarantees and leaves the rest infinite.
        state_high: Upper bound, like ``state_low``.
        cameras: Cameras whose frames the observation holds, each under its
            :data:`~lamp_data.schema.CAMERA_KEYS` key.
    """
    return gym.spaces.Dict(
        {
            **{key: gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8) for key in schema.image_keys(cameras)},
            "state": gym.spaces.Box(
                np.broadcast_to(np.asarray(state_low, np.float32), (state_dim,)),
                np.broadcast_to(np.asarray(state_high, np.float32), (state_dim,)),
                (state_dim,),
                np.float32,
            ),
        }
    )
