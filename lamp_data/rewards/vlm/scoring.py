"""Scoring whole episodes against a prompt set: what ``collect --vlm`` and ``relabel`` share.

``make_scorer("r3m:/path/model.pt", "lamp-metaworld")`` loads the reward model, embeds the prompt
set once, and returns an :class:`EpisodeScorer` whose ``score(frames)`` gives float16 rewards
``[T+1, P]`` for one episode. Its ``fingerprint`` names the reward set; its ``info`` is what a
reward set's ``info.json`` records: everything that decides the rewards at the top level, and
under ``provenance`` what does not (the spec string and prompt-set name used, versions, time),
so the same model loaded from another path, or the same prompts under another name, extends the
same reward set. Collection and relabelling build the scorer the same way, so
inline rewards and relabelled rewards of the same model are the same numbers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from lamp_data.devices import check_device
from lamp_data.errors import LampError
from lamp_data.provenance import provenance
from lamp_data.rewards.prompts import PromptSet, load_prompt_set
from lamp_data.rewards.vlm.base import RewardModel, load_reward_model, reward_fingerprint
from lamp_data.schema import REWARD_FORMAT_VERSION


class EpisodeScorer:
    """A reward model with its prompt set embedded, ready to score episodes.

    Args:
        reward_model: A loaded reward model.
        prompt_set: The prompts; reward column ``i`` belongs to ``prompt_set.prompts[i]``.
        model_spec: The spec string the model was loaded from (recorded, not fingerprinted).
        batch_size: Frames embedded per forward pass.
    """

    def __init__(self, reward_model: RewardModel, prompt_set: PromptSet, model_spec: str, batch_size: int = 64):
        if batch_size < 1:
            raise LampError(f"batch size must be at least 1, got {batch_size}")
        self.reward_model = reward_model
        self.prompt_set = prompt_set
        self.prompts = list(prompt_set.prompts)
        self.batch_size = batch_size
        started = time.perf_counter()
        self.embedded_prompts = reward_model.embed_prompts(self.prompts)
        self.prompt_seconds = time.perf_counter() - started
        model_identity = reward_model.spec()
        self.fingerprint = reward_fingerprint(model_identity, prompt_set.hash)
        self.info: dict[str, Any] = {
            "format_version": REWARD_FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "model": model_identity,
            "prompt_set": {"hash": prompt_set.hash, "count": len(prompt_set)},
            "reward": {"dtype": "float16", "shape": "[T+1, P]", "relative_to": "first frame of the episode"},
            "provenance": {**provenance(), "model_spec": model_spec, "prompt_set_name": prompt_set.name},
        }

    def score(self, frames: np.ndarray) -> np.ndarray:
        """Rewards float16 ``[T+1, P]`` of one episode's uint8 frames ``[T+1, H, W, 3]``."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise LampError(f"frames must be uint8 [T+1, H, W, 3], got {frames.dtype} {list(frames.shape)}")
        rewards = self.reward_model.episode_rewards(frames, self.embedded_prompts, self.batch_size)
        if rewards.shape != (len(frames), len(self.prompts)):
            raise LampError(f"reward model returned {list(rewards.shape)} rewards for {len(frames)} frames × {len(self.prompts)} prompts")
        return rewards.astype(np.float16, copy=False)


def make_scorer(vlm: str, prompts: str | PromptSet | list[str] | None = None, *, device: str = "cpu", batch_size: int = 64) -> EpisodeScorer:
    """Load ``vlm`` (a spec such as ``r3m:/path/model.pt``) and embed the prompt set once.

    Args:
        vlm: Reward model spec, ``family:name-or-path[?options]``.
        prompts: Prompt-set name, ``.txt``/``.json`` path, :class:`PromptSet` or list of prompts;
            the default set if None.
        device: Torch device for the model.
        batch_size: Frames embedded per forward pass.
    """
    check_device(device)
    prompt_set = load_prompt_set(prompts)
    reward_model = load_reward_model(vlm, device)
    return EpisodeScorer(reward_model, prompt_set, vlm, batch_size)
