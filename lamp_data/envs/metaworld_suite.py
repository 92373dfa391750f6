"""The embedded simulator: Meta-World v3 tasks with images, randomization and experts.

:class:`MetaWorldEnv` runs one task (``mw-<task>``) or samples one per episode from a task
list (``mw-pretrain``). Each task's Meta-World env is built on a model augmented once through
``MjSpec`` (camera, randomizable textures, distractor pool, see
:mod:`lamp_data.envs.randomization`) and paired with a lean renderer
(:mod:`lamp_data.envs.rendering`), which renders the front camera and, when
``config.cameras`` asks for it, the wrist camera: Meta-World's own ``gripperPOV`` camera on the
hand body, which follows the gripper (MuJoCo ``track`` mode: it moves with the hand and keeps
its orientation, as does the hand). Task simulators are built lazily and kept in a small LRU,
so a pretraining worker spanning ~40 tasks holds only a few at a time.

Meta-World's single-task envs freeze their goal; here ``_freeze_rand_vec`` is off and the
goal is drawn from a generator seeded by the reset seed, and the goal is observable to the
scripted expert (never to the agent: the agent's state is proprioception only, and its frames show
the goal where the scene draws something there, or where ``config.goal_marker`` marks it).
"""

from __future__ import annotations

import collections
import functools
import warnings
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, ML1_ARGS_KWARGS
from metaworld.policies import ENV_POLICY_MAP

from lamp_data import schema
from lamp_data.envs.base import EnvConfig, image_state_space
from lamp_data.envs.randomization import (
    CAMERA_AZIMUTH,
    CAMERA_DISTANCE,
    CAMERA_ELEVATION,
    CAMERA_FOVY,
    CAMERA_LOOKAT,
    DISTRACTOR_POOL,
    GOAL_MARKER_ALPHA,
    GOAL_MARKER_NAME,
    GOAL_MARKER_RADIUS,
    SceneRandomizer,
    augment_spec,
    sample_randomization,
)
from lamp_data.envs.rendering import SceneRenderer
from lamp_data.envs.tasks import PRETRAIN, get_task, list_tasks
from lamp_data.errors import LampError

STATE_FIELDS = ("hand_x", "hand_y", "hand_z", "gripper_opening", "hand_vx", "hand_vy", "hand_vz")
"""Names of the proprioceptive state entries."""
HAND_LOW = (-0.525, 0.348, -0.0525)
HAND_HIGH = (0.525, 1.025, 0.7)
"""Meta-World's hand workspace in metres (``SawyerXYZEnv._HAND_SPACE``): every step's observation
is clipped to it."""
SIMULATOR_DT = 0.0025 * 5
"""Seconds per Meta-World step: every v3 scene's 2.5 ms timestep times ``frame_skip`` 5."""
_MAX_SPEED = np.ceil(np.subtract(HAND_HIGH, HAND_LOW) / SIMULATOR_DT)
STATE_LOW = np.array([*HAND_LOW, 0.0, *-_MAX_SPEED], np.float32)
STATE_HIGH = np.array([*HAND_HIGH, 1.0, *_MAX_SPEED], np.float32)
"""Bounds of the state that Meta-World guarantees: the hand workspace, the gripper opening (0 closed,
1 open) and the hand velocity between two positions inside the workspace (m/s; a hand driven by
1 cm-per-step actions moves at under 1 m/s)."""
WRIST_CAMERA = "gripperPOV"
"""Meta-World's camera on the hand body (every v3 task model has it), used as the wrist camera."""
MAX_CACHED_TASKS = 8
"""Task simulators kept alive by a multi-task env (each costs ~100 MB)."""
_UNBOUNDED_PATH_LENGTH = 2**31
_RESET_SEED_BOUND = 2**32


@functools.cache
def _augmented_class(env_class: type) -> type:
    """A subclass of a Meta-World env class whose model is compiled from an augmented spec."""

    def _initialize_simulation(self):
        spec = mujoco.MjSpec.from_file(self.fullpath)
        augment_spec(spec, max(self.width, self.height))
        model = spec.compile()
        return model, mujoco.MjData(model)

    return type(f"Lamp{env_class.__name__}", (env_class,), {"_initialize_simulation": _initialize_simulation})


class TaskSimulator:
    """One Meta-World task on the augmented model, with its renderer, randomizer and expert.

    Args:
        task: Meta-World task name without version, e.g. ``"pick-place"``.
        image_size: Square frame side in pixels.
        cameras: Cameras :meth:`render` renders (``front``, ``wrist``).
        goal_marker: Place the goal marker at the goal drawn at every reset.
    """

    def __init__(self, task: str, image_size: int, cameras: tuple[str, ...] = schema.DEFAULT_CAMERAS, goal_marker: bool = False):
        key = f"{task}-v3"
        self.task = task
        env = _augmented_class(ALL_V3_ENVIRONMENTS[key])(width=image_size, height=image_size)
        kwargs = dict(ML1_ARGS_KWARGS[key]["kwargs"])
        kwargs.pop("task_id", None)
        env._set_task_called = True
        env._set_task_inner(**kwargs)
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._partially_observable = False
        env.__dict__.pop("sawyer_observation_space", None)
        env.max_path_length = _UNBOUNDED_PATH_LENGTH
        self.env = env
        self.randomizer = SceneRandomizer(env.model)
        self.renderer = SceneRenderer(env.model, image_size, self.randomizer.camera_id)
        camera_ids = {"front": self.randomizer.camera_id, "wrist": env.model.camera(WRIST_CAMERA).id}
        self.camera_ids = {schema.CAMERA_KEYS[name]: camera_ids[name] for name in schema.check_cameras(cameras)}
        self.policy = ENV_POLICY_MAP[key]()
        self.last_observation: np.ndarray | None = None
        self.marker_id = env.model.geom(GOAL_MARKER_NAME).id if goal_marker else None

    def reset(self, goal_seed: int, randomization: dict[str, Any]) -> np.ndarray:
        """Apply ``randomization``, draw the goal and object layout from ``goal_seed``, reset."""
        self.renderer.make_current()
        show_backdrop = self.randomizer.apply(randomization, self.renderer.context)
        self.renderer.show_hidden_group(show_backdrop)
        self.env.np_random = np.random.default_rng(goal_seed)
        observation, _ = self.env.reset()
        if self.marker_id is not None:
            self._place_marker()
        self.last_observation = observation
        return observation

    def _place_marker(self) -> None:
        """Show the marker at this episode's goal. A world-body geom's world position is its model
        position, so writing both shows it in the reset frame without another forward pass (which
        would change the simulation state the first step starts from)."""
        model, data = self.env.model, self.env.data
        goal = np.asarray(self.env._target_pos, np.float64)  # Meta-World keeps the drawn goal only here
        model.geom_pos[self.marker_id] = goal
        model.geom_size[self.marker_id] = GOAL_MARKER_RADIUS
        model.geom_rbound[self.marker_id] = GOAL_MARKER_RADIUS
        data.geom_xpos[self.marker_id] = goal
        model.geom_rgba[self.marker_id, 3] = GOAL_MARKER_ALPHA

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, dict[str, Any]]:
        """One Meta-World step; returns its 39-D observation, reward and info."""
        observation, reward, _, _, info = self.env.step(action)
        self.last_observation = observation
        return observation, float(reward), info

    def render(self) -> dict[str, np.ndarray]:
        """The current frame of every camera, by its step key (``image``, ``image_wrist``)."""
        return {key: self.renderer.render(self.env.data, camera_id) for key, camera_id in self.camera_ids.items()}

    def close(self) -> None:
        """Free the renderer; safe to call twice."""
        self.renderer.close()


class MetaWorldEnv(gym.Env):
    """Meta-World tasks behind the project's image + proprio contract.

    Args:
        tasks: Task names to draw from, one per episode (a single name makes a single-task env).
        config: Image size, episode length and randomization.
        max_cached_tasks: Task simulators kept alive at once.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1 / SIMULATOR_DT)}

    def __init__(self, tasks: list[str], config: EnvConfig | None = None, *, max_cached_tasks: int = MAX_CACHED_TASKS):
        config = config or EnvConfig()
        if not tasks:
            raise LampError("a Meta-World env needs at least one task")
        for task in tasks:
            if get_task(task).backend != "metaworld":
                raise LampError(f"task '{task}' is not a Meta-World task")
        if config.randomization.max_distractors > DISTRACTOR_POOL:
            raise LampError(
                f"max_distractors must be at most {DISTRACTOR_POOL}, got {config.randomization.max_distractors}"
            )
        self.tasks = list(tasks)
        self.config = config
        self.metadata = {**self.metadata, "render_fps": round(1 / (SIMULATOR_DT * config.action_repeat))}
        self.max_cached_tasks = max(1, max_cached_tasks)
        self.observation_space = image_state_space(
            config.image_size, len(STATE_FIELDS), STATE_LOW, STATE_HIGH, config.cameras
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self._simulators: collections.OrderedDict[str, TaskSimulator] = collections.OrderedDict()
        self._simulator: TaskSimulator | None = None
        self._seed_rng = np.random.default_rng()
        self._steps = 0
        self._frame: np.ndarray | None = None

    def _simulator_for(self, task: str) -> TaskSimulator:
        simulator = self._simulators.pop(task, None)
        if simulator is None:
            while len(self._simulators) >= self.max_cached_tasks:
                _, evicted = self._simulators.popitem(last=False)
                evicted.close()
            marker = self.config.goal_marker and not get_task(task).goal_visible
            simulator = TaskSimulator(task, self.config.image_size, self.config.cameras, goal_marker=marker)
        self._simulators[task] = simulator
        return simulator

    def _state(self, observation: np.ndarray) -> np.ndarray:
        dt = self._simulator.env.dt
        velocity = (observation[0:3] - observation[18:21]) / dt
        return np.concatenate([observation[0:4], velocity]).astype(np.float32)

    def _observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        frames = self._simulator.render()
        self._frame = frames[schema.IMAGE]
        return {**frames, "state": self._state(observation)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` fixes task, goal, randomization and hence every frame."""
        super().reset(seed=seed)
        if seed is None:
            seed = int(self._seed_rng.integers(_RESET_SEED_BOUND))
        else:
            self._seed_rng = np.random.default_rng(seed)
        task_sequence, goal_sequence, randomization_sequence = np.random.SeedSequence(seed).spawn(3)
        task_rng = np.random.default_rng(task_sequence)
        task = self.tasks[int(task_rng.integers(len(self.tasks)))]
        goal_seed = int(np.random.default_rng(goal_sequence).integers(_RESET_SEED_BOUND))
        randomization = sample_randomization(np.random.default_rng(randomization_sequence), self.config.randomization)
        self._simulator = self._simulator_for(task)
        observation = self._simulator.reset(goal_seed, randomization)
        self._steps = 0
        info = {
            "task": task,
            "instruction": get_task(task).instruction,
            "randomization": randomization,
            "seed": seed,
        }
        return self._observation(observation), info

    handles_action_repeat = True
    """Repeats actions itself (``config.action_repeat``), rendering only the frame it returns."""

    def step(self, action):
        """Apply a 4-D action (xyz delta, gripper) in [-1, 1], ``config.action_repeat`` times.

        Rewards of the repeated steps add up and ``success`` is true if any of them succeeded;
        ``info["env_steps"]`` says how many simulator steps were taken (fewer at the episode's end).
        """
        if self._simulator is None:
            raise LampError("call reset() before step()")
        action = np.clip(np.asarray(action, np.float64).reshape(4), -1.0, 1.0)
        total, success, taken, truncated = 0.0, False, 0, False
        while taken < self.config.action_repeat and not truncated:
            observation, reward, meta_info = self._simulator.step(action)
            total += reward
            success = success or bool(meta_info["success"])
            taken += 1
            self._steps += 1
            truncated = self._steps >= self.config.episode_length
        info = {"success": success, "task_reward": total, "env_steps": taken}
        return self._observation(observation), total, False, truncated, info

    def expert_action(self, noise: float = 0.0, rng: np.random.Generator | None = None) -> np.ndarray:
        """Meta-World's scripted policy for the current task and state, plus Gaussian noise.

        Args:
            noise: Standard deviation of the Gaussian added to every action entry.
            rng: Generator for the noise (a fresh unseeded one if omitted).
        """
        if self._simulator is None:
            raise LampError("call reset() before expert_action()")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            action = np.asarray(self._simulator.policy.get_action(self._simulator.last_observation), np.float64)
        if noise > 0:
            rng = rng or np.random.default_rng()
            action = action + rng.normal(0.0, noise, action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def render(self) -> np.ndarray | None:
        """The last front-camera frame (the one in the latest observation)."""
        return self._frame

    @property
    def task(self) -> str | None:
        """The current episode's task."""
        return self._simulator.task if self._simulator else None

    def spec_dict(self) -> dict[str, Any]:
        """JSON-able description: backend, tasks, config, camera and state layout."""
        return {
            "backend": "metaworld",
            "tasks": list(self.tasks),
            "config": self.config.to_dict(),
            "state_fields": list(STATE_FIELDS),
            "action": "xyz delta (1 cm per unit) and gripper effort, in [-1, 1]",
            "camera": {
                "lookat": list(CAMERA_LOOKAT),
                "distance": CAMERA_DISTANCE,
                "azimuth": CAMERA_AZIMUTH,
                "elevation": CAMERA_ELEVATION,
                "fovy": CAMERA_FOVY,
            },
            **({"wrist_camera": WRIST_CAMERA} if "wrist" in self.config.cameras else {}),
        }

    def close(self) -> None:
        """Free every renderer; safe to call twice."""
        while self._simulators:
            _, simulator = self._simulators.popitem()
            simulator.close()
        self._simulator = None
        super().close()


def make_pretrain_env(config: EnvConfig | None = None) -> MetaWorldEnv:
    """``mw-pretrain``: a pretraining task and its goal drawn per episode."""
    return MetaWorldEnv([task.name for task in list_tasks(PRETRAIN, "metaworld")], config)


def make_task_env(task: str, config: EnvConfig | None = None) -> MetaWorldEnv:
    """``mw-<task>``: one Meta-World task, its goal drawn per episode."""
    return MetaWorldEnv([task], config)
