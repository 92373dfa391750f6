"""Training episodes for an in-domain reward model: loading, checks, and batch sampling.

Every episode of the given datasets is read once into memory (frames stay uint8). Held-out
tasks are refused, so a model trained here can be judged fairly on them. Episodes of the
scripted expert (with or without noise) are what the instruction describes; uniformly random
episodes serve as failures (time-contrastive data, and negatives of the language objective),
never as positives. Each episode keeps its task's instruction and paraphrases (from the task
catalogue) as the texts it is trained with.

A batch is drawn from a generator seeded with ``(seed, step)`` alone, so step ``k`` sees the
same batch whether training ran straight or resumed from a checkpoint.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamp_data import schema
from lamp_data.envs.tasks import HELDOUT, TASKS, list_tasks
from lamp_data.errors import LampError
from lamp_data.provenance import stable_hash
from lamp_data.store import iter_episodes, open_dataset

TRAINING_POLICIES = ("expert", "noisy-expert", "random")
"""Policies whose episodes a reward model may be trained on (only successful episodes are positives)."""


@dataclass
class TrainingEpisodes:
    """Episodes in memory, ready to sample from.

    Attributes:
        frames: uint8 ``[T+1, H, W, 3]`` per episode.
        task_ids: int index into ``tasks`` per episode.
        successful: bool per episode: the episode reached success at some frame.
        tasks: Task names, in first-seen order.
        texts: Every training text (instructions and paraphrases), deduplicated.
        task_texts: For each task, the indices into ``texts`` of its instruction and paraphrases.
        datasets: What was read from each dataset (path, episodes, tasks, shard fingerprint).
        fingerprint: Hash of the shard sidecars of every dataset read.
    """

    frames: list[np.ndarray]
    task_ids: np.ndarray
    successful: np.ndarray
    tasks: list[str]
    texts: list[str]
    task_texts: list[list[int]]
    datasets: list[dict[str, Any]]
    fingerprint: str

    def __len__(self) -> int:
        return len(self.frames)

    @functools.cached_property
    def other_texts(self) -> list[list[int]]:
        """For each task, the texts of other tasks that are not also texts of this task."""
        every = set(range(len(self.texts)))
        return [sorted(every - set(own)) for own in self.task_texts]

    @functools.cached_property
    def failed_by_task(self) -> list[np.ndarray]:
        """For each task, the indices of its episodes that never succeed."""
        return [np.flatnonzero((self.task_ids == task) & ~self.successful) for task in range(len(self.tasks))]


def _task_texts(task: str, instruction: str) -> list[str]:
    """The task's registered instruction and paraphrases, or the episode's own instruction."""
    spec = TASKS.get(task)
    texts = [spec.instruction, *spec.paraphrases] if spec is not None else []
    if instruction and instruction not in texts:
        texts.insert(0, instruction)
    return texts


def load_training_episodes(data_dirs: Sequence[str | Path]) -> TrainingEpisodes:
    """Read every episode of ``data_dirs`` into memory.

    Args:
        data_dirs: Dataset folders made by ``lamp-data collect --policy expert|noisy-expert|random``.

    Raises:
        LampError: no datasets or episodes, an episode of a held-out task, an episode recorded
            by another policy, or an episode without an instruction.
    """
    if not data_dirs:
        raise LampError("give at least one dataset (--data DIR)")
    heldout = {task.name for task in list_tasks(split=HELDOUT)}
    frames: list[np.ndarray] = []
    task_ids: list[int] = []
    successful: list[bool] = []
    tasks: list[str] = []
    texts: list[str] = []
    task_texts: list[list[int]] = []
    datasets = []
    sidecars = {}
    for data_dir in data_dirs:
        dataset = open_dataset(data_dir)
        dataset_sidecars = dataset.shard_sidecars()
        sidecars[str(len(sidecars))] = dataset_sidecars
        dataset_tasks: set[str] = set()
        count = 0
        for episode in iter_episodes(dataset):
            meta = episode["meta"]
            task, instruction, policy = meta.get("task"), meta.get("instruction"), meta.get("policy")
            where = f"{dataset.path} episode {episode['__key__']}"
            if task in heldout:
                raise LampError(
                    f"{where} is of held-out task '{task}'; train reward models on pretraining tasks only "
                    "(collect with --env mw-pretrain)"
                )
            if policy not in TRAINING_POLICIES:
                raise LampError(f"{where} was recorded by policy '{policy}'; train on {' or '.join(TRAINING_POLICIES)} episodes")
            if not instruction:
                raise LampError(f"{where} has no instruction")
            if task not in tasks:
                tasks.append(task)
                indices = []
                for text in _task_texts(task, instruction):
                    if text not in texts:
                        texts.append(text)
                    indices.append(texts.index(text))
                task_texts.append(indices)
            frames.append(np.ascontiguousarray(episode[schema.IMAGE]))
            task_ids.append(tasks.index(task))
            successful.append(bool(np.any(episode[schema.SUCCESS])))
            dataset_tasks.add(task)
            count += 1
        if count == 0:
            raise LampError(f"{dataset.path} holds no committed episodes")
        datasets.append(
            {
                "path": str(dataset.path),
                "episodes": count,
                "tasks": sorted(dataset_tasks),
                "env": dataset.info.get("env", {}).get("name"),
                "randomization": dataset.info.get("env", {}).get("config", {}).get("randomization"),
                "shards": stable_hash(dataset_sidecars),
            }
        )
    sizes = {episode.shape[1:] for episode in frames}
    if len(sizes) > 1:
        raise LampError(f"the datasets hold frames of different sizes ({sorted(sizes)}); collect them at one --image-size")
    return TrainingEpisodes(
        frames=frames,
        task_ids=np.asarray(task_ids, np.int64),
        successful=np.asarray(successful, bool),
        tasks=tasks,
        texts=texts,
        task_texts=task_texts,
        datasets=datasets,
        fingerprint=stable_hash(list(sidecars.values())),
    )


@dataclass
class Batch:
    """One training batch of ``B`` episodes.

    Attributes:
        frames: uint8 ``[B, 4, H, W, 3]``: the first frame, then frames ``s0 < s1 < s2``.
        own_text: int ``[B]`` index into ``texts`` of the instruction (or paraphrase) used.
        other_text: int ``[B]`` index into ``texts`` of a text of another task (one that is
            not also a text of the episode's own task).
        has_other: bool ``[B]``: such a text exists.
        task_ids: int ``[B]`` task of each episode.
        successful: bool ``[B]`` whether each episode succeeded.
        contrast_frames: uint8 ``[B, 2, H, W, 3]``: the first frame and a uniformly drawn later
            frame of a failed episode of the same task (with ``contrast``), else None.
        has_contrast: bool ``[B]``: the task has a failed episode to contrast with (or None).
    """

    frames: np.ndarray
    own_text: np.ndarray
    other_text: np.ndarray
    has_other: np.ndarray
    task_ids: np.ndarray
    successful: np.ndarray
    contrast_frames: np.ndarray | None = None
    has_contrast: np.ndarray | None = None


def _shift(frames: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Frames ``[K, H, W, 3]`` of one episode moved by one random offset (edges repeated)."""
    if max_shift <= 0:
        return frames
    height, width = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
    top, left = rng.integers(0, 2 * max_shift + 1, 2)
    return padded[:, top : top + height, left : left + width]


def _contrasts(episodes: TrainingEpisodes, chosen: np.ndarray, seed: int, step: int, max_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """For each chosen episode, the first and a later frame of a failed episode of its task
    (its own first two frames, flagged absent, when the task has none). Drawn from a generator
    of its own, so the rest of the batch is the same with or without contrasts."""
    rng = np.random.default_rng([seed, step, 1])
    frames, present = [], []
    for index in chosen:
        failed = episodes.failed_by_task[int(episodes.task_ids[index])]
        source = episodes.frames[int(rng.choice(failed))] if len(failed) else episodes.frames[index]
        time = int(rng.integers(1, len(source))) if len(source) > 1 else 0
        frames.append(_shift(source[[0, time]], rng, max_shift))
        present.append(bool(len(failed)))
    return np.stack(frames), np.asarray(present, bool)


def sample_batch(
    episodes: TrainingEpisodes, batch_size: int, seed: int, step: int, max_shift: int = 0, contrast: bool = False
) -> Batch:
    """The batch of step ``step``, a function of ``(seed, step)`` and the episodes only.

    Frames ``s0 < s1 < s2`` are three distinct times of the episode, drawn uniformly; episodes
    shorter than three frames repeat frames. ``max_shift`` applies one random shift per episode
    to all four of its frames (R3M augments with random crops). With ``contrast``, each episode
    also gets two frames of a failed episode of the same task (:attr:`Batch.contrast_frames`).
    """
    rng = np.random.default_rng([seed, step])
    chosen = rng.integers(0, len(episodes), batch_size)
    frames, own_text, other_text, has_other = [], [], [], []
    for index in chosen:
        episode = episodes.frames[index]
        length = len(episode)
        times = np.sort(rng.choice(length, 3, replace=length < 3))
        frames.append(_shift(episode[np.concatenate([[0], times])], rng, max_shift))
        task = int(episodes.task_ids[index])
        own_text.append(int(rng.choice(episodes.task_texts[task])))
        others = episodes.other_texts[task]
        has_other.append(bool(others))
        other_text.append(int(rng.choice(others)) if others else own_text[-1])
    contrast_frames, has_contrast = _contrasts(episodes, chosen, seed, step, max_shift) if contrast else (None, None)
    return Batch(
        frames=np.stack(frames),
        own_text=np.asarray(own_text, np.int64),
        other_text=np.asarray(other_text, np.int64),
        has_other=np.asarray(has_other, bool),
        task_ids=episodes.task_ids[chosen],
        successful=episodes.successful[chosen],
        contrast_frames=contrast_frames,
        has_contrast=has_contrast,
    )
