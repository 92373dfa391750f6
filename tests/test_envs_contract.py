"""One contract suite run against every registered backend (RLBench only where it imports)."""

import importlib.util
import json

import numpy as np
import pytest

from lamp_data.envs import EnvConfig, RandomizationConfig, make_env
from lamp_data.errors import LampError, MissingExtraError

BACKENDS = [
    pytest.param(("dummy", 16), id="dummy"),
    pytest.param(("mw-pick-place", 32), id="metaworld"),
    pytest.param(
        ("rlbench-pick_up_cup", 32),
        id="rlbench",
        marks=pytest.mark.skipif(importlib.util.find_spec("rlbench") is None, reason="rlbench extra not installed"),
    ),
]
EPISODE_LENGTH = 4


@pytest.fixture(params=BACKENDS)
def env(request):
    name, size = request.param
    env = make_env(name, EnvConfig(image_size=size, episode_length=EPISODE_LENGTH))
    yield env
    env.close()
    env.close()


def test_reset_and_step_follow_the_contract(env):
    observation, info = env.reset(seed=7)
    size = env.config.image_size
    assert observation["image"].shape == (size, size, 3) and observation["image"].dtype == np.uint8
    assert observation["state"].dtype == np.float32
    assert env.observation_space.contains(observation)
    assert {"task", "instruction", "randomization"} <= set(info)
    json.dumps(info["randomization"])
    json.dumps(env.spec_dict())
    assert env.spec_dict()["config"]["image_size"] == size
    for step in range(EPISODE_LENGTH):
        observation, reward, terminated, truncated, step_info = env.step(env.action_space.sample())
        assert isinstance(step_info["success"], bool)
        assert reward == step_info["task_reward"] and isinstance(reward, float)
        assert terminated is False
        assert truncated == (step == EPISODE_LENGTH - 1)
        assert env.observation_space.contains(observation)


def test_same_seed_same_episode(env):
    first, first_info = env.reset(seed=11)
    first_next = env.step(np.full(4, 0.5, np.float32))[0]
    again, again_info = env.reset(seed=11)
    again_next = env.step(np.full(4, 0.5, np.float32))[0]
    assert first_info["task"] == again_info["task"]
    assert first_info["randomization"] == again_info["randomization"]
    np.testing.assert_array_equal(first["image"], again["image"])
    np.testing.assert_array_equal(first_next["image"], again_next["image"])
    np.testing.assert_array_equal(first_next["state"], again_next["state"])


def test_expert_action_is_a_valid_action_or_a_clear_error(env):
    env.reset(seed=3)
    try:
        action = env.expert_action(noise=0.3, rng=np.random.default_rng(0))
    except LampError:
        return
    assert action.shape == (4,) and np.all(np.abs(action) <= 1.0)


def test_rlbench_without_coppeliasim_fails_with_one_line_naming_the_extra():
    if importlib.util.find_spec("rlbench") is not None:
        pytest.skip("rlbench is installed here")
    with pytest.raises(MissingExtraError, match=r"lamp-toolkit\[rlbench\]") as error:
        make_env("rlbench-push_button", EnvConfig(randomization=RandomizationConfig.canonical()))
    assert "\n" not in str(error.value) and "CoppeliaSim" in str(error.value)


def test_rlbench_refuses_the_goal_marker_before_loading_the_simulator():
    with pytest.raises(LampError, match="goal marker is a Meta-World option"):
        make_env("rlbench-push_button", EnvConfig(goal_marker=True))


@pytest.mark.parametrize("name,size", [("dummy", 16), ("mw-button-press-topdown", 32)])
def test_action_repeat_steps_the_simulator_k_times_and_keeps_the_contract(name, size):
    config = EnvConfig(image_size=size, episode_length=5, randomization=RandomizationConfig.canonical())
    single, repeated = make_env(name, config), make_env(name, EnvConfig(**{**config.to_dict(), "randomization": config.randomization, "action_repeat": 2}))
    try:
        action = np.array([0.3, -0.2, 0.5, 1.0], np.float32)
        single.reset(seed=5)
        repeated.reset(seed=5)
        rewards = [single.step(action)[1] for _ in range(5)]
        observations = []
        for expected_steps, expected_truncated in ((2, False), (2, False), (1, True)):
            observation, reward, terminated, truncated, info = repeated.step(action)
            observations.append(observation)
            assert info["env_steps"] == expected_steps and truncated == expected_truncated and not terminated
            assert reward == pytest.approx(sum(rewards[:expected_steps])) and reward == info["task_reward"]
            rewards = rewards[expected_steps:]
        # the last frame is the one the single-step env shows after the same five steps
        np.testing.assert_array_equal(observations[-1]["image"], single.render() if name != "dummy" else observations[-1]["image"])
        assert repeated.spec_dict()["config"]["action_repeat"] == 2
        if name != "dummy":
            assert repeated.expert_action().shape == (4,)
    finally:
        single.close()
        repeated.close()
    with pytest.raises(LampError, match="action repeat"):
        EnvConfig(action_repeat=0)
