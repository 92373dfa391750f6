"""Offline reward-quality leaderboard: how good is a reward set, in minutes instead of GPU-days.

A reward set is ``DATASET/rewards/<fingerprint>/``: one reward model's scores of every frame
of a dataset against every prompt. On a dataset of held-out-task episodes (expert successes
and failed random or noisy episodes) three measures say how useful the rewards would be:

* ``progress_spearman`` — in successful episodes, Spearman's rank correlation
  (:func:`scipy.stats.spearmanr`) between the reward of the episode's own instruction and time,
  averaged over episodes. A good reward rises as the task gets done. An episode whose reward is
  constant counts as 0 (no correlation).
* ``success_auroc`` — area under the ROC curve (:func:`sklearn.metrics.roc_auc_score`) of the
  final frame's own-instruction reward as a score separating successful from failed episodes.
  An episode is successful when its final frame is (the reward is read at that frame too).
* ``instruction_rank`` — at the final frame of successful episodes, the mean rank percentile of
  the episode's own instruction among the prompts of other tasks: the fraction of those prompts
  it outscores (ties count half). 1.0 means the own instruction always wins, 0.5 is chance.
  ``instruction_top1`` (how often it beats all of them) is reported beside it.

All three are 0.5 (AUROC, rank) or 0 (Spearman) for a reward that carries no information.

Which prompts are an episode's "own": the prompts equal to its instruction (ignoring case and
surrounding white space), or, when the prompt set labels prompts with tasks, every prompt of
its task; prompts of the same task never count as competitors in the rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data.errors import LampError

COLUMNS = (
    "fingerprint",
    "model",
    "episodes",
    "successes",
    "failures",
    "progress_spearman",
    "success_auroc",
    "instruction_rank",
    "instruction_top1",
)
"""Keys of every row of :func:`reward_quality_table`, in display order."""


@dataclass(frozen=True)
class _ScoredEpisode:
    """One episode's rewards and what is needed to judge them."""

    rewards: np.ndarray
    """float32 [T+1, P] reward of every frame against every prompt."""
    success: bool
    """Whether the episode ends in success."""
    own: np.ndarray
    """bool [P] prompts that describe this episode's task."""
    competitors: np.ndarray
    """bool [P] prompts of other tasks, the ones the own instruction is ranked against."""

    @property
    def own_reward(self) -> np.ndarray:
        """float [T+1] mean reward of the own prompts at every frame."""
        return self.rewards[:, self.own].mean(axis=1)


def _progress_spearman(own_reward: np.ndarray) -> float:
    """Spearman's rho between a reward curve and time; 0 for a constant curve."""
    from scipy.stats import spearmanr

    if len(own_reward) < 2 or np.all(own_reward == own_reward[0]):
        return 0.0
    rho = spearmanr(np.arange(len(own_reward)), own_reward).statistic
    return 0.0 if math.isnan(rho) else float(rho)


def _rank_percentile(final_rewards: np.ndarray, own: np.ndarray, competitors: np.ndarray) -> tuple[float, bool]:
    """Fraction of competitor prompts the own prompts' mean reward beats (ties half), and
    whether it beats every one of them."""
    own_score = final_rewards[own].mean()
    others = final_rewards[competitors]
    wins = (own_score > others).sum() + 0.5 * (own_score == others).sum()
    return float(wins / len(others)), bool(np.all(own_score > others))


def _measures(episodes: Sequence[_ScoredEpisode]) -> dict[str, Any]:
    """The three measures over one reward set's episodes (``None`` where undefined)."""
    from sklearn.metrics import roc_auc_score

    successes = [episode for episode in episodes if episode.success]
    failures = len(episodes) - len(successes)
    progress = [_progress_spearman(episode.own_reward) for episode in successes]
    auroc = None
    if successes and failures:
        labels = [episode.success for episode in episodes]
        finals = [float(episode.own_reward[-1]) for episode in episodes]
        auroc = float(roc_auc_score(labels, finals))
    ranks, top1 = [], []
    for episode in successes:
        if episode.competitors.any():
            rank, best = _rank_percentile(episode.rewards[-1], episode.own, episode.competitors)
            ranks.append(rank)
            top1.append(best)
    return {
        "episodes": len(episodes),
        "successes": len(successes),
        "failures": failures,
        "progress_spearman": float(np.mean(progress)) if progress else None,
        "success_auroc": auroc,
        "instruction_rank": float(np.mean(ranks)) if ranks else None,
        "instruction_top1": float(np.mean(top1)) if top1 else None,
    }
