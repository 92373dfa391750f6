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
A reward set whose episodes are all of pretraining tasks is refused unless those tasks are
asked for by name (``tasks``), since the measures are meant for held-out tasks.

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
from lamp_data.provenance import provenance

COLUMNS = (
    "fingerprint",
    "model",
    "datasets",
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
    task: str | None = None
    """The episode's task (None where the episode does not record one)."""

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


def _task_prompt_masks(prompts: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
    """For every registered task: the bool mask of prompts that are its instruction or a
    paraphrase of it, and its backend."""
    from lamp_data.envs.tasks import list_tasks
    from lamp_data.prompts import normalize_prompt

    normalized = [normalize_prompt(prompt) for prompt in prompts]
    masks = {}
    for task in list_tasks():
        phrases = {normalize_prompt(text) for text in (task.instruction, *task.paraphrases)}
        masks[task.name] = (np.array([prompt in phrases for prompt in normalized], bool), task.backend)
    return masks


def _own_and_competitors(
    task: str | None,
    instruction: str,
    prompts: Sequence[str],
    task_masks: dict[str, tuple[np.ndarray, str]],
) -> tuple[np.ndarray, np.ndarray]:
    """The episode's own prompts and the prompts of other tasks of the same backend.

    ``task_masks`` holds the registered tasks plus, for tasks the registry does not know, the
    prompt equal to their instruction (backend ``""``).
    """
    own = np.zeros(len(prompts), bool)
    backend = ""
    if task in task_masks:
        own, backend = task_masks[task]
    from lamp_data.prompts import normalize_prompt

    own = own | np.array([normalize_prompt(prompt) == normalize_prompt(instruction) for prompt in prompts], bool)
    competitors = np.zeros(len(prompts), bool)
    for name, (mask, task_backend) in task_masks.items():
        if name != task and task_backend in (backend, ""):
            competitors |= mask
    return own, competitors & ~own


def _scored_episodes(
    reward_dir: Path, tasks: Iterable[str] | None, require_episodes: bool = True
) -> tuple[dict[str, Any], list[_ScoredEpisode]]:
    """The reward set's info and its episodes (only ``tasks`` if given) with their prompt masks.

    With ``require_episodes`` a set without (matching) episodes is a LampError.
    """
    from lamp_data import schema
    from lamp_data.prompts import normalize_prompt
    from lamp_data.store import iter_episodes, open_dataset

    if not reward_dir.is_dir():
        raise LampError(f"reward set folder {reward_dir} does not exist (expected DATASET/rewards/FINGERPRINT)")
    if reward_dir.parent.name != "rewards":
        raise LampError(f"{reward_dir} is not a reward set folder (expected DATASET/rewards/FINGERPRINT)")
    dataset = open_dataset(reward_dir.parent.parent)
    fingerprint = reward_dir.name
    info = dataset.reward_set_info(fingerprint)
    prompts = dataset.reward_set_prompts(fingerprint)
    wanted = set(tasks) if tasks is not None else None
    read = []
    for episode in iter_episodes(dataset, reward_set=fingerprint):
        meta = episode["meta"]
        if wanted is not None and meta.get("task") not in wanted:
            continue
        rewards = np.asarray(episode[schema.VLM_REWARD], np.float32)
        success = bool(np.asarray(episode[schema.SUCCESS])[-1])
        read.append((meta.get("task"), str(meta.get("instruction") or ""), rewards, success))
    if not read and not require_episodes:
        return info, []
    if not read:
        which = f" of tasks {', '.join(sorted(wanted))}" if wanted is not None else ""
        raise LampError(f"reward set {fingerprint} in {dataset.path} has no episodes{which}")
    task_masks = _task_prompt_masks(prompts)
    normalized = [normalize_prompt(prompt) for prompt in prompts]
    for task, instruction, _, _ in read:
        if task not in task_masks:
            task_masks[task] = (np.array([prompt == normalize_prompt(instruction) for prompt in normalized], bool), "")
    episodes = []
    for task, instruction, rewards, success in read:
        own, competitors = _own_and_competitors(task, instruction, prompts, task_masks)
        if not own.any():
            raise LampError(
                f"reward set {fingerprint}: no prompt matches the instruction '{instruction}' of task "
                f"'{task}' (relabel with a prompt set that holds the task instructions)"
            )
        episodes.append(_ScoredEpisode(rewards, success, own, competitors, task))
    return info, episodes


def _check_heldout(fingerprint: str, episodes: Sequence[_ScoredEpisode]) -> None:
    """LampError when every episode is of a registered pretraining task: the measures are meant
    for held-out tasks (episodes of tasks the registry does not know count as held out)."""
    from lamp_data.envs.tasks import PRETRAIN, TASKS

    tasks = {episode.task for episode in episodes}
    if tasks and all(task in TASKS and TASKS[task].split == PRETRAIN for task in tasks):
        named = sorted(tasks)
        listed = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        raise LampError(
            f"reward set {fingerprint} scores only pretraining-task episodes ({listed}), no held-out task episodes; "
            "score a held-out dataset (e.g. lamp-data collect --env mw-pick-place --policy noisy-expert, then "
            "lamp-data relabel) or pick its tasks with --task"
        )


def _model_label(info: dict[str, Any]) -> str:
    """The spec string a reward set was made with, else its family and weights hash."""
    spec = info.get("model_spec") or (info.get("provenance") or {}).get("model_spec")
    if spec:
        return str(spec)
    model = info.get("model") or {}
    return f"{model.get('family', 'unknown')} (weights {model.get('weights', '?')})"


def reward_quality_table(reward_dirs: list[str | Path], *, tasks: list[str] | None = None) -> list[dict]:
    """One row of reward-quality measures per reward set (see the module docstring).

    Folders of the same fingerprint in different datasets (one dataset per held-out task, say)
    are pooled into one row: a fingerprint names one reward model with one prompt set.

    Args:
        reward_dirs: Reward set folders, ``DATASET/rewards/<fingerprint>``. Rows are comparable
            when their reward sets score the same episodes.
        tasks: Only episodes of these tasks (default: every episode of each dataset).

    Returns:
        Dicts with the keys of :data:`COLUMNS`, in order of first appearance: ``fingerprint``,
        ``model`` (the spec string the rewards were made with), ``datasets`` (folders pooled),
        ``episodes``, ``successes``, ``failures``,
        ``progress_spearman``, ``success_auroc``, ``instruction_rank`` and ``instruction_top1``;
        a measure is ``None`` where the episodes cannot define it (no failures for AUROC, say).

    Raises:
        LampError: a folder is not a reward set, holds no (matching) episodes, or its prompts do
            not include an episode's instruction; without ``tasks``, also when every episode is
            of a pretraining task (the measures are for held-out tasks).
    """
    if not reward_dirs:
        raise LampError("give at least one reward set folder (DATASET/rewards/FINGERPRINT)")
    groups: dict[str, list[Path]] = {}
    for reward_dir in reward_dirs:
        groups.setdefault(Path(reward_dir).name, []).append(Path(reward_dir))
    rows = []
    for fingerprint, folders in groups.items():
        models, episodes = set(), []
        for folder in folders:
            info, scored = _scored_episodes(folder, tasks, require_episodes=len(folders) == 1)
            models.add(_model_label(info))
            episodes.extend(scored)
        if not episodes:
            raise LampError(f"reward set {fingerprint} has no episodes of tasks {', '.join(sorted(tasks or []))} in any of its datasets")
        if tasks is None:
            _check_heldout(fingerprint, episodes)
        rows.append({"fingerprint": fingerprint, "model": " | ".join(sorted(models)), "datasets": len(folders), **_measures(episodes)})
    return rows


def undefined_measures_note(row: dict) -> str:
    """Why a row's measures are undefined (``None``), in one sentence, or ``""`` if all are defined."""
    if row["successes"] == 0:
        return "no episode succeeded, so no measure is defined; add expert or noisy-expert episodes"
    reasons = []
    if row["failures"] == 0:
        reasons.append("success_auroc needs failed episodes too (add random episodes)")
    if row["instruction_rank"] is None:
        reasons.append("instruction_rank needs prompts of other tasks to rank against")
    return "; ".join(reasons)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def reward_quality_markdown(rows: list[dict]) -> str:
    """The table as Markdown, columns in :data:`COLUMNS` order."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_reward_quality(rows: list[dict], path: str | Path) -> Path:
    """Write the table to ``path`` as CSV, Markdown or JSON, chosen by its suffix.

    Raises:
        LampError: the suffix is not ``.csv``, ``.md`` or ``.json``.
    """
    import csv

    from lamp_data.atomic import atomic_open, atomic_write_json

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        atomic_write_json(path, {"rows": rows, "columns": list(COLUMNS), "provenance": provenance()})
    elif suffix == ".csv":
        with atomic_open(path) as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".md":
        with atomic_open(path) as handle:
            handle.write(reward_quality_markdown(rows))
    else:
        raise LampError(f"--out must end in .csv, .md or .json, got '{path.name}'")
    return path
