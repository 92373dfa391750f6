"""The embedded Meta-World simulator: determinism, randomization, experts, memory bounds."""

import numpy as np
import pytest

from lamp_data.envs import EnvConfig, RandomizationConfig, make_env
from lamp_data.envs.metaworld_suite import MetaWorldEnv
from lamp_data.envs.randomization import DISTRACTOR_POOL
from lamp_data.envs.tasks import FINETUNE_TASKS, HELDOUT, PRETRAIN, get_task, list_tasks
from lamp_data.errors import LampError

CANONICAL = RandomizationConfig.canonical()
ALL_ON = RandomizationConfig(max_distractors=DISTRACTOR_POOL)


def _rollout(env, seed, actions):
    observation, info = env.reset(seed=seed)
    frames, states, rewards = [observation["image"]], [observation["state"]], []
    qpos = []
    for action in actions:
        observation, reward, _, _, _ = env.step(action)
        frames.append(observation["image"])
        states.append(observation["state"])
        rewards.append(reward)
        qpos.append(env._simulator.env.data.qpos.copy())
    return info, np.stack(frames), np.stack(states), np.array(rewards), np.stack(qpos)


def test_same_seed_gives_identical_frames_in_a_fresh_env():
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 4))
    runs = []
    for _ in range(2):
        env = make_env("mw-pretrain", image_size=32, episode_length=3)
        runs.append(_rollout(env, 5, actions))
        env.close()
    (info_a, frames_a, states_a, _, _), (info_b, frames_b, states_b, _, _) = runs
    assert info_a["task"] == info_b["task"] and get_task(info_a["task"]).split == PRETRAIN
    assert info_a["randomization"] == info_b["randomization"]
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(states_a, states_b)


def test_randomization_changes_pixels_but_not_physics():
    actions = np.random.default_rng(1).uniform(-1, 1, (12, 4))
    results = {}
    for label, randomization in (("canonical", CANONICAL), ("randomized", ALL_ON)):
        env = make_env("mw-pick-place", image_size=32, episode_length=12, randomization=randomization)
        results[label] = _rollout(env, 3, actions)
        # a second randomized seed must look different again
        if label == "randomized":
            results["other"] = _rollout(env, 4, actions[:1])
        env.close()
    canonical, randomized = results["canonical"], results["randomized"]
    assert canonical[0]["randomization"] == {}
    assert randomized[0]["randomization"].get("distractors") is not None
    np.testing.assert_array_equal(canonical[4], randomized[4])
    np.testing.assert_array_equal(canonical[2], randomized[2])
    np.testing.assert_array_equal(canonical[3], randomized[3])
    assert np.abs(canonical[1].astype(int) - randomized[1].astype(int)).mean() > 10
    assert results["other"][0]["randomization"] != randomized[0]["randomization"]
    assert not np.array_equal(results["other"][1][0], randomized[1][0])


def test_goal_and_layout_change_with_the_seed_on_a_single_task_env():
    env = make_env("mw-pick-place", image_size=16, episode_length=2, randomization=CANONICAL)
    goals = set()
    for seed in range(3):
        env.reset(seed=seed)
        goals.add(tuple(np.round(env._simulator.env._target_pos, 5)))
    env.close()
    assert len(goals) == 3


def test_goal_marker_draws_hidden_goals_only_and_leaves_physics_alone():
    actions = np.random.default_rng(2).uniform(-1, 1, (6, 4))
    runs = {}
    for task in ("reach", "door-close"):
        for marker in (False, True):
            env = make_env(f"mw-{task}", image_size=64, episode_length=6, goal_marker=marker)
            runs[task, marker] = _rollout(env, 7, actions)
            if marker and task == "reach":
                simulator = env._simulator
                marker_id = simulator.marker_id
                np.testing.assert_allclose(simulator.env.data.geom_xpos[marker_id], simulator.env._target_pos)
                assert simulator.env.model.geom_rgba[marker_id, 3] > 0
            env.close()
    for task in ("reach", "door-close"):
        plain, marked = runs[task, False], runs[task, True]
        np.testing.assert_array_equal(plain[2], marked[2])  # states
        np.testing.assert_array_equal(plain[4], marked[4])  # qpos
    changed = (runs["reach", False][1] != runs["reach", True][1]).any(-1)
    assert changed.all(axis=0).sum() >= 4, "the marker is in sight in every frame of reach"
    np.testing.assert_array_equal(runs["door-close", False][1], runs["door-close", True][1])


def test_the_goal_marker_leaves_the_clip_planes_of_every_frame_alone():
    """MuJoCo scales a frame's near and far planes by the model's extent: a marker that grew it
    would change the pixels of every task, marked or not."""
    import mujoco
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    from lamp_data.envs.randomization import GOAL_MARKER_NAME, augment_spec

    path = ALL_V3_ENVIRONMENTS["shelf-place-v3"](width=32, height=32).fullpath
    compiled = []
    for keep in (True, False):
        spec = mujoco.MjSpec.from_file(path)
        augment_spec(spec, 32)
        if not keep:
            spec.geom(GOAL_MARKER_NAME).delete()
        compiled.append(spec.compile())
    with_marker, without = compiled
    assert with_marker.ngeom == without.ngeom + 1
    assert with_marker.stat.extent == without.stat.extent
    np.testing.assert_array_equal(with_marker.stat.center, without.stat.center)


def test_goal_marker_is_recorded_only_when_on():
    assert "goal_marker" not in EnvConfig().to_dict()
    on = EnvConfig(goal_marker=True)
    assert on.to_dict()["goal_marker"] is True and EnvConfig.from_dict(on.to_dict()) == on
    assert EnvConfig.from_dict(EnvConfig().to_dict()).goal_marker is False


@pytest.mark.parametrize("task", FINETUNE_TASKS)
def test_held_out_task_is_solved_by_its_expert_canonical_and_randomized(task):
    for randomization in (CANONICAL, RandomizationConfig()):
        env = make_env(f"mw-{task}", image_size=16, episode_length=300, randomization=randomization)
        observation, info = env.reset(seed=0)
        assert info["task"] == task and info["instruction"] == get_task(task).instruction
        solved = False
        for _ in range(300):
            _, _, _, truncated, step_info = env.step(env.expert_action())
            if step_info["success"]:
                solved = True
                break
        env.close()
        assert solved, f"{task} expert failed with randomization={randomization.enabled}"


def test_expert_noise_is_seeded_and_clipped():
    env = make_env("mw-reach", image_size=16, episode_length=2)
    env.reset(seed=0)
    clean = env.expert_action()
    noisy = env.expert_action(noise=2.0, rng=np.random.default_rng(1))
    again = env.expert_action(noise=2.0, rng=np.random.default_rng(1))
    env.close()
    np.testing.assert_array_equal(noisy, again)
    assert not np.array_equal(clean, noisy)
    assert np.all(np.abs(noisy) <= 1.0) and noisy.dtype == np.float32


def test_pretrain_env_spans_only_pretraining_tasks_and_bounds_live_simulators():
    env = make_env("mw-pretrain", image_size=16, episode_length=1)
    assert set(env.tasks) == {task.name for task in list_tasks(PRETRAIN, "metaworld")}
    assert not set(env.tasks) & {task.name for task in list_tasks(HELDOUT)}
    env.close()
    small = MetaWorldEnv(["reach", "push", "drawer-close"], EnvConfig(image_size=16, episode_length=1), max_cached_tasks=2)
    seen = set()
    for seed in range(6):
        seen.add(small.reset(seed=seed)[1]["task"])
        assert len(small._simulators) <= 2
    small.close()
    assert len(seen) >= 2 and not small._simulators


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(LampError, match="unknown env 'mw-pick-plase'"):
        make_env("mw-pick-plase")
    with pytest.raises(LampError, match="image size"):
        make_env("mw-pick-place", image_size=4)
    with pytest.raises(LampError, match="max_distractors"):
        make_env("mw-pick-place", randomization=RandomizationConfig(max_distractors=DISTRACTOR_POOL + 1))
    with pytest.raises(LampError, match="not a Meta-World task"):
        MetaWorldEnv(["pick_up_cup"])
    with pytest.raises(LampError, match="reset"):
        make_env("mw-reach", image_size=16).step(np.zeros(4))


def test_image_size_is_configurable():
    env = make_env("mw-door-close", image_size=48, episode_length=1)
    observation, _ = env.reset(seed=0)
    env.close()
    assert observation["image"].shape == (48, 48, 3)
    assert observation["image"].std() > 5


def test_wrist_camera_is_another_view_that_moves_with_the_gripper():
    config = EnvConfig(image_size=32, episode_length=40, randomization=CANONICAL, cameras=("front", "wrist"))
    env = make_env("mw-button-press-topdown", config)
    try:
        assert set(env.observation_space.spaces) == {"image", "image_wrist", "state"}
        first, _ = env.reset(seed=0)
        assert first["image_wrist"].shape == first["image"].shape == (32, 32, 3)
        assert np.abs(first["image_wrist"].astype(int) - first["image"]).mean() > 20  # not the front view again
        data, model = env._simulator.env.data, env._simulator.env.model
        camera = model.camera("gripperPOV").id
        hand, eye = data.body("hand").xpos.copy(), data.cam_xpos[camera].copy()
        for _ in range(10):
            observation, *_ = env.step(np.array([0.0, 0.0, -1.0, 0.0]))  # lower the gripper
        moved = data.body("hand").xpos - hand
        assert moved[2] < -0.03
        np.testing.assert_allclose(data.cam_xpos[camera] - eye, moved, atol=1e-3)  # the camera rides on the hand
        wrist_change = np.abs(observation["image_wrist"].astype(int) - first["image_wrist"]).mean()
        front_change = np.abs(observation["image"].astype(int) - first["image"]).mean()
        assert wrist_change > 2 * front_change  # the wrist view sweeps, the front view sees the arm move
    finally:
        env.close()
    plain = make_env("mw-button-press-topdown", image_size=16, episode_length=1)
    try:
        assert set(plain.reset(seed=0)[0]) == {"image", "state"}
    finally:
        plain.close()
    with pytest.raises(LampError, match="unknown camera 'top'"):
        EnvConfig(cameras=("front", "top"))
