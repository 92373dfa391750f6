"""Building blocks shared by the world model and the actor-critic.

Written with plain ``torch.nn`` because the DreamerV3 pieces (symlog, two-hot bins,
uniform-mixed straight-through categoricals) exist in no maintained PyTorch library.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def symlog(value: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|): squashes large magnitudes, keeps small ones."""
    return torch.sign(value) * torch.log1p(value.abs())


def symexp(value: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(value) * torch.expm1(value.abs())


def mlp(in_dim: int, out_dim: int, units: int, layers: int) -> nn.Sequential:
    """``layers`` hidden Linear-LayerNorm-SiLU blocks followed by a linear output."""
    blocks: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, units), nn.LayerNorm(units), nn.SiLU()]
        width = units
    blocks.append(nn.Linear(width, out_dim))
    return nn.Sequential(*blocks)


def zero_init_(layer: nn.Linear) -> nn.Linear:
    """Zero a layer's weights and bias (DreamerV3 starts reward and value heads at zero)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class TwoHotSymlog(nn.Module):
    """A distribution over symlog-spaced bins trained with two-hot targets (DreamerV3).

    ``loss(logits, target)`` is the cross-entropy against the two-hot encoding of
    ``symlog(target)``; ``mean(logits)`` is ``symexp`` of the expected bin.
    """

    def __init__(self, bins: int, low: float = -20.0, high: float = 20.0):
        super().__init__()
        self.register_buffer("bins", torch.linspace(low, high, bins), persistent=False)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected value in the original (not symlog) space, shape ``logits.shape[:-1]``."""
        return symexp((logits.softmax(-1) * self.bins).sum(-1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-element negative log-likelihood of ``target`` (shape ``logits.shape[:-1]``)."""
        target_probs = self.two_hot(target)
        return -(target_probs * logits.log_softmax(-1)).sum(-1)

    def floor(self, target: torch.Tensor) -> torch.Tensor:
        """The smallest :meth:`loss` any logits can reach on ``target``: its two-hot entropy.

        ``loss - floor`` is the KL divergence to the two-hot target, zero for a perfect
        prediction whatever the bins, so it tells how far a head is from its targets.
        """
        probs = self.two_hot(target)
        return -(probs * probs.clamp_min(1e-12).log()).sum(-1)

    def two_hot(self, target: torch.Tensor) -> torch.Tensor:
        """The two-hot encoding ``[..., bins]`` of ``symlog(target)``."""
        bins = self.bins
        value = symlog(target.detach()).clamp(bins[0], bins[-1])
        above = torch.bucketize(value, bins).clamp(1, len(bins) - 1)
        below = above - 1
        span = bins[above] - bins[below]
        weight_above = ((value - bins[below]) / span).clamp(0, 1)
        return (
            F.one_hot(below, len(bins)) * (1 - weight_above).unsqueeze(-1)
            + F.one_hot(above, len(bins)) * weight_above.unsqueeze(-1)
        )


def image_to_input(image: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W, C]`` → float ``[..., C, H, W]`` in [-0.5, 0.5] (C = 3 per camera view)."""
    return image.float().div(255.0).sub(0.5).movedim(-1, -3)


def conv_layers_for(image_size: int, min_resolution: int) -> int:
    """How many stride-2 layers bring ``image_size`` down to ``min_resolution``."""
    layers = int(round(math.log2(image_size / min_resolution)))
    if layers < 1 or min_resolution * 2**layers != image_size:
        raise ValueError(f"image size {image_size} is not {min_resolution} times a power of two")
    return layers


class ConvEncoder(nn.Module):
    """Stride-2 convolutions until ``min_resolution``, flattened; channels double per layer.

    ``in_channels`` is 3 per camera view: the views of a step arrive stacked along channels.
    """

    def __init__(self, image_size: int, depth: int, min_resolution: int = 4, in_channels: int = 3):
        super().__init__()
        layers = conv_layers_for(image_size, min_resolution)
        blocks: list[nn.Module] = []
        channels = in_channels
        for index in range(layers):
            out = depth * 2**index
            blocks += [nn.Conv2d(channels, out, 4, 2, 1), nn.GroupNorm(1, out), nn.SiLU()]
            channels = out
        self.net = nn.Sequential(*blocks)
        self.out_dim = channels * min_resolution**2
        self.channels_last = False

    def use_channels_last(self) -> None:
        """Keep conv weights and activations in channels-last memory format from now on."""
        self.channels_last = True
        self.to(memory_format=torch.channels_last)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, H, W, in_channels]`` → ``[N, out_dim]``."""
        hidden = image_to_input(image)
        if self.channels_last:
            hidden = hidden.contiguous(memory_format=torch.channels_last)
        return self.net(hidden).flatten(1)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: features → image mean in [-0.5, 0.5] space, with
    ``out_channels`` (3 per camera view)."""

    def __init__(self, feat_dim: int, image_size: int, depth: int, min_resolution: int = 4, out_channels: int = 3):
        super().__init__()
        layers = conv_layers_for(image_size, min_resolution)
        self.min_resolution = min_resolution
        self.channels = depth * 2 ** (layers - 1)
        self.project = nn.Linear(feat_dim, self.channels * min_resolution**2)
        blocks: list[nn.Module] = []
        channels = self.channels
        for index in reversed(range(layers)):
            if index == 0:
                blocks.append(nn.ConvTranspose2d(channels, out_channels, 4, 2, 1))
            else:
                out = depth * 2 ** (index - 1)
                blocks += [nn.ConvTranspose2d(channels, out, 4, 2, 1), nn.GroupNorm(1, out), nn.SiLU()]
                channels = out
        self.net = nn.Sequential(*blocks)
        self.channels_last = False

    def use_channels_last(self) -> None:
        """Keep conv weights and activations in channels-last memory format from now on."""
        self.channels_last = True
        self.to(memory_format=torch.channels_last)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """``[N, feat_dim]`` → ``[N, out_channels, H, W]``."""
        hidden = self.project(feat).view(-1, self.channels, self.min_resolution, self.min_resolution)
        if self.channels_last:
            hidden = hidden.contiguous(memory_format=torch.channels_last)
        return self.net(hidden)
