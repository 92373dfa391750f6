"""In-memory replay of whole episodes for online finetuning, with the store's batch layout.

Batches match :class:`lamp_data.store.SequenceDataset`: ``[batch, time]`` windows where step
``t`` holds frame ``t``, the action that led to it and the reward received on arriving at it
(zeros where ``is_first``). Windows never cross episode boundaries.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from lamp_data import schema
from lamp_data.errors import LampError
from lamp_data.store.sequences import aligned_steps


class EpisodeReplay:
    """A FIFO of episodes holding at most ``capacity_steps`` frames, sampled as fixed-length windows.

    Args:
        capacity_steps: Frames kept; the oldest episodes are dropped beyond it.
        seq_len: Steps per sampled window.
        seed: Seed of window sampling.
    """

    def __init__(self, capacity_steps: int, seq_len: int, seed: int = 0):
        if capacity_steps < 1 or seq_len < 1:
            raise LampError("replay capacity and seq_len must be at least 1")
        self.capacity_steps = capacity_steps
        self.seq_len = seq_len
        self._rng = np.random.default_rng(seed)
        self._episodes: deque[dict[str, np.ndarray]] = deque()
        self._steps = 0

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
        self._episodes.append(steps)
        self._steps += frames
        while self._steps > self.capacity_steps and len(self._episodes) > 1:
            self._steps -= len(self._episodes.popleft()[schema.IS_FIRST])

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
        """A batch of ``batch_size`` windows, each drawn uniformly over all valid start frames."""
        counts = np.array([max(len(e[schema.IS_FIRST]) - self.seq_len + 1, 0) for e in self._episodes], np.int64)
        if counts.sum() == 0:
            raise LampError(f"replay holds no episode of at least {self.seq_len} frames yet")
        picks = self._rng.choice(len(counts), size=batch_size, p=counts / counts.sum())
        windows = []
        for pick in picks:
            episode = self._episodes[pick]
            start = int(self._rng.integers(counts[pick]))
            windows.append({key: value[start : start + self.seq_len] for key, value in episode.items()})
        keys = [key for key in windows[0] if all(key in window for window in windows)]
        return {key: torch.from_numpy(np.stack([window[key] for window in windows])) for key in keys}
