"""The replay: ``[batch, time]`` training windows from a dataset's shards or from episodes in memory.

:class:`ShardReplay` streams windows from the committed shards of a dataset and its reward set,
read through :mod:`lamp_data.store`, for pretraining; :class:`EpisodeReplay` keeps the episodes
of online finetuning in memory. Both yield the same batch layout: step ``t`` holds frame ``t``,
the action that led to it and the env reward received on arriving at it (both zero where
``is_first``), and windows never cross episode boundaries. :class:`HindsightPrompts` pairs each
window from the shards with its episode's own prompt or another one of the reward set. Batches
are read ahead on a background thread by :class:`lamp_data.prefetch.Prefetcher`.

:class:`ShardReplay` splits the shards between DataLoader workers and torch.distributed ranks,
cuts every episode into windows of ``seq_len`` steps (a random offset per pass, so every step is
seen over passes), mixes windows in a shuffle buffer and yields whole batches. The stream is
endless: after each pass, and every ``refresh_seconds`` between shards, the committed shards are
listed again, so shards written while training (the agent collecting) join the replay.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamp_data import schema
from lamp_data.errors import DamagedDataError, LampError, check_on_damage
from lamp_data.store import Dataset, iter_episodes, open_dataset

PromptChooser = Callable[[dict, int, np.random.Generator], int]
"""``(episode meta, number of prompts, rng) -> prompt index`` for a window of that episode."""


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


class HindsightPrompts:
    """Prompt chooser for :class:`ShardReplay`: pair a sequence with its own prompt or any other.

    Rewards exist for every prompt of the set, so any sequence can be relabelled with any
    prompt. With probability ``own_fraction`` a sequence keeps its episode's instruction (if
    that instruction is in the set); otherwise the prompt is drawn uniformly from the set.

    Args:
        prompts: The reward set's prompts, in column order.
        own_fraction: Chance of keeping the episode's own prompt.
    """

    def __init__(self, prompts: list[str], own_fraction: float):
        self.index = {prompt: i for i, prompt in enumerate(prompts)}
        self.own_fraction = own_fraction

    def __call__(self, meta: dict[str, Any], num_prompts: int, rng: np.random.Generator) -> int:
        own = self.index.get(meta.get("instruction"))
        if own is not None and rng.random() < self.own_fraction:
            return int(own)
        return int(rng.integers(num_prompts))


class ShardReplay(torch.utils.data.IterableDataset):
    """Endless stream of training batches from a dataset's shards (use ``DataLoader(ds, batch_size=None)``).

    Args:
        dataset: Dataset folder or open :class:`Dataset`.
        seq_len: Steps per sequence; episodes shorter than this are skipped with a warning.
        batch_size: Sequences per batch.
        reward_set: Reward-set fingerprint; batches then hold ``vlm_reward`` float32 ``[B, L]``
            (the chosen prompt's column) and ``prompt_index`` int64 ``[B]``. Only shards whose
            reward shard is committed are read.
        prompt_chooser: ``(meta, num_prompts, rng) -> prompt index``; default:
            ``HindsightPrompts(prompts, own_fraction=1.0)``, the episode's instruction (a random
            prompt if it is not in the set).
        shuffle_buffer: Sequences held for shuffling.
        seed: Seed of shard order, window offsets, shuffling and prompt choice.
        refresh_seconds: How often to look for newly committed shards.
        on_damage: ``"fail"`` (default): a damaged shard or reward shard stops the stream with
            :class:`~lamp_data.store.DamagedShardError`; ``"skip"``: it is left out and
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
        check_on_damage(on_damage)
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
            rewarded = set(self.dataset.rewarded_shards(self.reward_set))
            names = [n for n in names if n in rewarded]
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
            chooser = HindsightPrompts(self.prompts, own_fraction=1.0)
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


class EpisodeReplay:
    """A FIFO of episodes in memory holding at most ``capacity_steps`` frames, sampled as fixed-length
    windows in :class:`ShardReplay`'s batch layout.

    Args:
        capacity_steps: Frames kept; the oldest episodes are dropped beyond it.
        seq_len: Steps per sampled window.
        seed: Seed of window sampling.
        prioritize_ends: Draw a window's start over every frame of its episode and clip it to the
            last full window, so the ends of episodes are replayed more often (MWM, DreamerV2).
    """

    def __init__(self, capacity_steps: int, seq_len: int, seed: int = 0, prioritize_ends: bool = False):
        if capacity_steps < 1 or seq_len < 1:
            raise LampError("replay capacity and seq_len must be at least 1")
        self.capacity_steps = capacity_steps
        self.seq_len = seq_len
        self.prioritize_ends = prioritize_ends
        self._rng = np.random.default_rng(seed)
        self._episodes: deque[dict[str, np.ndarray]] = deque()
        self._steps = 0
        self._added = 0
        """Episodes added so far; the episodes held are the newest ``len(self)`` of them."""
        self._saved = 0
        """Episodes :meth:`save` has written so far."""

    def __len__(self) -> int:
        """Episodes held."""
        return len(self._episodes)

    @property
    def steps(self) -> int:
        """Frames held."""
        return self._steps

    def add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """Store one episode in the store's schema (``image`` [T+1, ...], ``action`` [T, A], ``reward`` [T], ...).

        A ``vlm_reward`` of shape ``[T+1]`` (one prompt's column) is kept as is.
        """
        missing = [key for key in schema.STEP_KEYS if key not in episode]
        if missing:
            raise LampError(f"episode lacks {', '.join(missing)}")
        frames = len(episode[schema.IMAGE])
        if len(episode[schema.ACTION]) != frames - 1 or len(episode[schema.REWARD]) != frames - 1:
            raise LampError(f"episode has {frames} frames but {len(episode[schema.ACTION])} actions; expected one fewer")
        steps = aligned_steps(episode)
        if schema.VLM_REWARD in steps:
            vlm_reward = np.asarray(steps[schema.VLM_REWARD], np.float32)
            if vlm_reward.shape != (frames,):
                raise LampError(f"replay keeps one prompt's vlm_reward [T+1], got {list(vlm_reward.shape)}")
            steps[schema.VLM_REWARD] = vlm_reward
        self._append(steps)

    def _append(self, steps: dict[str, np.ndarray]) -> None:
        self._episodes.append(steps)
        self._added += 1
        self._steps += len(steps[schema.IS_FIRST])
        while self._steps > self.capacity_steps and len(self._episodes) > 1:
            self._steps -= len(self._episodes.popleft()[schema.IS_FIRST])

    def state(self) -> dict[str, Any]:
        """The JSON-able state besides the episodes: how many were added and the sampler's generator."""
        return {"added": self._added, "held": len(self._episodes), "rng": self._rng.bit_generator.state}

    def save(self, folder: str | Path) -> None:
        """Write every episode added since the last call to ``folder`` (``episode-<index>.npz``,
        atomically, no pickles); files already there are kept, so many checkpoints share them."""
        from lamp_data.atomic import atomic_path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        unsaved = self._added - self._saved
        for offset, steps in enumerate(list(self._episodes)[len(self._episodes) - min(unsaved, len(self._episodes)):]):
            index = self._added - min(unsaved, len(self._episodes)) + offset
            with atomic_path(folder / f"episode-{index:07d}.npz") as temporary, open(temporary, "wb") as handle:
                np.savez_compressed(handle, **steps)
        self._saved = self._added

    def restore(self, folder: str | Path, state: dict[str, Any]) -> None:
        """Hold again the episodes a :meth:`state` taken after :meth:`save` describes, read from ``folder``.

        Raises:
            DamagedDataError: an episode file is missing or does not load.
        """
        folder = Path(folder)
        added, held = int(state["added"]), int(state["held"])
        self._episodes.clear()
        self._steps, self._added = 0, added - held
        for index in range(added - held, added):
            path = folder / f"episode-{index:07d}.npz"
            try:
                with np.load(path, allow_pickle=False) as loaded:
                    steps = {key: loaded[key] for key in loaded.files}
            except (OSError, ValueError) as error:
                raise DamagedDataError(f"replayed episode {path} is missing or damaged ({error}); remove the run's checkpoints to start over") from None
            self._append(steps)
        self._saved = added
        self._rng.bit_generator.state = state["rng"]

    def newest(self, count: int) -> dict[str, torch.Tensor]:
        """The first ``seq_len`` frames of each of the newest ``count`` episodes long enough, as a
        batch (fewer when fewer are held). Draws no random number, so it can be called for logging
        without changing what :meth:`sample` returns later."""
        chosen = [episode for episode in reversed(self._episodes) if len(episode[schema.IS_FIRST]) >= self.seq_len][:count]
        if not chosen:
            raise LampError(f"replay holds no episode of at least {self.seq_len} frames yet")
        keys = [key for key in chosen[0] if all(key in episode for episode in chosen)]
        return {key: torch.from_numpy(np.stack([episode[key][: self.seq_len] for episode in chosen])) for key in keys}

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A batch of ``batch_size`` windows, each drawn uniformly over all valid start frames
        (with ``prioritize_ends``, over all frames, clipped to the last valid start)."""
        counts = np.array([max(len(e[schema.IS_FIRST]) - self.seq_len + 1, 0) for e in self._episodes], np.int64)
        if counts.sum() == 0:
            raise LampError(f"replay holds no episode of at least {self.seq_len} frames yet")
        picks = self._rng.choice(len(counts), size=batch_size, p=counts / counts.sum())
        windows = []
        for pick in picks:
            episode = self._episodes[pick]
            if self.prioritize_ends:
                start = min(int(self._rng.integers(len(episode[schema.IS_FIRST]))), int(counts[pick]) - 1)
            else:
                start = int(self._rng.integers(counts[pick]))
            windows.append({key: value[start : start + self.seq_len] for key, value in episode.items()})
        keys = [key for key in windows[0] if all(key in window for window in windows)]
        return {key: torch.from_numpy(np.stack([window[key] for window in windows])) for key in keys}
