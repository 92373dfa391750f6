"""Reward-quality measures on synthetic reward arrays, then through a real dataset."""

from __future__ import annotations

import numpy as np
import pytest

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
    assert {"fingerprint", "model"} == set(reward_quality.COLUMNS) - set(row)


def test_paraphrases_of_the_own_task_are_not_competitors():
    rewards = np.zeros((3, PROMPTS), np.float32)
    rewards[-1] = [1.0, 2.0, 0.0, 0.0]
    own = np.array([True, False, False, False])
    same_task = np.array([True, True, False, False])
    episode = _ScoredEpisode(rewards, True, own, ~same_task)
    assert _measures([episode])["instruction_rank"] == 1.0
    counted = _ScoredEpisode(rewards, True, own, ~own)
    assert _measures([counted])["instruction_rank"] == pytest.approx(2 / 3)
