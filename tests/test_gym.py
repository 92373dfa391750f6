"""Gymnasium registration: every env by id, kwargs mapped to EnvConfig, check_env without warnings."""

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from lamp_data.envs import ENVS, gym_id
from lamp_data.envs.base import RandomizationConfig
from lamp_data.errors import LampError, MissingExtraError


def test_every_env_is_registered_without_importing_a_simulator():
    code = (
        "import sys, gymnasium, lamp_data.envs\n"
        "ids = [i for i in gymnasium.registry if i.startswith('lamp/')]\n"
        "print(len(ids), sorted(m for m in ('mujoco', 'metaworld', 'rlbench', 'pyrep') if m in sys.modules))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    assert int(output[0]) == len(ENVS.names()) and output[1].strip() == "[]"
    assert {gym_id("dummy"), gym_id("mw-pick-place"), gym_id("mw-pretrain")} == {
        "lamp/Dummy-v0", "lamp/MetaWorld-pick-place-v0", "lamp/MetaWorld-pretrain-v0"
    }
    rlbench = [name for name in ENVS.names() if name.startswith("rlbench-")]
    assert rlbench and all(gym_id(name).startswith("lamp/RLBench-") and gym_id(name) in gym.registry for name in rlbench)


def _checked_without_warnings(env_id: str, **kwargs) -> gym.Env:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id, render_mode="rgb_array", **kwargs)
        check_env(env.unwrapped)
        observation, _ = env.reset(seed=3)
        for _ in range(3):
            observation, *_ = env.step(env.action_space.sample())
            assert env.observation_space.contains(observation)
        frame = env.render()
    assert [str(w.message) for w in caught] == []
    assert env.spec.id == env_id and env.render_mode == "rgb_array"
    assert np.array_equal(frame, observation["image"])
    return env


def test_dummy_passes_check_env_and_kwargs_reach_the_config():
    env = _checked_without_warnings("lamp/Dummy-v0", image_size=24, episode_length=7, canonical=True, action_repeat=2)
    config = env.unwrapped.config
    assert (config.image_size, config.episode_length, config.action_repeat) == (24, 7, 2)
    assert config.randomization == RandomizationConfig.canonical()
    assert env.observation_space["image"].shape == (24, 24, 3)
    assert np.isfinite(env.observation_space["state"].low).all()
    env.close()
    randomized = gym.make("lamp/Dummy-v0", randomization={"colors": False})
    assert randomized.unwrapped.config.randomization == RandomizationConfig(colors=False)
    assert randomized.unwrapped.spec.kwargs["randomization"] == {"colors": False}


def test_metaworld_task_passes_check_env_with_finite_state_bounds():
    from lamp_data.envs.metaworld_suite import SIMULATOR_DT

    env = _checked_without_warnings("lamp/MetaWorld-pick-place-v0", image_size=16, episode_length=5)
    state_space = env.observation_space["state"]
    assert np.isfinite(state_space.low).all() and np.isfinite(state_space.high).all()
    assert env.unwrapped._simulator.env.dt == pytest.approx(SIMULATOR_DT)
    assert env.metadata["render_fps"] == 80
    env.close()


def test_bad_kwargs_fail_clearly():
    with pytest.raises(LampError, match="image size"):
        gym.make("lamp/Dummy-v0", image_size=4)
    with pytest.raises(LampError, match="not both"):
        gym.make("lamp/Dummy-v0", canonical=True, randomization={"colors": False})
    with pytest.raises(TypeError, match="colour"):
        gym.make("lamp/Dummy-v0", colour="red")
    with pytest.warns(UserWarning, match="not in the possible render_modes"), pytest.raises(LampError, match="render_mode"):
        gym.make("lamp/Dummy-v0", render_mode="depth_array")
    try:
        import rlbench  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="rlbench"):
            gym.make("lamp/RLBench-pick_up_cup-v0", image_size=16)
