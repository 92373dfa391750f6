"""Plan2Explore: an ensemble whose disagreement about the next latent is the novelty reward."""

from __future__ import annotations

import torch
from torch import nn


class Ensemble(nn.Module):
    """``size`` independent MLP heads predicting the next stochastic state from (feature, action).

    The heads are evaluated in one batched matmul per layer (weights ``[K, in, out]``) instead
    of a Python loop over K modules.

    Args:
        in_dim: Size of feature + action.
        out_dim: Size of the flattened next stochastic state.
        size: Number of heads (paper: 10).
        units: Hidden width.
        layers: Hidden layers.
    """

    def __init__(self, in_dim: int, out_dim: int, size: int, units: int, layers: int):
        super().__init__()
        self.size = size
        widths = [in_dim] + [units] * layers + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = fan_in**-0.5
            self.weights.append(nn.Parameter(torch.empty(size, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.zeros(size, 1, fan_out)))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[N, in_dim]`` → predictions ``[K, N, out_dim]``."""
        hidden = inputs.unsqueeze(0).expand(self.size, -1, -1)
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if index < last:
                hidden = nn.functional.silu(hidden)
        return hidden

    def loss(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error of every head against ``target`` ``[N, out_dim]``."""
        return (self(inputs) - target.unsqueeze(0)).square().mean()

    def disagreement(self, inputs: torch.Tensor) -> torch.Tensor:
        """Intrinsic reward ``[N]``: variance across heads, averaged over output dimensions."""
        return self(inputs).var(0).mean(-1)
