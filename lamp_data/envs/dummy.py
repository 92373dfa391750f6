"""A tiny deterministic env with the real contract, for fast tests of everything above envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lamp_data.envs.base import EnvConfig, image_state_space

_TASKS = ("reach-dummy", "push-dummy")
_INSTRUCTIONS = {"reach-dummy": "reach the red block", "push-dummy": "push the red block"}


class DummyEnv(gym.Env):
    """A dot moves on a plain image; ``success`` when it reaches a goal. Episodes default to 5 steps.

    Frames, task and colours depend only on the reset seed, like the real backends. The ``wrist``
    camera sees the image magnified twice around the dot, so its view moves with the dot as a
    wrist camera moves with the gripper.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: EnvConfig | None = None):
        config = config or EnvConfig(image_size=16, episode_length=5)
        self.config = config
        self.episode_length = config.episode_length
        size = config.image_size
        self.observation_space = image_state_space(size, 4, -1.0, 1.0, config.cameras)  # dot and goal positions
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._rng = np.random.default_rng(0)
        self._position = np.zeros(2, np.float32)
        self._goal = np.zeros(2, np.float32)
        self._background = np.zeros(3, np.uint8)
        self._steps = 0
        self._task = _TASKS[0]

    def spec_dict(self) -> dict[str, Any]:
        """JSON-able description of this env."""
        return {"backend": "dummy", "tasks": list(_TASKS), "config": self.config.to_dict()}

    def _observation(self) -> dict[str, np.ndarray]:
        size = self.config.image_size
        image = np.empty((size, size, 3), np.uint8)
        image[:] = self._background
        row, col = ((self._position + 1.0) / 2.0 * (size - 1)).astype(int)
        image[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = (255, 0, 0)
        state = np.concatenate([self._position, self._goal]).astype(np.float32)
        observation = {"image": image, "state": state}
        if "wrist" in self.config.cameras:
            offsets = (np.arange(size) - size // 2) // 2
            rows, cols = np.clip(row + offsets, 0, size - 1), np.clip(col + offsets, 0, size - 1)
            observation["image_wrist"] = image[rows][:, cols]
        return observation

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._task = _TASKS[int(self._rng.integers(len(_TASKS)))]
        self._position = self._rng.uniform(-1, 1, 2).astype(np.float32)
        self._goal = self._rng.uniform(-1, 1, 2).astype(np.float32)
        randomize = self.config.randomization.enabled
        self._background = (
            self._rng.integers(0, 128, 3).astype(np.uint8) if randomize else np.full(3, 64, np.uint8)
        )
        self._steps = 0
        info = {
            "task": self._task,
            "instruction": _INSTRUCTIONS[self._task],
            "randomization": {"background": self._background.tolist()},
        }
        return self._observation(), info

    def _distance(self) -> float:
        return float(np.linalg.norm(self._position - self._goal))

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1, 1)
        self._position = np.clip(self._position + 0.5 * action[:2], -1, 1)
        self._steps += 1
        distance = self._distance()
        success = distance < 0.25
        reward = float(-distance)
        info = {"success": bool(success), "task_reward": reward}
        truncated = self._steps >= self.episode_length
        return self._observation(), reward, False, truncated, info

    def expert_action(self, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """Move straight to the goal, plus Gaussian noise of scale ``noise``."""
        action = np.zeros(4, np.float32)
        action[:2] = np.clip((self._goal - self._position) / 0.5, -1, 1)
        if noise:
            rng = rng or np.random.default_rng()
            action = np.clip(action + rng.normal(0, noise, 4), -1, 1).astype(np.float32)
        return action

    def render(self):
        """The current frame."""
        return self._observation()["image"]
