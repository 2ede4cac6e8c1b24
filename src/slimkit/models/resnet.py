"""ResNets (He et al. 2016): CIFAR style ResNet-20/56 and ImageNet style ResNet-18/50.

CIFAR style: a 3x3 stem and three stages of basic blocks (16, 32, 64 channels, 6n+2 layers). Shortcuts that change
shape are 1x1 conv + BN projections (the paper's option B), so every layer is a standard, prunable module.
ImageNet style matches torchvision's layout (7x7 stem, max-pool, four stages, stride on the 3x3 conv of
bottlenecks), so parameter counts agree with the literature (ResNet-18: 11,689,512; ResNet-50: 25,557,032).
"""

from __future__ import annotations

import torch
from torch import nn

from slimkit.models._registry import register_model
from slimkit.models._scaling import check_width, init_weights, scale_channels


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """1x1 conv + BN shortcut when the block changes shape, else ``None`` (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
    )


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn, plus the shortcut, then relu."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _projection(in_channels, channels, stride)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, C, H/s, W/s)
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, C, H/s, W/s)
        out = self.bn2(self.conv2(out))
        out = out + identity
        return self.relu2(out)


class Bottleneck(nn.Module):
    """conv1x1-bn-relu-conv3x3(stride)-bn-relu-conv1x1(4x)-bn, plus the shortcut, then relu (ResNet v1.5)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)
        self.relu3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4C, H/s, W/s)
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, C, H, W)
        out = self.relu2(self.bn2(self.conv2(out)))  # (B, C, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4C, H/s, W/s)
        out = out + identity
        return self.relu3(out)


Block = type[BasicBlock] | type[Bottleneck]


def _stage(block: Block, in_channels: int, channels: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [block(in_channels, channels, stride)]
    layers += [block(channels * block.expansion, channels) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class CifarResNet(nn.Module):
    """3x3 stem -> three stages of basic blocks (strides 1, 2, 2) -> global average pool -> fc."""

    def __init__(self, blocks_per_stage: int, in_channels: int, num_classes: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.conv1 = nn.Conv2d(in_channels, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _stage(BasicBlock, c1, c1, blocks_per_stage, 1)
        self.layer2 = _stage(BasicBlock, c1, c2, blocks_per_stage, 2)
        self.layer3 = _stage(BasicBlock, c2, c3, blocks_per_stage, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 16, 32, 32)
        x = self.layer1(x)  # (B, 16, 32, 32)
        x = self.layer2(x)  # (B, 32, 16, 16)
        x = self.layer3(x)  # (B, 64, 8, 8)
        x = self.flatten(self.avgpool(x))  # (B, 64)
        return self.fc(x)  # (B, classes)


class ResNet(nn.Module):
    """7x7/2 stem -> 3x3/2 max-pool -> four stages (strides 1, 2, 2, 2) -> global average pool -> fc."""

    def __init__(
        self, block: Block, layers: tuple[int, int, int, int], in_channels: int, num_classes: int, base: int
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = [base, base * 2, base * 4, base * 8]
        channels = base
        stages = []
        for i, (width, blocks) in enumerate(zip(widths, layers)):
            stages.append(_stage(block, channels, width, blocks, 1 if i == 0 else 2))
            channels = width * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer1(x)  # (B, 64e, H/4, W/4)
        x = self.layer2(x)  # (B, 128e, H/8, W/8)
        x = self.layer3(x)  # (B, 256e, H/16, W/16)
        x = self.layer4(x)  # (B, 512e, H/32, W/32)
        x = self.flatten(self.avgpool(x))  # (B, 512e)
        return self.fc(x)  # (B, classes)


def _cifar(depth: int, in_channels: int, num_classes: int, width: float) -> CifarResNet:
    width = check_width(width)
    widths = tuple(scale_channels(c, width) for c in (16, 32, 64))
    return init_weights(CifarResNet((depth - 2) // 6, in_channels, num_classes, widths))  # type: ignore[arg-type]


@register_model("resnet20")
def resnet20(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: tuple[int, int] | None = None
) -> CifarResNet:
    """ResNet-20, CIFAR style (272,474 params with 1x1 projection shortcuts). ``image_size`` is unused."""
    return _cifar(20, in_channels, num_classes, width)


@register_model("resnet56")
def resnet56(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: tuple[int, int] | None = None
) -> CifarResNet:
    """ResNet-56, CIFAR style (855,770 params with 1x1 projection shortcuts). ``image_size`` is unused."""
    return _cifar(56, in_channels, num_classes, width)


@register_model("resnet18")
def resnet18(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: tuple[int, int] | None = None
) -> ResNet:
    """ResNet-18, ImageNet style (11,689,512 params with 3 channels and 1000 classes). ``image_size`` is unused."""
    width = check_width(width)
    return init_weights(ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, scale_channels(64, width)))


@register_model("resnet50")
def resnet50(
    *, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: tuple[int, int] | None = None
) -> ResNet:
    """ResNet-50, ImageNet style (25,557,032 params with 3 channels and 1000 classes). ``image_size`` is unused."""
    width = check_width(width)
    return init_weights(ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, scale_channels(64, width)))
