"""Image trunks for R3M-style models: torchvision-compatible ResNets and a small conv net.

Written here rather than imported because torchvision's PyPI wheels do not import beside the
torch this project pins. The ResNets use torchvision's parameter names (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so the ``convnet.*`` part of a real R3M
checkpoint loads into them unchanged. ``fc`` is an identity, as in R3M: the trunk returns the
globally average-pooled features (512-d for ResNet-18/34, 2048-d for ResNet-50).
"""

from __future__ import annotations

import torch
from torch import nn

from lamp_data.errors import LampError


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a skip connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 → 3×3 (strided) → 1×1 convolutions with a skip connection (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET_LAYOUTS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
"""Block type and blocks per stage of each supported ResNet."""


class ResNet(nn.Module):
    """A torchvision-layout ResNet without its classifier: ``[N, 3, H, W] -> [N, out_dim]``."""

    def __init__(self, name: str):
        super().__init__()
        if name not in RESNET_LAYOUTS:
            raise LampError(f"unknown ResNet '{name}' (known: {', '.join(RESNET_LAYOUTS)})")
        block, counts = RESNET_LAYOUTS[name]
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(block, 64, counts[0], 1)
        self.layer2 = self._stage(block, 128, counts[1], 2)
        self.layer3 = self._stage(block, 256, counts[2], 2)
        self.layer4 = self._stage(block, 512, counts[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()
        self.out_dim = 512 * block.expansion
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block: type[nn.Module], channels: int, count: int, stride: int) -> nn.Sequential:
        downsample = None
        out_channels = channels * block.expansion
        if stride != 1 or self.in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        blocks = [block(self.in_channels, channels, stride, downsample)]
        self.in_channels = out_channels
        blocks.extend(block(self.in_channels, channels) for _ in range(1, count))
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SmallConvNet(nn.Module):
    """Four strided 3×3 convolutions and global average pooling, for 64–128 px in-domain models."""

    def __init__(self, width: int = 32):
        super().__init__()
        channels = (3, width, width * 2, width * 4, width * 8)
        layers: list[nn.Module] = []
        for in_channels, out_channels in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(in_channels, out_channels, 3, 2, 1), nn.GroupNorm(8, out_channels), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.out_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).mean(dim=(2, 3))


TRUNKS = ("resnet18", "resnet34", "resnet50", "conv-small")
"""Names accepted by :func:`build_trunk`."""


def build_trunk(name: str) -> nn.Module:
    """A randomly initialised trunk with an ``out_dim`` attribute."""
    if name == "conv-small":
        return SmallConvNet()
    if name in RESNET_LAYOUTS:
        return ResNet(name)
    raise LampError(f"unknown image trunk '{name}' (known: {', '.join(TRUNKS)})")


def infer_trunk(state_dict: dict[str, torch.Tensor], prefix: str = "convnet.") -> str:
    """Which ResNet a torchvision-layout state dict holds (Bottleneck → 50, block counts → 18/34)."""
    keys = [key[len(prefix):] for key in state_dict if key.startswith(prefix)]
    if not keys:
        raise LampError("checkpoint holds no image trunk ('convnet.*' weights)")
    if any(key.startswith("layers.") for key in keys):
        return "conv-small"
    if any(key.endswith(".conv3.weight") for key in keys):
        return "resnet50"
    blocks = {key.split(".")[1] for key in keys if key.startswith("layer3.")}
    return "resnet34" if len(blocks) > 2 else "resnet18"
