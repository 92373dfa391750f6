"""Recurrent state-space model with discrete latents (DreamerV2/V3).

A state is a dict of tensors: ``deter`` [..., D] (GRU state), ``stoch`` [..., G, C] (one-hot
sample of G categoricals with C classes) and ``logits`` [..., G, C].
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

State = dict[str, torch.Tensor]


class RSSM(nn.Module):
    """Prior ``p(z_t | h_t)``, posterior ``q(z_t | h_t, e_t)``, and ``h_t = GRU(h_{t-1}, z_{t-1}, a_t)``.

    Args:
        embed_dim: Size of the observation embedding from the front-end.
        action_dim: Size of the action.
        deter: Size of the GRU state.
        groups: Number of categorical latents.
        classes: Classes per categorical.
        hidden: Width of the internal layers.
        unimix: Share of uniform probability mixed into every categorical.
    """

    def __init__(self, embed_dim: int, action_dim: int, deter: int, groups: int, classes: int, hidden: int, unimix: float):
        super().__init__()
        self.deter_dim = deter
        self.groups = groups
        self.classes = classes
        self.unimix = unimix
        self.stoch_dim = groups * classes
        self.feat_dim = deter + self.stoch_dim
        self.image_in = nn.Sequential(nn.Linear(self.stoch_dim + action_dim, hidden), nn.LayerNorm(hidden), nn.SiLU())
        self.gru = nn.GRUCell(hidden, deter)
        self.prior_net = nn.Sequential(nn.Linear(deter, hidden), nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, self.stoch_dim))
        self.posterior_net = nn.Sequential(
            nn.Linear(deter + embed_dim, hidden), nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, self.stoch_dim)
        )

    def initial(self, batch: int, device: torch.device | str) -> State:
        """The all-zeros state that starts every episode."""
        return {
            "deter": torch.zeros(batch, self.deter_dim, device=device),
            "stoch": torch.zeros(batch, self.groups, self.classes, device=device),
            "logits": torch.zeros(batch, self.groups, self.classes, device=device),
        }

    def feat(self, state: State) -> torch.Tensor:
        """Model features ``[h, z]`` that heads, actor and critic read."""
        return torch.cat([state["deter"], state["stoch"].flatten(-2)], -1)

    def _logits(self, raw: torch.Tensor) -> torch.Tensor:
        logits = raw.view(*raw.shape[:-1], self.groups, self.classes)
        if self.unimix:
            probs = logits.softmax(-1)
            probs = (1 - self.unimix) * probs + self.unimix / self.classes
            logits = probs.log()
        return logits

    @staticmethod
    def _sample(logits: torch.Tensor) -> torch.Tensor:
        """One-hot sample with straight-through gradients."""
        probs = logits.softmax(-1)
        index = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).view(probs.shape[:-1])
        one_hot = F.one_hot(index, probs.shape[-1]).to(probs.dtype)
        return one_hot + probs - probs.detach()

    def img_step(self, state: State, action: torch.Tensor) -> State:
        """Advance one step without an observation (the prior)."""
        hidden = self.image_in(torch.cat([state["stoch"].flatten(-2), action], -1))
        deter = self.gru(hidden, state["deter"])
        logits = self._logits(self.prior_net(deter))
        return {"deter": deter, "stoch": self._sample(logits), "logits": logits}

    def obs_step(self, state: State, action: torch.Tensor, embed: torch.Tensor, is_first: torch.Tensor) -> tuple[State, State]:
        """Advance one step with an observation; ``is_first`` resets state and action first.

        Returns:
            (posterior, prior) states.
        """
        keep = (~is_first).to(embed.dtype).unsqueeze(-1)
        initial = self.initial(embed.shape[0], embed.device)
        state = {key: value * keep.view(-1, *[1] * (value.dim() - 1)) + initial[key] * (1 - keep.view(-1, *[1] * (value.dim() - 1))) for key, value in state.items()}
        prior = self.img_step(state, action * keep)
        logits = self._logits(self.posterior_net(torch.cat([prior["deter"], embed], -1)))
        posterior = {"deter": prior["deter"], "stoch": self._sample(logits), "logits": logits}
        return posterior, prior

    def observe(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor, state: State | None = None) -> tuple[State, State]:
        """Filter a batch of sequences ``[B, L, ...]``; returns stacked posteriors and priors."""
        batch, length = embed.shape[:2]
        state = state or self.initial(batch, embed.device)
        posteriors, priors = [], []
        for step in range(length):
            state, prior = self.obs_step(state, action[:, step], embed[:, step], is_first[:, step])
            posteriors.append(state)
            priors.append(prior)
        stack = lambda states: {key: torch.stack([s[key] for s in states], 1) for key in states[0]}  # noqa: E731
        return stack(posteriors), stack(priors)

    def kl_losses(self, posterior_logits: torch.Tensor, prior_logits: torch.Tensor, free_bits: float) -> tuple[torch.Tensor, torch.Tensor]:
        """DreamerV3's dynamics and representation KL terms, each clipped below at ``free_bits``.

        Returns:
            (dynamics, representation) losses with the batch shape.
        """

        def kl(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
            return (lhs.softmax(-1) * (lhs.log_softmax(-1) - rhs.log_softmax(-1))).sum((-2, -1))

        dynamics = kl(posterior_logits.detach(), prior_logits)
        representation = kl(posterior_logits, prior_logits.detach())
        return dynamics.clamp(min=free_bits), representation.clamp(min=free_bits)
