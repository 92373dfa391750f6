"""Fixed-length ``[batch, time]`` training sequences streamed from a dataset's shards.

Each DataLoader worker on each torch.distributed rank reads its own share of the shards,
cuts every episode into windows of ``seq_len`` steps (a random offset per pass, so every step
is seen over passes), mixes windows in a shuffle buffer and yields whole batches. The stream is
endless: after each pass, and every ``refresh_seconds`` between shards, the committed shards are
listed again, so shards written while training (the agent collecting) join the replay.

Steps are aligned the way a world model consumes them: step ``t`` holds frame ``t``, the action
that led to it and the env reward received on arriving at it (both zero where ``is_first``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_data import schema
from lamp_data.errors import DamagedDataError, LampError
from lamp_data.store.reader import Dataset, iter_episodes, open_dataset

PromptChooser = Callable[[dict, int, np.random.Generator], int]

ON_DAMAGE = ("fail", "skip")
"""What a stream does with a damaged shard: stop with an error, or leave it out and record it."""


def aligned_steps(episode: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-step arrays with ``T + 1`` rows: action and reward shifted to the frame they led to;
    the frames of further cameras (``image_wrist``) come along when the episode has them."""
    actions = episode[schema.ACTION]
    rewards = episode[schema.REWARD]
    steps = {
        schema.IMAGE: episode[schema.IMAGE],
        schema.STATE: episode[schema.STATE].astype(np.float32),
        schema.ACTION: np.concatenate([np.zeros((1, *actions.shape[1:]), np.float32), actions]),
        schema.REWARD: np.concatenate([np.zeros(1, np.float32), rewards]).astype(np.float32),
    }
    for key in schema.CAMERA_KEYS.values():
        if key in episode and key != schema.IMAGE:
            steps[key] = episode[key]
    for key in (schema.SUCCESS, schema.IS_FIRST, schema.IS_LAST, schema.IS_TERMINAL):
        steps[key] = episode[key].astype(bool)
    if schema.VLM_REWARD in episode:
        steps[schema.VLM_REWARD] = episode[schema.VLM_REWARD]
    return steps


def instruction_prompt(prompts: list[str]) -> PromptChooser:
    """The default prompt chooser: the episode's own instruction, or a random prompt if absent."""
    index = {prompt: i for i, prompt in enumerate(prompts)}

    def choose(meta: dict, num_prompts: int, rng: np.random.Generator) -> int:
        found = index.get(meta.get("instruction"))
        return int(found) if found is not None else int(rng.integers(num_prompts))

    return choose


class SequenceDataset(torch.utils.data.IterableDataset):
    """Endless stream of training batches from a dataset (use ``DataLoader(ds, batch_size=None)``).

    Args:
        dataset: Dataset folder or open :class:`Dataset`.
        seq_len: Steps per sequence; episodes shorter than this are skipped with a warning.
        batch_size: Sequences per batch.
        reward_set: Reward-set fingerprint; batches then hold ``vlm_reward`` float32 ``[B, L]``
            (the chosen prompt's column) and ``prompt_index`` int64 ``[B]``. Only shards whose
            reward shard is committed are read.
        prompt_chooser: ``(meta, num_prompts, rng) -> prompt index``; default: the episode's
            instruction (random prompt if it is not in the set).
        shuffle_buffer: Sequences held for shuffling.
        seed: Seed of shard order, window offsets, shuffling and prompt choice.
        refresh_seconds: How often to look for newly committed shards.
        on_damage: ``"fail"`` (default): a damaged shard or reward shard stops the stream with
            :class:`~lamp_data.store.reader.DamagedShardError`; ``"skip"``: it is left out and
            recorded in :attr:`skipped`.

    Attributes:
        skipped: Shard name -> why it was left out (``on_damage="skip"``), in this process.
    """

    def __init__(
        self,
        dataset: str | Path | Dataset,
        *,
        seq_len: int,
        batch_size: int,
        reward_set: str | None = None,
        prompt_chooser: PromptChooser | None = None,
        shuffle_buffer: int = 64,
        seed: int = 0,
        refresh_seconds: float = 30.0,
        on_damage: str = "fail",
    ):
        super().__init__()
        if seq_len < 1 or batch_size < 1 or shuffle_buffer < 1:
            raise LampError("seq_len, batch_size and shuffle_buffer must be at least 1")
        if on_damage not in ON_DAMAGE:
            raise LampError(f"on_damage must be one of {', '.join(ON_DAMAGE)}, got {on_damage!r}")
        self.on_damage = on_damage
        self.skipped: dict[str, str] = {}
        self.dataset = open_dataset(dataset)
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.reward_set = reward_set
        self.prompts = self.dataset.reward_set_prompts(reward_set) if reward_set else None
        self.prompt_chooser = prompt_chooser
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.refresh_seconds = refresh_seconds

    def _split(self) -> tuple[int, int]:
        """(index, count) of this reader among all DataLoader workers on all ranks."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        return rank * workers + worker, world * workers

    def _my_shards(self, split: int, splits: int) -> list[str]:
        names = sorted(self.dataset.shard_sidecars())
        if self.reward_set is not None:
            names = [n for n in names if n in self.dataset.reward_shard_sidecars(self.reward_set)]
        return [name for i, name in enumerate(names) if i % splits == split]

    def _episodes(self, rng: np.random.Generator, split: int, splits: int) -> Iterator[dict[str, Any]]:
        """Endless episodes of this split's shards, re-listing shards as they are committed."""
        while True:
            pending = [name for name in self._my_shards(split, splits) if name not in self.skipped]
            if not pending and self.skipped and not set(self._my_shards(split, splits)) - set(self.skipped):
                raise DamagedDataError(f"every shard of {self.dataset.path} this stream reads is damaged: {', '.join(sorted(self.skipped))}")
            if not pending:
                time.sleep(min(self.refresh_seconds, 5.0))
                continue
            rng.shuffle(pending)
            seen = set(pending)
            listed = time.monotonic()
            while pending:
                name = pending.pop()
                try:
                    episodes = list(iter_episodes(self.dataset, reward_set=self.reward_set, shards=[name]))
                except DamagedDataError as error:
                    if self.on_damage == "fail":
                        raise
                    self.skipped[name] = str(error)
                    episodes = []
                yield from episodes
                if time.monotonic() - listed > self.refresh_seconds:
                    fresh = [n for n in self._my_shards(split, splits) if n not in seen and n not in self.skipped]
                    pending.extend(fresh)
                    seen.update(fresh)
                    listed = time.monotonic()

    def _windows(self, rng: np.random.Generator, split: int, splits: int) -> Iterator[dict[str, np.ndarray]]:
        chooser = self.prompt_chooser
        if chooser is None and self.prompts is not None:
            chooser = instruction_prompt(self.prompts)
        warned = False
        for episode in self._episodes(rng, split, splits):
            steps = aligned_steps(episode)
            length = len(steps[schema.IS_FIRST])
            if length < self.seq_len:
                if not warned:
                    warnings.warn(f"episodes of {length} frames are shorter than seq_len {self.seq_len}; skipping them", stacklevel=2)
                    warned = True
                continue
            prompt = None
            if self.prompts is not None:
                prompt = chooser(episode["meta"], len(self.prompts), rng)
                if not 0 <= prompt < len(self.prompts):
                    raise LampError(f"prompt chooser returned {prompt}, outside 0..{len(self.prompts) - 1}")
            offset = int(rng.integers(length % self.seq_len + 1))
            for start in range(offset, length - self.seq_len + 1, self.seq_len):
                window = {key: value[start : start + self.seq_len] for key, value in steps.items()}
                if prompt is not None:
                    window[schema.VLM_REWARD] = window[schema.VLM_REWARD][:, prompt].astype(np.float32)
                    window[schema.PROMPT_INDEX] = np.int64(prompt)
                yield window

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        split, splits = self._split()
        rng = np.random.default_rng([self.seed, split])
        buffer: list[dict[str, np.ndarray]] = []
        batch: list[dict[str, np.ndarray]] = []
        for window in self._windows(rng, split, splits):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(window)
                continue
            slot = int(rng.integers(len(buffer)))
            batch.append(buffer[slot])
            buffer[slot] = window
            if len(batch) == self.batch_size:
                yield {key: torch.from_numpy(np.stack([item[key] for item in batch])) for key in batch[0]}
                batch = []
