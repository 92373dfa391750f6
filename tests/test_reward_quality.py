"""Reward-quality measures on synthetic reward arrays, then through a real dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lamp_data.envs import EnvConfig
from lamp_eval import reward_quality
from lamp_eval.reward_quality import _measures, _ScoredEpisode

PROMPTS = 4


def _episode(rewards: np.ndarray, success: bool, own: int = 0) -> _ScoredEpisode:
    own_mask = np.zeros(PROMPTS, bool)
    own_mask[own] = True
    return _ScoredEpisode(np.asarray(rewards, np.float32), success, own_mask, ~own_mask)


def _informative_episodes(rng: np.random.Generator, count: int = 12) -> list[_ScoredEpisode]:
    """Own-prompt reward rises in successes, stays flat in failures; other prompts lower."""
    episodes = []
    for index in range(count):
        success = index % 2 == 0
        own = index % PROMPTS
        steps = 10
        rewards = rng.normal(0, 0.05, (steps, PROMPTS))
        if success:
            rewards[:, own] += np.linspace(0, 1, steps)
        episodes.append(_episode(rewards, success, own))
    return episodes


def test_an_informative_reward_scores_high_on_all_measures():
    row = _measures(_informative_episodes(np.random.default_rng(0)))
    assert row["episodes"] == 12 and row["successes"] == 6 and row["failures"] == 6
    assert row["progress_spearman"] > 0.9
    assert row["success_auroc"] == 1.0
    assert row["instruction_rank"] == 1.0
    assert row["instruction_top1"] == 1.0


def test_noise_scores_near_chance_and_a_reversed_reward_scores_low():
    rng = np.random.default_rng(1)
    noise = [_episode(rng.normal(0, 1, (20, PROMPTS)), index % 2 == 0, index % PROMPTS) for index in range(400)]
    row = _measures(noise)
    assert abs(row["progress_spearman"]) < 0.05
    assert abs(row["success_auroc"] - 0.5) < 0.1
    assert abs(row["instruction_rank"] - 0.5) < 0.05
    reversed_episodes = [
        _episode(-episode.rewards, episode.success, int(np.argmax(episode.own)))
        for episode in _informative_episodes(np.random.default_rng(2))
    ]
    row = _measures(reversed_episodes)
    assert row["progress_spearman"] < -0.9
    assert row["success_auroc"] == 0.0
    assert row["instruction_rank"] == 0.0


def test_ties_and_constant_rewards_count_as_no_information():
    constant = [_episode(np.ones((6, PROMPTS)), success, 1) for success in (True, False, True)]
    row = _measures(constant)
    assert row["progress_spearman"] == 0.0
    assert row["success_auroc"] == 0.5
    assert row["instruction_rank"] == 0.5
    assert row["instruction_top1"] == 0.0


def test_measures_that_need_both_classes_are_none_without_them():
    only_successes = [episode for episode in _informative_episodes(np.random.default_rng(3)) if episode.success]
    row = _measures(only_successes)
    assert row["success_auroc"] is None and row["failures"] == 0
    assert row["progress_spearman"] > 0.9
    only_failures = [episode for episode in _informative_episodes(np.random.default_rng(3)) if not episode.success]
    row = _measures(only_failures)
    assert row["progress_spearman"] is None and row["instruction_rank"] is None


def test_columns_name_every_row_key():
    row = _measures(_informative_episodes(np.random.default_rng(4)))
    assert set(row) <= set(reward_quality.COLUMNS)
    assert {"fingerprint", "model", "datasets", "policy_mix", "tasks"} == set(reward_quality.COLUMNS) - set(row)
    assert list(row) == list(reward_quality.TASK_COLUMNS[2:])


def test_per_task_rows_say_whether_the_frame_shows_the_goal():
    plain = _informative_episodes(np.random.default_rng(5))
    marked = [dataclasses.replace(episode, goal_marker=True) for episode in plain]
    assert reward_quality._goal("pick-place", plain) == "hidden" and reward_quality._goal("door-close", plain) == "shown"
    assert reward_quality._goal("pick-place", marked) == "marked" and reward_quality._goal("door-close", marked) == "shown"
    assert reward_quality._goal("pick-place", marked + plain) == "hidden"
    assert reward_quality._goal("reach-dummy", marked) is None


def _task_episodes(rng: np.random.Generator, task: str, successes: int, failures: int, level: float, informative: bool):
    """Episodes of one task whose own reward sits at ``level``; ``informative`` adds a rise in successes."""
    episodes = []
    for index in range(successes + failures):
        success = index < successes
        rewards = level + rng.normal(0, 0.01, (10, PROMPTS))
        if informative and success:
            rewards[:, 0] += np.linspace(0, 0.5, 10)
        own = np.zeros(PROMPTS, bool)
        own[0] = True
        episodes.append(_ScoredEpisode(rewards.astype(np.float32), success, own, ~own, task, 9 if success else None, "random"))
    return episodes


def test_a_reward_that_only_encodes_the_task_scores_chance_auroc():
    """Task A is mostly solved and its prompts score high; task B mostly failed and low. Pooled,
    the final reward would separate success from failure almost perfectly; within each task it
    carries no information, and the macro-average says so."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    episodes = _task_episodes(rng, "task-a", 18, 2, 1.0, False) + _task_episodes(rng, "task-b", 2, 18, 0.0, False)
    pooled = roc_auc_score([episode.success for episode in episodes], [episode.own_reward[-1] for episode in episodes])
    assert pooled > 0.85
    row = reward_quality._row("identity", {"synthetic"}, 1, episodes, reps=200, seed=0)
    assert row["tasks"] == 2
    assert abs(row["success_auroc"] - 0.5) < 0.3
    low, high = row["success_auroc_ci"]
    assert low < 0.5 < high
    assert [entry["task"] for entry in row["per_task"]] == ["task-a", "task-b"]
    informative = _task_episodes(rng, "task-a", 5, 5, 1.0, True) + _task_episodes(rng, "task-b", 5, 5, 0.0, True)
    good = reward_quality._row("informative", {"synthetic"}, 1, informative, reps=200, seed=0)
    assert good["success_auroc"] == 1.0 and good["success_auroc_ci"][0] > 0.9
    assert good["voc"] > 0.9 and good["progress_spearman"] > 0.9


def test_near_miss_auroc_only_counts_the_experts_failures():
    """Successes end high, noisy experts' misses end just as high (done and undone), random
    episodes end low: success AUROC is high, near-miss AUROC is chance. A reward that also
    ranks the misses low scores 1.0 on both; without expert failures the measure is undefined."""
    own = np.zeros(PROMPTS, bool)
    own[0] = True

    def episode(final: float, success: bool, policy: str) -> _ScoredEpisode:
        rewards = np.zeros((8, PROMPTS), np.float32)
        rewards[-1, 0] = final
        return _ScoredEpisode(rewards, success, own, ~own, "task-a", 7 if success else None, policy)

    successes = [episode(1.0, True, "noisy-expert (noise 0.2)") for _ in range(6)]
    misses = [episode(1.0, False, "noisy-expert (noise 0.2)") for _ in range(6)] + [episode(1.0, False, "expert")]
    randoms = [episode(0.0, False, "random") for _ in range(12)]
    row = _measures(successes + misses + randoms)
    assert row["success_auroc"] == (6 * 12 + 0.5 * 6 * 7) / (6 * 19) and row["near_miss_auroc"] == 0.5
    told_apart = [dataclasses.replace(miss, rewards=miss.rewards - np.float32(2.0)) for miss in misses]
    row = _measures(successes + told_apart + randoms)
    assert row["success_auroc"] == 1.0 and row["near_miss_auroc"] == 1.0
    row = _measures(successes + randoms)
    assert row["success_auroc"] == 1.0 and row["near_miss_auroc"] is None
    table_row = reward_quality._row("no-misses", {"synthetic"}, 1, successes + randoms, reps=50, seed=0)
    assert table_row["near_miss_auroc"] is None and table_row["near_miss_auroc_ci"] is None
    assert "near_miss_auroc needs failed expert or noisy-expert episodes" in reward_quality.undefined_measures_note(table_row)


def test_rank_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    labels = rng.random(50) < 0.4
    scores = np.round(rng.normal(size=50), 1)
    assert reward_quality._auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_value_order_stops_at_the_first_success():
    """A reward that rises until success and falls after it: progress Spearman (whole episode)
    sees the fall, value-order correlation (up to success) does not."""
    rewards = np.zeros((20, PROMPTS), np.float32)
    rewards[:, 0] = np.concatenate([np.linspace(0, 1, 10), np.linspace(0.95, 0, 10)])
    own = np.zeros(PROMPTS, bool)
    own[0] = True
    episode = _ScoredEpisode(rewards, True, own, ~own, "task", 9)
    row = _measures([episode])
    assert row["voc"] == pytest.approx(1.0)
    assert row["progress_spearman"] < 0.0
    early = _ScoredEpisode(rewards, True, own, ~own, "task", 1)
    assert _measures([early])["voc"] is None


def test_paraphrases_of_the_own_task_are_not_competitors():
    rewards = np.zeros((3, PROMPTS), np.float32)
    rewards[-1] = [1.0, 2.0, 0.0, 0.0]
    own = np.array([True, False, False, False])
    same_task = np.array([True, True, False, False])
    episode = _ScoredEpisode(rewards, True, own, ~same_task)
    assert _measures([episode])["instruction_rank"] == 1.0
    counted = _ScoredEpisode(rewards, True, own, ~own)
    assert _measures([counted])["instruction_rank"] == pytest.approx(2 / 3)


@pytest.fixture(scope="module")
def dummy_dataset(tmp_path_factory):
    """Dummy-env episodes: expert successes and random failures in one dataset."""
    from lamp_data.pipeline.collect import CollectConfig, collect

    path = tmp_path_factory.mktemp("heldout") / "data"
    common = dict(env="dummy", env_config=EnvConfig(image_size=16, episode_length=5), shard_episodes=4, seed=3)
    collect(path, CollectConfig(episodes=8, policy="expert", run="expert", **common), progress=False)
    collect(path, CollectConfig(episodes=16, policy="random", run="random", **common), progress=False)
    return path


DUMMY_PROMPTS = ["reach the red block", "push the red block", "paint the wall"]


def _write_reward_set(dataset_path, name: str, reward_of, model_spec: str | None = None, prompts=DUMMY_PROMPTS) -> str:
    """A reward set whose rewards come from ``reward_of(episode) -> [T+1, P]``."""
    from lamp_data.store import iter_episodes
    from lamp_data.store.writer import RewardSetWriter

    writer = RewardSetWriter(dataset_path, name, {"model_spec": model_spec or f"synthetic:{name}"}, list(prompts))
    by_shard: dict[str, dict[str, np.ndarray]] = {}
    for episode in iter_episodes(dataset_path):
        by_shard.setdefault(episode["__shard__"], {})[episode["__key__"]] = reward_of(episode)
    for shard, rewards in by_shard.items():
        writer.write_shard(shard, rewards)
    return name


def _distance_reward(episode) -> np.ndarray:
    """Own instruction: minus the distance to the goal; other prompts: a constant."""
    state = episode["state"]
    distance = np.linalg.norm(state[:, :2] - state[:, 2:], axis=1)
    rewards = np.full((len(state), len(DUMMY_PROMPTS)), -0.5, np.float32)
    rewards[:, DUMMY_PROMPTS.index(episode["meta"]["instruction"])] = -distance
    return rewards


def test_table_over_real_reward_sets_ranks_the_informative_one_first(dummy_dataset):
    informative = _write_reward_set(dummy_dataset, "distance", _distance_reward)
    rng = np.random.default_rng(0)
    noise = _write_reward_set(
        dummy_dataset, "noise", lambda episode: rng.normal(0, 1, (len(episode["image"]), len(DUMMY_PROMPTS)))
    )
    rows = reward_quality.reward_quality_table([dummy_dataset / "rewards" / informative, dummy_dataset / "rewards" / noise])
    assert [row["fingerprint"] for row in rows] == ["distance", "noise"]
    good, bad = rows
    assert list(good)[: len(reward_quality.COLUMNS)] == list(reward_quality.COLUMNS)
    assert good["policy_mix"] == "expert 8, random 8"
    assert {entry["task"] for entry in good["per_task"]} == {"reach-dummy", "push-dummy"} and good["tasks"] == 2
    assert sum(entry["episodes"] for entry in good["per_task"]) == good["episodes"]
    assert [entry["goal"] for entry in good["per_task"]] == [None, None]
    for measure in ("progress_spearman", "voc", "success_auroc", "instruction_rank"):
        low, high = good[f"{measure}_ci"]
        assert low <= good[measure] <= high
    assert good["model"] == "synthetic:distance"
    assert good["episodes"] == 16 and good["successes"] >= 6 and good["failures"] >= 4
    assert good["success_auroc"] > 0.9
    assert good["progress_spearman"] > 0.8
    assert good["instruction_rank"] > 0.9
    for measure in ("progress_spearman", "success_auroc", "instruction_rank"):
        assert good[measure] > bad[measure]


def test_table_keeps_only_the_asked_tasks(dummy_dataset):
    from lamp_data.store import iter_episodes

    name = _write_reward_set(dummy_dataset, "distance-tasks", _distance_reward)
    reach = sum(episode["meta"]["task"] == "reach-dummy" for episode in iter_episodes(dummy_dataset))
    rows = reward_quality.reward_quality_table([dummy_dataset / "rewards" / name], tasks=["reach-dummy"])
    assert rows[0]["episodes"] == reach > 0


def test_bad_reward_folders_are_one_line_errors(dummy_dataset, tmp_path):
    from lamp_data.errors import LampError

    with pytest.raises(LampError, match="does not exist"):
        reward_quality.reward_quality_table([tmp_path / "nowhere"])
    with pytest.raises(LampError, match="not a reward set folder"):
        reward_quality.reward_quality_table([dummy_dataset])
    with pytest.raises(LampError, match="no reward set"):
        (dummy_dataset / "rewards" / "missing").mkdir(parents=True, exist_ok=True)
        reward_quality.reward_quality_table([dummy_dataset / "rewards" / "missing"])
    name = _write_reward_set(dummy_dataset, "distance-none", _distance_reward)
    with pytest.raises(LampError, match="no episodes of tasks"):
        reward_quality.reward_quality_table([dummy_dataset / "rewards" / name], tasks=["pick-place"])
    with pytest.raises(LampError, match="at least one"):
        reward_quality.reward_quality_table([])


def test_one_fingerprint_in_several_datasets_is_pooled_into_one_row(dummy_dataset, tmp_path):
    from lamp_data.pipeline.collect import CollectConfig, collect

    second = tmp_path / "second"
    collect(second, CollectConfig(env="dummy", episodes=4, policy="expert", seed=9, env_config=EnvConfig(image_size=16, episode_length=5)), progress=False)
    _write_reward_set(dummy_dataset, "pooled", _distance_reward)
    _write_reward_set(second, "pooled", _distance_reward)
    alone = reward_quality.reward_quality_table([dummy_dataset / "rewards" / "pooled"])[0]
    rows = reward_quality.reward_quality_table([dummy_dataset / "rewards" / "pooled", second / "rewards" / "pooled"])
    assert len(rows) == 1 and rows[0]["datasets"] == 2
    assert rows[0]["episodes"] == alone["episodes"] + 4
    assert rows[0]["successes"] > alone["successes"]


def test_cli_prints_model_labels_intact_and_fits_the_terminal(dummy_dataset):
    from click.testing import CliRunner

    from lamp_cli.eval import main

    _write_reward_set(dummy_dataset, "bracketed", _distance_reward, model_spec="lamp[r3m-abc]")
    result = CliRunner().invoke(main, ["reward-quality", str(dummy_dataset / "rewards" / "bracketed")], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "lamp[r3m-abc]" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    wide = CliRunner().invoke(main, ["reward-quality", str(dummy_dataset / "rewards" / "bracketed")], env={"COLUMNS": "200"})
    assert "lamp[r3m-abc]" in wide.output and "progress_spearman" in wide.output


def test_undefined_measures_are_explained():
    row = {"successes": 0, "failures": 5, "instruction_rank": None}
    assert reward_quality.undefined_measures_note(row).startswith("no episode succeeded")
    row = {"successes": 3, "failures": 0, "instruction_rank": 0.9}
    assert "success_auroc needs failed episodes" in reward_quality.undefined_measures_note(row)
    assert reward_quality.undefined_measures_note({"successes": 3, "failures": 2, "instruction_rank": 0.9}) == ""


def test_pretraining_task_data_is_refused_with_its_reason(tmp_path):
    from click.testing import CliRunner

    from lamp_cli.eval import main
    from lamp_data.pipeline.collect import CollectConfig, collect
    from lamp_data.store import iter_episodes

    data = tmp_path / "pretrain"
    collect(data, CollectConfig(env="mw-pretrain", episodes=2, seed=1, env_config=EnvConfig(image_size=16, episode_length=5)), progress=False)
    episodes = list(iter_episodes(data))
    prompts = sorted({episode["meta"]["instruction"] for episode in episodes}) + ["paint the wall"]
    name = _write_reward_set(
        data, "pretrain-rewards", lambda episode: np.zeros((len(episode["image"]), len(prompts)), np.float32), prompts=prompts
    )
    folder = str(data / "rewards" / name)
    result = CliRunner().invoke(main, ["reward-quality", folder])
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: reward set pretrain-rewards scores only pretraining-task episodes")
    assert "no held-out task episodes" in line
    task = episodes[0]["meta"]["task"]
    named = CliRunner().invoke(main, ["reward-quality", folder, "--task", task])
    assert named.exit_code == 0, named.output
    assert "no episode succeeded" in named.output
