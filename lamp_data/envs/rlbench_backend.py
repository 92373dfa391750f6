"""RLBench tasks behind the project's env contract (the ``rlbench`` extra, needs CoppeliaSim).

Follows LAMP's setup: the front camera's RGB frames, 150-step episodes, and a 4-D action
(xyz delta in [-1, 1] scaled to ±3 cm, gripper) executed with
``MoveArmThenGripper(EndEffectorPoseViaPlanning(absolute_mode=False), Discrete())``; RLBench's
own visual domain randomization (``VisualRandomizationConfig``, ``RandomizeEvery.EPISODE``)
draws textures from Meta-World's photo textures. RLBench's randomizer uses NumPy's global
generator, so ``reset(seed)`` seeds it before every episode.

This module imports without RLBench; building an env without it (or without CoppeliaSim)
raises :class:`~lamp_data.errors.MissingExtraError` naming what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from lamp_data.envs.base import EnvConfig, image_state_space
from lamp_data.envs.tasks import get_task
from lamp_data.errors import LampError, MissingExtraError

ACTION_SCALE_M = 0.03
"""Metres of end-effector motion per unit of action (LAMP: ±3 cm)."""
STATE_FIELDS = ("tip_x", "tip_y", "tip_z", "gripper_open", "tip_qx", "tip_qy", "tip_qz", "tip_qw")
_IDENTITY_QUATERNION = np.array([0.0, 0.0, 0.0, 1.0])
_INSTALL_HINT = "RLBench, PyRep and CoppeliaSim 4.1 (set COPPELIASIM_ROOT)"


def _import_rlbench() -> dict[str, Any]:
    """Import the RLBench names we use, or raise one clear line naming what to install."""
    try:
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import EndEffectorPoseViaPlanning
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.backend.exceptions import InvalidActionError
        from rlbench.environment import Environment
        from rlbench.observation_config import ObservationConfig
        from rlbench.sim2real.domain_randomization import RandomizeEvery, VisualRandomizationConfig
        from rlbench.utils import name_to_task_class
    except (ImportError, OSError) as error:
        raise MissingExtraError(f"RLBench backend ({_INSTALL_HINT})", "rlbench", error) from error
    return {
        "Environment": Environment,
        "ObservationConfig": ObservationConfig,
        "MoveArmThenGripper": MoveArmThenGripper,
        "EndEffectorPoseViaPlanning": EndEffectorPoseViaPlanning,
        "Discrete": Discrete,
        "RandomizeEvery": RandomizeEvery,
        "VisualRandomizationConfig": VisualRandomizationConfig,
        "InvalidActionError": InvalidActionError,
        "name_to_task_class": name_to_task_class,
    }


def _texture_directory() -> str:
    import metaworld

    return str(Path(metaworld.__file__).parent / "assets" / "textures")


class RLBenchEnv(gym.Env):
    """One RLBench task with front-camera images (and RLBench's wrist camera when
    ``config.cameras`` holds ``wrist``) and LAMP's action scaling.

    Args:
        task: RLBench task name, e.g. ``"pick_up_cup"``.
        config: Image size, episode length and randomization (only on/off is used: RLBench
            randomizes textures of the whole scene through its own config).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, task: str, config: EnvConfig | None = None):
        spec = get_task(task)
        if spec.backend != "rlbench":
            raise LampError(f"task '{task}' is not an RLBench task")
        config = config or EnvConfig()
        if config.goal_marker:
            raise LampError("the goal marker is a Meta-World option: RLBench scenes draw their own targets")
        api = _import_rlbench()
        self._api = api
        self.task = task
        self.config = config
        observation_config = api["ObservationConfig"]()
        observation_config.set_all(False)
        observation_config.front_camera.rgb = True
        observation_config.front_camera.image_size = (config.image_size, config.image_size)
        if "wrist" in config.cameras:
            observation_config.wrist_camera.rgb = True
            observation_config.wrist_camera.image_size = (config.image_size, config.image_size)
        observation_config.gripper_pose = True
        observation_config.gripper_open = True
        action_mode = api["MoveArmThenGripper"](
            api["EndEffectorPoseViaPlanning"](absolute_mode=False), api["Discrete"]()
        )
        randomization: dict[str, Any] = {}
        if config.randomization.enabled:
            randomization = {
                "randomize_every": api["RandomizeEvery"].EPISODE,
                "visual_randomization_config": api["VisualRandomizationConfig"](image_directory=_texture_directory()),
            }
        self._environment = api["Environment"](
            action_mode, obs_config=observation_config, headless=True, **randomization
        )
        try:
            self._environment.launch()
        except Exception as error:
            raise MissingExtraError(f"RLBench backend ({_INSTALL_HINT}): CoppeliaSim did not start", "rlbench", error) from error
        self._task_environment = self._environment.get_task(api["name_to_task_class"](task))
        self.observation_space = image_state_space(config.image_size, len(STATE_FIELDS), cameras=config.cameras)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._steps = 0
        self._last = None

    def _observation(self, observation) -> dict[str, np.ndarray]:
        self._last = observation
        pose = np.asarray(observation.gripper_pose, np.float32)
        state = np.concatenate([pose[:3], [float(observation.gripper_open)], pose[3:]]).astype(np.float32)
        frames = {"image": np.asarray(observation.front_rgb, np.uint8)}
        if "wrist" in self.config.cameras:
            frames["image_wrist"] = np.asarray(observation.wrist_rgb, np.uint8)
        return {**frames, "state": state}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` seeds RLBench's variation and randomization draws."""
        super().reset(seed=seed)
        if seed is not None:
            np.random.seed(seed % 2**32)
        self._task_environment.sample_variation()
        descriptions, observation = self._task_environment.reset()
        self._steps = 0
        info = {
            "task": self.task,
            "instruction": get_task(self.task).instruction,
            "randomization": {"rlbench_visual": self.config.randomization.enabled, "seed": seed},
            "descriptions": list(descriptions),
        }
        return self._observation(observation), info

    def step(self, action):
        """Move the gripper by ``action[:3] * 3 cm``; ``action[3] > 0`` closes it (as on Meta-World)."""
        action = np.clip(np.asarray(action, np.float64).reshape(4), -1.0, 1.0)
        command = np.concatenate([action[:3] * ACTION_SCALE_M, _IDENTITY_QUATERNION, [0.0 if action[3] > 0 else 1.0]])
        try:
            observation, reward, _ = self._task_environment.step(command)
            success, _ = self._task_environment._task.success()
            result = self._observation(observation)
        except self._api["InvalidActionError"]:
            reward, success = 0.0, False
            result = self._observation(self._last)
        self._steps += 1
        info = {"success": bool(success), "task_reward": float(reward)}
        return result, float(reward), False, self._steps >= self.config.episode_length, info

    def expert_action(self, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """RLBench has no per-step scripted policy (its demos are planned whole); always raises."""
        raise LampError("RLBench envs have no per-step expert; record demos with RLBench's get_demos instead")

    def render(self) -> np.ndarray | None:
        """The last front-camera frame."""
        return None if self._last is None else np.asarray(self._last.front_rgb, np.uint8)

    def spec_dict(self) -> dict[str, Any]:
        """JSON-able description of this env."""
        return {
            "backend": "rlbench",
            "tasks": [self.task],
            "config": self.config.to_dict(),
            "state_fields": list(STATE_FIELDS),
            "action": f"xyz delta ({ACTION_SCALE_M * 100:.0f} cm per unit) and gripper (>0 closes), in [-1, 1]",
            "camera": "front",
        }

    def close(self) -> None:
        """Shut CoppeliaSim down; safe to call twice."""
        if self._environment is not None:
            self._environment.shutdown()
            self._environment = None


def make_rlbench_env(task: str, config: EnvConfig | None = None) -> RLBenchEnv:
    """``rlbench-<task>``: one RLBench task."""
    return RLBenchEnv(task, config)
