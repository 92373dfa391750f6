"""The one episode loop, and the one builder of the stored episode dict.

An episode in memory is a flat dict of numpy arrays with the reserved keys of
:mod:`lamp_data.schema`: the frames of every camera the env renders and the proprio state with
``T + 1`` rows (the first observation plus one per action), actions and env rewards with ``T``
rows, the success flag and ``is_first`` / ``is_last`` / ``is_terminal`` with ``T + 1`` rows.
:class:`EpisodeBuilder` makes it step by step (a training loop that interleaves env steps with
updates passes them as ``on_step``); :func:`run_episode` plays an episode with a :class:`Policy`.

A policy is an object with ``reset(info)`` at each episode start and ``policy(observation) ->
action``. The built-in ones are found by name in :data:`POLICIES` (``random``, ``expert``,
``noisy-expert``) and built for one episode from the env, the episode's random generator and
the action noise; an agent acting in the env (:class:`lamp_agent.core.policy.AgentPolicy`) is
just another policy.

Action repeat: one recorded step may be several simulator steps. The env repeats the action
(``EnvConfig.action_repeat``; a backend that renders only the last frame does it itself, the
others through ``lamp_data.envs.ActionRepeat``) and reports the simulator steps a call took as
``info["env_steps"]``; the builder adds them up in :attr:`EpisodeBuilder.env_steps`, the count
that env-step budgets are spent in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.registry import Registry


class Policy(Protocol):
    """Acts in an env: ``reset(info)`` at each episode start, then ``policy(observation) -> action``.

    A policy may also have ``episode_meta() -> dict``, what a recorded episode's meta says of it
    (an agent: the index of the prompt it acted on); ``collect`` adds it to the episode's meta.
    """

    def reset(self, info: dict[str, Any]) -> None:
        """Start an episode; ``info`` is what ``env.reset`` returned with the first observation."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """The action for ``observation``."""


def env_steps_taken(info: dict[str, Any]) -> int:
    """Simulator steps one ``env.step`` call took: ``info["env_steps"]`` under action repeat, else 1."""
    return int(info.get("env_steps", 1))


class EpisodeBuilder:
    """Collects one episode, step by step, into the stored episode dict.

    Args:
        observation: The observation ``env.reset`` returned; its camera keys
            (:data:`lamp_data.schema.CAMERA_KEYS`) are the ones recorded.
        reset_info: The info ``env.reset`` returned (task, instruction, randomization).
        seed: The env reset seed of the episode.
    """

    def __init__(self, observation: dict[str, np.ndarray], reset_info: dict[str, Any] | None = None, seed: int | None = None):
        self.reset_info = dict(reset_info or {})
        self.seed = seed
        self.image_keys = tuple(key for key in schema.CAMERA_KEYS.values() if key in observation)
        self.frames: dict[str, list[np.ndarray]] = {key: [observation[key]] for key in self.image_keys}
        """Every camera's frames so far, the first observation's included."""
        self.states = [observation[schema.STATE]]
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        """The env reward of every step so far."""
        self.successes = [False]
        self.terminal = False
        self.done = False
        """True once the env ended the episode (terminated or truncated)."""
        self.env_steps = 0
        """Simulator steps taken so far (more than the recorded steps under action repeat)."""

    def add(self, action: np.ndarray, observation: dict[str, np.ndarray], reward: float, terminated: bool, info: dict[str, Any]) -> None:
        """Record one step: the action taken and what ``env.step`` returned for it."""
        for key in self.image_keys:
            self.frames[key].append(observation[key])
        self.states.append(observation[schema.STATE])
        self.actions.append(np.asarray(action, np.float32))
        self.rewards.append(float(reward))
        self.successes.append(bool(info.get("success", False)))
        self.terminal = bool(terminated)
        self.env_steps += env_steps_taken(info)

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def total_reward(self) -> float:
        """Sum of the env rewards so far."""
        return float(sum(self.rewards))

    @property
    def success(self) -> bool:
        """True if the success flag was set at any step so far."""
        return any(self.successes)

    def episode(self) -> dict[str, np.ndarray]:
        """The stored episode dict of the steps so far (at least one)."""
        return stored_episode(
            {key: np.stack(frames) for key, frames in self.frames.items()},
            np.stack(self.states), np.stack(self.actions), np.asarray(self.rewards), np.asarray(self.successes), self.terminal,
        )


def stored_episode(
    frames: dict[str, np.ndarray], states: np.ndarray, actions: np.ndarray, rewards: np.ndarray, successes: np.ndarray,
    terminal: bool,
) -> dict[str, np.ndarray]:
    """The stored episode dict from its arrays: frames of each camera's step key and states with
    ``T + 1`` rows, actions and env rewards with ``T`` rows, the success flag after each frame
    (``T + 1``), and whether the env terminated it at the end (else it was cut off).

    Raises:
        LampError: the row counts do not fit one episode of ``T`` steps (``T >= 1``).
    """
    length = len(actions)
    rows = {"states": len(states), "successes": len(successes), **{key: len(value) for key, value in frames.items()}}
    wrong = {name: count for name, count in rows.items() if count != length + 1}
    if length < 1 or wrong or len(rewards) != length or schema.IMAGE not in frames:
        raise LampError(
            f"an episode needs front-camera frames, T + 1 frames and states and T >= 1 actions and rewards; got {length} actions, "
            f"{len(rewards)} rewards and rows {rows}"
        )
    is_first = np.zeros(length + 1, bool)
    is_first[0] = True
    is_last = np.zeros(length + 1, bool)
    is_last[-1] = True
    is_terminal = np.zeros(length + 1, bool)
    is_terminal[-1] = bool(terminal)
    return {
        **{key: np.asarray(value).astype(np.uint8, copy=False) for key, value in frames.items()},
        schema.STATE: np.asarray(states).astype(np.float32, copy=False),
        schema.ACTION: np.asarray(actions).astype(np.float32, copy=False),
        schema.REWARD: np.asarray(rewards).astype(np.float32, copy=False),
        schema.SUCCESS: np.asarray(successes).astype(bool, copy=False),
        schema.IS_FIRST: is_first,
        schema.IS_LAST: is_last,
        schema.IS_TERMINAL: is_terminal,
    }


StepCallback = Callable[["EpisodeBuilder", dict[str, Any], bool], bool | None]
"""``on_step(builder, info, done)``, called after each recorded step with the step's info and
whether the env ended the episode there; returning True stops the episode after that step."""


def run_episode(env: Any, policy: Policy, seed: int, max_steps: int | None = None, on_step: StepCallback | None = None) -> EpisodeBuilder:
    """Play one episode from ``env.reset(seed=seed)`` until it ends, ``max_steps`` steps, or ``on_step`` stops it.

    What happens between steps (a training loop's updates, an evaluation, a progress bar) is
    the caller's ``on_step``, so every episode of the project is played here.

    Args:
        env: A Gymnasium env of the project's contract (image and state observations).
        policy: What acts; ``policy.reset`` gets the reset info.
        seed: The env reset seed.
        max_steps: At most this many recorded steps; None: until the env ends the episode.
        on_step: Called after every step (see :data:`StepCallback`).

    Returns:
        The builder holding the episode (``.episode()`` is the stored dict; :attr:`EpisodeBuilder.done`
        tells whether the env ended it).
    """
    observation, info = env.reset(seed=seed)
    policy.reset(info)
    builder = EpisodeBuilder(observation, info, seed)
    while max_steps is None or len(builder) < max_steps:
        action = np.asarray(policy(observation), np.float32)
        observation, reward, terminated, truncated, step_info = env.step(action)
        builder.add(action, observation, reward, terminated, step_info)
        builder.done = bool(terminated or truncated)
        if on_step is not None and on_step(builder, step_info, builder.done):
            break
        if builder.done:
            break
    return builder


def expert_of(env: Any) -> Any:
    """The env's scripted expert (``expert_action(noise, rng)``), or None if it has none."""
    return getattr(env, "expert_action", None) or getattr(env.unwrapped, "expert_action", None)


class RandomPolicy:
    """Uniformly random actions in ``[-1, 1]`` from the episode's generator."""

    records_noise = False
    """Whether the policy's noise is part of what it is (recorded with its run)."""

    def __init__(self, env: Any, rng: np.random.Generator, noise: float = 0.0):
        self.shape = env.action_space.shape
        self.rng = rng

    def reset(self, info: dict[str, Any]) -> None:
        """Nothing to forget between episodes."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.shape).astype(np.float32)


class ExpertPolicy:
    """The env's scripted expert, without noise.

    Raises:
        LampError: the env has no scripted expert.
    """

    records_noise = False
    """Whether the policy's noise is part of what it is (recorded with its run)."""

    def __init__(self, env: Any, rng: np.random.Generator | None = None, noise: float = 0.0):
        self.expert = expert_of(env)
        if self.expert is None:
            raise LampError("this env has no scripted expert; use --policy random")

    def reset(self, info: dict[str, Any]) -> None:
        """Nothing to forget between episodes."""

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.expert(noise=0.0)


class NoisyExpertPolicy(ExpertPolicy):
    """The env's scripted expert plus Gaussian action noise of scale ``noise`` from the episode's generator."""

    records_noise = True
    """Whether the policy's noise is part of what it is (recorded with its run)."""

    def __init__(self, env: Any, rng: np.random.Generator, noise: float = 0.0):
        super().__init__(env)
        self.rng = rng
        self.noise = noise

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.expert(noise=self.noise, rng=self.rng)


POLICIES: Registry[Policy] = Registry("policy")
"""Built-in policies by name; each factory takes ``(env, rng, noise)`` and serves one episode."""

POLICIES.register("random", RandomPolicy, description="uniformly random actions")
POLICIES.register("expert", ExpertPolicy, description="the env's scripted expert")
POLICIES.register("noisy-expert", NoisyExpertPolicy, description="the scripted expert plus Gaussian action noise")


def records_noise(policy: str) -> bool:
    """True for a built-in policy whose noise is recorded with its run (``noisy-expert``)."""
    return policy in POLICIES and bool(getattr(POLICIES.get(policy), "records_noise", False))
