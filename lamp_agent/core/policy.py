"""The agent as a :class:`lamp_data.pipeline.rollout.Policy` (``reset(info)``, ``policy(observation)``).

Pretraining collects with it (a prompt drawn per episode from the prompt set), finetuning trains
and evaluates with it (one instruction: a set of one).
"""

from __future__ import annotations

from typing import Any

import numpy as np


class AgentPolicy:
    """Acts with an agent's actor, conditioned on a prompt drawn from a set at each episode start.

    LAMP samples a language prompt per episode during pretraining; the agent's latent state
    and last action are carried between steps and reset at ``reset``. Given a single prompt
    (finetuning's instruction) the draw always picks it.

    Args:
        agent: An :class:`~lamp_agent.agent.Agent`.
        prompt_embeddings: float32 ``[P, lang_dim]``, the prompt set's embeddings.
        seed: Seed of the per-episode prompt draw.
        explore: Sample actions (True) or act with the policy mean.
    """

    def __init__(self, agent: Any, prompt_embeddings: np.ndarray, seed: int = 0, explore: bool = True):
        self.agent = agent
        self.prompt_embeddings = np.asarray(prompt_embeddings, np.float32)
        self.explore = explore
        self.rng = np.random.default_rng(seed)
        """Generator of the per-episode prompt draw (its state is part of a resumable run's)."""
        self._carry: Any = None
        self.prompt_index = 0
        """Index of the prompt the current episode is conditioned on."""

    def reset(self, info: dict[str, Any]) -> None:
        """Start an episode: forget the latent state and draw a prompt."""
        self._carry = None
        self.prompt_index = int(self.rng.integers(len(self.prompt_embeddings)))

    def episode_meta(self) -> dict[str, Any]:
        """What a recorded episode's meta says of the policy: the index of the prompt it acted on."""
        return {"prompt_index": self.prompt_index}

    def __call__(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """The actor's action for ``observation``, carrying the latent state to the next call."""
        action, self._carry = self.agent.policy_step(
            observation, self.prompt_embeddings[self.prompt_index], carry=self._carry, explore=self.explore
        )
        return action
