"""The one episode loop: every registered policy plays the dummy env into the stored episode dict."""

import numpy as np
import pytest

from lamp_data import schema
from lamp_data.envs import EnvConfig, make_env
from lamp_data.errors import LampError
from lamp_data.pipeline.rollout import POLICIES, EpisodeBuilder, run_episode


@pytest.mark.parametrize("name", POLICIES.names())
def test_every_registered_policy_plays_an_episode_into_the_stored_dict(name):
    env = make_env("dummy", EnvConfig(image_size=16, episode_length=5, action_repeat=2, cameras=("front", "wrist")))
    try:
        policy = POLICIES.create(name, env, np.random.default_rng(0), 0.3)
        played = run_episode(env, policy, seed=11)
        episode = played.episode()
    finally:
        env.close()
    steps = len(played)
    assert steps == 3 and played.env_steps == 5 and played.seed == 11  # 5 env steps at action repeat 2
    assert played.reset_info["task"] in ("reach-dummy", "push-dummy")
    assert episode[schema.IMAGE].shape == episode[schema.IMAGE_WRIST].shape == (steps + 1, 16, 16, 3)
    assert episode[schema.STATE].shape == (steps + 1, 4) and episode[schema.ACTION].shape == (steps, 4)
    assert episode[schema.REWARD].shape == (steps,) and episode[schema.SUCCESS].shape == (steps + 1,)
    assert episode[schema.IS_FIRST].tolist() == [True, False, False, False]
    assert episode[schema.IS_LAST].tolist() == [False, False, False, True]
    assert not episode[schema.IS_TERMINAL].any()
    assert played.total_reward == pytest.approx(float(episode[schema.REWARD].astype(np.float64).sum()), rel=1e-6)


def test_the_builder_records_step_by_step_and_max_steps_cuts_an_episode():
    env = make_env("dummy", EnvConfig(image_size=16, episode_length=5))
    try:
        observation, info = env.reset(seed=3)
        builder = EpisodeBuilder(observation, info, 3)
        observation, reward, terminated, _, step_info = env.step(np.ones(4, np.float32))
        builder.add(np.ones(4), observation, reward, terminated, step_info)
        assert len(builder) == 1 and builder.episode()[schema.ACTION].dtype == np.float32
        cut = run_episode(env, POLICIES.create("random", env, np.random.default_rng(1)), seed=3, max_steps=2)
    finally:
        env.close()
    assert len(cut) == 2 and cut.episode()[schema.IS_LAST][-1]


def test_unknown_policies_and_envs_without_an_expert_are_one_line_errors():
    with pytest.raises(LampError, match="unknown policy 'psychic' \\(known: expert, noisy-expert, random\\)"):
        POLICIES.get("psychic")

    class NoExpert:
        unwrapped = None

    with pytest.raises(LampError, match="no scripted expert"):
        POLICIES.create("expert", NoExpert(), np.random.default_rng(0))
