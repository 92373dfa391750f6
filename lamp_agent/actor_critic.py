"""Actor and critic trained in imagination, and the normalisers they rely on (DreamerV3)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from lamp_agent.networks import TwoHotSymlog, mlp, zero_init_


class Actor(nn.Module):
    """Gaussian policy over continuous actions in [-1, 1], conditioned on features and the prompt.

    The mean is ``tanh``-squashed, the standard deviation lies in ``[std_min, std_max]``;
    samples are clipped to [-1, 1] with a straight-through gradient.
    """

    def __init__(self, in_dim: int, action_dim: int, units: int, layers: int, std_min: float, std_max: float):
        super().__init__()
        self.net = mlp(in_dim, 2 * action_dim, units, layers)
        self.std_min = std_min
        self.std_max = std_max

    def forward(self, inputs: torch.Tensor) -> torch.distributions.Normal:
        """The action distribution (independent per dimension)."""
        mean, raw_std = self.net(inputs).chunk(2, -1)
        std = (self.std_max - self.std_min) * torch.sigmoid(raw_std + 2.0) + self.std_min
        return torch.distributions.Normal(torch.tanh(mean), std)

    @torch.no_grad()
    def scale_output_(self, scale: float) -> None:
        """Multiply the output layer's weights by ``scale`` and zero its bias (a small scale starts
        the policy near mean 0 with the same spread for every input)."""
        output = self.net[-1]
        output.weight.mul_(scale)
        output.bias.zero_()

    @staticmethod
    def clip(sample: torch.Tensor) -> torch.Tensor:
        """Clip to [-1, 1], passing the gradient straight through."""
        return sample + (sample.clamp(-1, 1) - sample).detach()


class Critic(nn.Module):
    """A value distribution (two-hot symlog bins) over features + prompt: an MLP body and a linear head."""

    def __init__(self, in_dim: int, units: int, layers: int, bins: int):
        super().__init__()
        self.body = mlp(in_dim, units, units, max(layers - 1, 0))
        self.activation = nn.Sequential(nn.LayerNorm(units), nn.SiLU())
        self.head = zero_init_(nn.Linear(units, bins))
        self.dist = TwoHotSymlog(bins)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Value logits ``[..., bins]``."""
        return self.head(self.activation(self.body(inputs)))

    def value(self, inputs: torch.Tensor) -> torch.Tensor:
        """Expected value ``[...]``, from float32 logits (exact under bf16 autocast too)."""
        return self.dist.mean(self(inputs).float())

    def reset_head(self) -> None:
        """A fresh zero-initialised output head (LAMP's linear probe for finetuning)."""
        self.head = zero_init_(nn.Linear(self.head.in_features, self.head.out_features)).to(self.head.weight.device)

    def copy(self) -> "Critic":
        """A frozen copy to serve as the slow target critic."""
        slow = copy.deepcopy(self)
        for parameter in slow.parameters():
            parameter.requires_grad_(False)
        return slow


class RewardScale(nn.Module):
    """EMA of a reward stream's mean magnitude, for ``norm(x) = x / EMA(|x|)``.

    The normaliser of the P2E/LAMP code bases (DreamerV2's ``StreamNorm``), except that the
    first batch sets the magnitude instead of starting from 1. The magnitude is a buffer, so
    it is saved with the weights and a resumed run normalises exactly as the original would.
    """

    def __init__(self, decay: float):
        super().__init__()
        self.decay = decay
        self.register_buffer("magnitude", torch.ones(()))
        self.register_buffer("count", torch.zeros(()))

    @torch.no_grad()
    def update(self, values: torch.Tensor) -> None:
        """Fold a batch of values into the magnitude."""
        magnitude = values.detach().abs().mean()
        if self.count.item() == 0:
            self.magnitude.copy_(magnitude)
        else:
            self.magnitude.mul_(self.decay).add_((1 - self.decay) * magnitude)
        self.count.add_(1)

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """``values / magnitude``."""
        return values / (self.magnitude + 1e-8)


class ReturnScale(nn.Module):
    """DreamerV3 return normalisation: divide advantages by max(1, EMA(P95 - P5))."""

    def __init__(self, decay: float):
        super().__init__()
        self.decay = decay
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("count", torch.zeros(()))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> None:
        """Fold the batch's 5th and 95th percentiles into the EMA."""
        flat = returns.detach().flatten().float()
        low, high = torch.quantile(flat, 0.05), torch.quantile(flat, 0.95)
        if self.count.item() == 0:
            self.low.copy_(low)
            self.high.copy_(high)
        else:
            self.low.mul_(self.decay).add_((1 - self.decay) * low)
            self.high.mul_(self.decay).add_((1 - self.decay) * high)
        self.count.add_(1)

    def scale(self) -> torch.Tensor:
        """The current divisor, at least 1."""
        return torch.clamp(self.high - self.low, min=1.0)


def lambda_returns(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, lambda_: float) -> torch.Tensor:
    """TD(lambda) returns over an imagined trajectory.

    Args:
        reward: ``[H, N]`` reward on arriving at imagined steps 1..H.
        value: ``[H + 1, N]`` values of steps 0..H.
        discount: ``[H, N]`` discount (gamma times continue probability) of steps 1..H.
        lambda_: Mixing between one-step targets (0) and Monte-Carlo returns (1).

    Returns:
        ``[H, N]`` returns for steps 0..H-1.
    """
    returns = []
    last = value[-1]
    for step in reversed(range(reward.shape[0])):
        last = reward[step] + discount[step] * ((1 - lambda_) * value[step + 1] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1])
