"""DenseNet-40 with growth rate k=12 (Huang et al. 2017), the CIFAR network of the pruning literature.

Three dense blocks of 12 layers (BN-ReLU-conv3x3 producing k channels, concatenated to the input), joined by
transitions (BN-ReLU-conv1x1-avgpool2) that keep the channel count (no bottleneck or compression: not DenseNet-BC).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.models._registry import register_model
from slimkit.models._scaling import check_width, init_weights, scale_channels


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 making ``growth`` new channels, concatenated after the input's."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)  # acts on the BN output, never on the concatenated input
        self.conv = nn.Conv2d(in_channels, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.relu(self.bn(x)))  # (B, k, H, W)
        return torch.cat([x, out], dim=1)  # (B, C + k, H, W)


class Transition(nn.Module):
    """BN-ReLU-conv1x1-avgpool2: halves the resolution, keeps the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.bn(x))))  # (B, C, H/2, W/2)


class DenseNet(nn.Module):
    """conv3x3 stem -> (dense block -> transition) x 2 -> dense block -> BN-ReLU -> global average pool -> fc."""

    def __init__(self, depth: int, growth: int, stem_channels: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers_per_block = (depth - 4) // 3
        channels = stem_channels
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
        for b in range(3):
            for _ in range(layers_per_block):
                blocks.append(DenseLayer(channels, growth))
                channels += growth
            if b < 2:
                blocks.append(Transition(channels))
        blocks += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 16 + 36k, 8, 8) on 32x32
        x = self.flatten(self.pool(x))  # (B, 16 + 36k)
        return self.fc(x)  # (B, classes)


@register_model("densenet40")
def densenet40(
    *,
    in_channels: int = 3,
    num_classes: int = 10,
    width: float = 1.0,
    growth: int = 12,
    image_size: tuple[int, int] | None = None,
) -> DenseNet:
    """DenseNet-40 (k=12); ``width`` scales the growth rate and the 16-channel stem. ``image_size`` is unused."""
    width = check_width(width)
    return init_weights(
        DenseNet(40, scale_channels(growth, width), scale_channels(16, width), in_channels, num_classes)
    )
