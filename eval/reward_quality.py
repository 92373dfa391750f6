"""Offline reward-quality leaderboard: how good is a reward set, in minutes instead of GPU-days.

A reward set is ``DATASET/rewards/<fingerprint>/``: one reward model's scores of every frame
of a dataset against every prompt. On a dataset of held-out-task episodes (expert and
noisy-expert successes, near-misses and random failures) five measures say how useful the rewards
would be, each computed **per task** and reported per task and as a macro-average over tasks:

* ``progress_spearman`` — in successful episodes, Spearman's rank correlation
  (:func:`scipy.stats.spearmanr`) between the reward of the episode's own instruction and time,
  averaged over episodes. A good reward rises as the task gets done. An episode whose reward is
  constant counts as 0 (no correlation).
* ``voc`` — value-order correlation, the measure of value and progress models: the same rank
  correlation between frame order and reward, but only up to the frame where the episode first
  succeeds (what comes after success has no order to track). Episodes that succeed within their
  first two frames are left out.
* ``success_auroc`` — area under the ROC curve of the final frame's own-instruction reward as a
  score separating the task's successful episodes from its failed ones (here an episode is
  successful when its last frame is: a task done and then undone again, which noisy experts
  often do, is a failure, since its last frame shows it unfinished). Computed within a task,
  so a reward whose level only says which task is shown (prompts of different tasks have
  different offsets) scores chance, however success and task are mixed in the data.
* ``near_miss_auroc`` — the same AUROC with only the failures of the scripted expert (noisy or
  not) as negatives: attempts that stopped short or were done and undone. Random episodes are
  the easy failures (an arm that wanders against a finished task), so ``success_auroc`` can be
  high while the reward cannot tell a success from a near miss; this measure says whether it can.
* ``instruction_rank`` — at the final frame of successful episodes, the mean rank percentile of
  the episode's own instruction among the prompts of other tasks: the fraction of those prompts
  it outscores (ties count half). 1.0 means the own instruction always wins, 0.5 is chance.
  ``instruction_top1`` (how often it beats all of them) is reported beside it.

All are 0.5 (AUROC, rank) or 0 (Spearman, VOC) for a reward that carries no information. The
macro-average weighs every task the same; its 95 % interval is a percentile bootstrap that
resamples episodes within each task (stratified), so a measure a few episodes carry gets a wide
interval. Each row also records the policy mix of the episodes it scored (e.g. noisy experts
beside random episodes), since the measures depend on how hard the failures are to tell apart.

A reward set whose episodes are all of pretraining tasks is refused unless those tasks are
asked for by name (``tasks``), since the measures are meant for held-out tasks.

Which prompts are an episode's "own": the prompts equal to its instruction (ignoring case and
surrounding white space), or, when the prompt set labels prompts with tasks, every prompt of
its task; prompts of the same task never count as competitors in the rank.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.atomic import atomic_open, atomic_write_json
from lamp_data.envs.tasks import PRETRAIN, TASKS, list_tasks
from lamp_data.errors import LampError
from lamp_data.provenance import provenance
from lamp_data.rewards.prompts import normalize_prompt
from lamp_data.store import iter_episodes, layout, open_dataset

MEASURES = ("progress_spearman", "voc", "success_auroc", "near_miss_auroc", "instruction_rank", "instruction_top1")
"""The measures of a reward set, per task and macro-averaged."""

NEAR_MISS_POLICIES = ("expert", "noisy-expert")
"""Recording policies whose failed episodes are near misses (``near_miss_auroc``'s negatives)."""

COLUMNS = (
    "fingerprint",
    "model",
    "datasets",
    "policy_mix",
    "tasks",
    "episodes",
    "successes",
    "failures",
    *MEASURES,
)
"""Keys of every row of :func:`reward_quality_table` shown in its table, in display order. Each
row also holds ``<measure>_ci`` (the 95 % bootstrap interval of the macro-average) for every
measure and ``per_task``: one dict per task with the counts and measures of that task alone."""

TASK_COLUMNS = ("task", "goal", "episodes", "successes", "failures", *MEASURES)
"""Keys of every per-task dict of a row's ``per_task`` list; ``goal`` is ``shown`` or ``hidden``
(whether a frame shows where the goal is, :attr:`lamp_data.envs.tasks.TaskSpec.goal_visible`),
``marked`` where a hidden goal was drawn by the env's goal marker in every episode
(``EnvConfig.goal_marker``), or None where the catalogue does not say: on hidden-goal tasks
without the marker no reward read from frames can tell a success from a near miss."""

BOOTSTRAP_REPS = 1000
"""Bootstrap replicates of the macro-average intervals."""


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
    first_success: int | None = None
    """Index of the first successful frame (None: never, or not known)."""
    policy: str = "unknown"
    """The policy that recorded the episode, with its noise (``noisy-expert (noise 0.3)``)."""
    goal_marker: bool = False
    """Whether the env drew a marker at hidden goals when the episode was recorded."""

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


def _value_order(episode: _ScoredEpisode) -> float:
    """Value-order correlation of a successful episode: Spearman's rho between frame order and
    the own reward up to the first successful frame; NaN when that is under three frames."""
    end = len(episode.rewards) - 1 if episode.first_success is None else episode.first_success
    if end < 2:
        return math.nan
    return _progress_spearman(episode.own_reward[: end + 1])


def _rank_percentile(final_rewards: np.ndarray, own: np.ndarray, competitors: np.ndarray) -> tuple[float, bool]:
    """Fraction of competitor prompts the own prompts' mean reward beats (ties half), and
    whether it beats every one of them."""
    own_score = final_rewards[own].mean()
    others = final_rewards[competitors]
    wins = (own_score > others).sum() + 0.5 * (own_score == others).sum()
    return float(wins / len(others)), bool(np.all(own_score > others))


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (the Mann-Whitney U statistic; ties count half), NaN
    without both classes. Equal to :func:`sklearn.metrics.roc_auc_score`, and fast enough to run
    in every bootstrap replicate."""
    from scipy.stats import rankdata

    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass(frozen=True)
class _EpisodeValues:
    """The per-episode numbers every measure of one task is a function of (NaN where an episode
    does not count towards a measure)."""

    success: np.ndarray
    """bool [N]"""
    final: np.ndarray
    """float [N] own-instruction reward at the final frame."""
    attempted: np.ndarray
    """bool [N] recorded by the scripted expert, with or without noise (its failures are near misses)."""
    values: dict[str, np.ndarray]
    """float [N] per measure that is a mean over episodes: progress, VOC, rank, top-1."""

    @classmethod
    def of(cls, episodes: Sequence[_ScoredEpisode]) -> "_EpisodeValues":
        values = {measure: np.full(len(episodes), np.nan) for measure in MEASURES if not measure.endswith("_auroc")}
        for index, episode in enumerate(episodes):
            if not episode.success:
                continue
            values["progress_spearman"][index] = _progress_spearman(episode.own_reward)
            values["voc"][index] = _value_order(episode)
            if episode.competitors.any():
                rank, best = _rank_percentile(episode.rewards[-1], episode.own, episode.competitors)
                values["instruction_rank"][index] = rank
                values["instruction_top1"][index] = float(best)
        return cls(
            np.array([episode.success for episode in episodes], bool),
            np.array([float(episode.own_reward[-1]) for episode in episodes]),
            np.array([episode.policy.split(" (")[0] in NEAR_MISS_POLICIES for episode in episodes], bool),
            values,
        )

    def measures(self, sample: np.ndarray | None = None) -> dict[str, float]:
        """Every measure over the episodes (or the resampled indices ``sample``); NaN where undefined."""
        pick = slice(None) if sample is None else sample
        success, final = self.success[pick], self.final[pick]
        near = success | self.attempted[pick]
        result = {"success_auroc": _auroc(success, final), "near_miss_auroc": _auroc(success[near], final[near])}
        for measure, values in self.values.items():
            chosen = values[pick]
            chosen = chosen[~np.isnan(chosen)]
            result[measure] = float(chosen.mean()) if len(chosen) else math.nan
        return result


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else value


def _measures(episodes: Sequence[_ScoredEpisode], values: _EpisodeValues | None = None) -> dict[str, Any]:
    """The counts and measures of one group of episodes (``None`` where undefined); ``values``
    are the group's per-episode values when already computed."""
    successes = sum(episode.success for episode in episodes)
    measures = (values or _EpisodeValues.of(episodes)).measures()
    return {
        "episodes": len(episodes),
        "successes": successes,
        "failures": len(episodes) - successes,
        **{measure: _optional(measures[measure]) for measure in MEASURES},
    }


def _macro(by_task: dict[str, _EpisodeValues], reps: int, seed: int) -> dict[str, Any]:
    """Every measure averaged over the tasks that define it, with a 95 % stratified-bootstrap
    interval (episodes resampled within each task)."""
    point = [values.measures() for values in by_task.values()]
    rng = np.random.default_rng(seed)
    replicates = {measure: np.empty(reps) for measure in MEASURES}
    for rep in range(reps):
        resampled = [values.measures(rng.integers(len(values.success), size=len(values.success))) for values in by_task.values()]
        for measure in MEASURES:
            column = np.array([task[measure] for task in resampled])
            replicates[measure][rep] = np.nanmean(column) if not np.all(np.isnan(column)) else np.nan
    result: dict[str, Any] = {}
    for measure in MEASURES:
        column = np.array([task[measure] for task in point])
        defined = ~np.isnan(column)
        result[measure] = float(column[defined].mean()) if defined.any() else None
        spread = replicates[measure][~np.isnan(replicates[measure])]
        result[f"{measure}_ci"] = (
            [float(np.percentile(spread, 2.5)), float(np.percentile(spread, 97.5))] if result[measure] is not None and len(spread) else None
        )
    return result


def _goal(task: str, episodes: Sequence[_ScoredEpisode]) -> str | None:
    """``shown`` / ``hidden`` / ``marked``: whether the frames of ``task``'s ``episodes`` show its
    goal (None: not known)."""
    label = TASKS[task].goal_label if task in TASKS else None
    return "marked" if label == "hidden" and all(episode.goal_marker for episode in episodes) else label


def _policy_mix(episodes: Sequence[_ScoredEpisode]) -> str:
    """``noisy-expert (noise 0.3) 55, random 55``: the episodes' policies and counts."""
    counts = Counter(episode.policy for episode in episodes)
    return ", ".join(f"{policy} {count}" for policy, count in sorted(counts.items()))


def _task_prompt_masks(prompts: Sequence[str]) -> dict[str, tuple[np.ndarray, str]]:
    """For every task of the catalogue (:mod:`lamp_data.envs.tasks`): the bool mask of prompts that
    are its instruction or a paraphrase of it, and its backend."""
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

    ``task_masks`` holds the catalogue's tasks plus, for tasks the catalogue does not list, the
    prompt equal to their instruction (backend ``""``).
    """
    own = np.zeros(len(prompts), bool)
    backend = ""
    if task in task_masks:
        own, backend = task_masks[task]
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
    if not reward_dir.is_dir():
        raise LampError(f"reward set folder {reward_dir} does not exist (expected DATASET/rewards/FINGERPRINT)")
    location = layout.reward_set_location(reward_dir)
    if location is None:
        raise LampError(f"{reward_dir} is not a reward set folder (expected DATASET/rewards/FINGERPRINT)")
    folder, fingerprint = location
    dataset = open_dataset(folder)
    info = dataset.reward_set_info(fingerprint)
    prompts = dataset.reward_set_prompts(fingerprint)
    wanted = set(tasks) if tasks is not None else None
    goal_marker = bool((dataset.info.get("env", {}).get("config") or {}).get("goal_marker", False))
    read = []
    for episode in iter_episodes(dataset, reward_set=fingerprint):
        meta = episode["meta"]
        if wanted is not None and meta.get("task") not in wanted:
            continue
        rewards = np.asarray(episode[schema.VLM_REWARD], np.float32)
        flags = np.asarray(episode[schema.SUCCESS], bool)
        first = int(np.argmax(flags)) if flags.any() else None
        read.append((meta.get("task"), str(meta.get("instruction") or ""), rewards, bool(flags[-1]), first, _policy_label(meta)))
    if not read and not require_episodes:
        return info, []
    if not read:
        which = f" of tasks {', '.join(sorted(wanted))}" if wanted is not None else ""
        raise LampError(f"reward set {fingerprint} in {dataset.path} has no episodes{which}")
    task_masks = _task_prompt_masks(prompts)
    normalized = [normalize_prompt(prompt) for prompt in prompts]
    for task, instruction, *_ in read:
        if task not in task_masks:
            task_masks[task] = (np.array([prompt == normalize_prompt(instruction) for prompt in normalized], bool), "")
    episodes = []
    for task, instruction, rewards, success, first, policy in read:
        own, competitors = _own_and_competitors(task, instruction, prompts, task_masks)
        if not own.any():
            raise LampError(
                f"reward set {fingerprint}: no prompt matches the instruction '{instruction}' of task "
                f"'{task}' (relabel with a prompt set that holds the task instructions)"
            )
        episodes.append(_ScoredEpisode(rewards, success, own, competitors, task, first, policy, goal_marker))
    return info, episodes


def _policy_label(meta: dict[str, Any]) -> str:
    """The recording policy of an episode, with its action noise where it has one."""
    policy = str(meta.get("policy") or "unknown")
    return f"{policy} (noise {meta['noise']:g})" if meta.get("noise") is not None else policy


def _check_heldout(fingerprint: str, episodes: Sequence[_ScoredEpisode]) -> None:
    """LampError when every episode is of a pretraining task of the catalogue: the measures are
    meant for held-out tasks (episodes of tasks the catalogue does not list count as held out)."""
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


def _row(fingerprint: str, models: set[str], datasets: int, episodes: list[_ScoredEpisode], reps: int, seed: int) -> dict[str, Any]:
    """One reward set's row: counts, policy mix, macro-averaged measures with intervals, per-task measures."""
    by_task: dict[str, list[_ScoredEpisode]] = {}
    for episode in episodes:
        by_task.setdefault(str(episode.task), []).append(episode)
    values = {task: _EpisodeValues.of(group) for task, group in sorted(by_task.items())}
    per_task = [{"task": task, "goal": _goal(task, by_task[task]), **_measures(by_task[task], task_values)} for task, task_values in values.items()]
    macro = _macro(values, reps, seed)
    successes = sum(episode.success for episode in episodes)
    row = {
        "fingerprint": fingerprint, "model": " | ".join(sorted(models)), "datasets": datasets,
        "policy_mix": _policy_mix(episodes), "tasks": len(by_task), "episodes": len(episodes),
        "successes": successes, "failures": len(episodes) - successes,
    }
    row.update({measure: macro[measure] for measure in MEASURES})
    row.update({f"{measure}_ci": macro[f"{measure}_ci"] for measure in MEASURES})
    row["per_task"] = per_task
    return row


def reward_quality_table(
    reward_dirs: list[str | Path], *, tasks: list[str] | None = None, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> list[dict]:
    """One row of reward-quality measures per reward set (see the module docstring).

    Folders of the same fingerprint in different datasets (one dataset per held-out task, say)
    are pooled into one row: a fingerprint names one reward model with one prompt set.

    Args:
        reward_dirs: Reward set folders, ``DATASET/rewards/<fingerprint>``. Rows are comparable
            when their reward sets score the same episodes.
        tasks: Only episodes of these tasks (default: every episode of each dataset).
        reps: Bootstrap replicates of the macro-average intervals.
        seed: Seed of the bootstrap.

    Returns:
        Dicts with the keys of :data:`COLUMNS`, in order of first appearance: ``fingerprint``,
        ``model`` (the spec string the rewards were made with), ``datasets`` (folders pooled),
        ``policy_mix`` (recording policies and their episode counts), ``tasks``, ``episodes``,
        ``successes``, ``failures`` and the macro-average over tasks of every measure in
        :data:`MEASURES`; beside them ``<measure>_ci`` (``[low, high]``, the 95 % bootstrap
        interval) and ``per_task`` (dicts with the keys of :data:`TASK_COLUMNS`). A measure is
        ``None`` where the episodes cannot define it (no task with both successes and failures
        for AUROC, say).

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
        rows.append(_row(fingerprint, models, len(folders), episodes, reps, seed))
    return rows


def undefined_measures_note(row: dict) -> str:
    """Why a row's measures are undefined (``None``), in one sentence, or ``""`` if all are defined."""
    if row["successes"] == 0:
        return "no episode succeeded, so no measure is defined; add expert or noisy-expert episodes"
    reasons = []
    if row["failures"] == 0:
        reasons.append("success_auroc needs failed episodes too (add random episodes)")
    elif row.get("success_auroc", 0.0) is None:
        reasons.append("success_auroc needs successes and failures of the same task (add noisy-expert or random episodes)")
    elif row.get("near_miss_auroc", 0.0) is None:
        reasons.append("near_miss_auroc needs failed expert or noisy-expert episodes (add noisy-expert episodes)")
    if row["instruction_rank"] is None:
        reasons.append("instruction_rank needs prompts of other tasks to rank against")
    return "; ".join(reasons)


def format_cell(value: Any, interval: list[float] | None = None) -> str:
    """A table cell: ``–`` for an undefined measure, floats to three places with their interval."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")
    return str(value)


def reward_quality_markdown(rows: list[dict]) -> str:
    """The table as Markdown: macro-averages with their intervals, one row per reward set, then
    every task's measures, one row per task and reward set."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(format_cell(row.get(column), row.get(f"{column}_ci")) for column in COLUMNS) + " |" for row in rows]
    lines += ["", "Measures are macro-averages over tasks with 95 % bootstrap intervals (episodes resampled within tasks).", ""]
    header = ("task", "fingerprint", *TASK_COLUMNS[1:])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in sorted({entry["task"] for row in rows for entry in row["per_task"]}):
        for row in rows:
            for entry in row["per_task"]:
                if entry["task"] == task:
                    cells = [task, row["fingerprint"], *(format_cell(entry[column]) for column in TASK_COLUMNS[1:])]
                    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reward_quality(rows: list[dict], path: str | Path) -> Path:
    """Write the table to ``path`` as CSV, Markdown or JSON, chosen by its suffix.

    Raises:
        LampError: the suffix is not ``.csv``, ``.md`` or ``.json``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        atomic_write_json(path, {"rows": rows, "columns": list(COLUMNS), "task_columns": list(TASK_COLUMNS), "provenance": provenance()})
    elif suffix == ".csv":
        fields = ["fingerprint", "model", "task", *COLUMNS[3:], *(f"{measure}_{end}" for measure in MEASURES for end in ("low", "high"))]
        with atomic_open(path) as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                intervals = {f"{measure}_{end}": (row[f"{measure}_ci"] or [None, None])[side]
                             for measure in MEASURES for side, end in enumerate(("low", "high"))}
                writer.writerow({**row, "task": "macro", **intervals})
                for entry in row["per_task"]:
                    writer.writerow({"fingerprint": row["fingerprint"], "model": row["model"], **entry})
    elif suffix == ".md":
        with atomic_open(path) as handle:
            handle.write(reward_quality_markdown(rows))
    else:
        raise LampError(f"--out must end in .csv, .md or .json, got '{path.name}'")
    return path
